"""One record in the export's own keys -> one note row: key aliases, types, dates, tags and labels."""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dateutil import parser as dateparser

from assay.curation.ingest._io import Bad, Item, Source, json_kind, newlines, too_large
from assay.records import dumps_metadata

# our field -> the keys exports use for it; the first one present wins, the others go to metadata.
# Keys match ignoring case, spaces, "_" and "-", so "Created At", "created_at" and "createdAt" are one key.
ALIASES: dict[str, tuple[str, ...]] = {
    "note_id": ("id", "note_id", "uuid", "guid"),
    "text": ("content", "text", "body"),
    "title": ("title", "name"),
    "created_at": ("created_at", "created", "date", "creation_date"),
    "category": ("category", "folder", "notebook"),
    "tags": ("tags", "labels"),
    # labels an export may already carry
    "instruction": ("instruction",),
    "input": ("input",),
    "output": ("output",),
    "messages": ("messages",),
    "summary": ("summary",),
}
ROLES = ("system", "user", "assistant", "tool")
_BASE_FIELDS = {"note_id", "title", "created_at", "category", "tags", "text"}
_TASK_FIELDS = {None: set(), "chat": {"messages"}, "instruction": {"instruction", "input", "output"},
                "summarize": {"summary"}}
_LONG_FIELDS = ("text", "instruction", "input", "output", "messages")  # the ones max_note_bytes applies to
_SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@functools.lru_cache(maxsize=4096)  # exports repeat the same few keys on every record
def key_of(name: object) -> str:
    return re.sub(r"[\s_\-]", "", name).lower() if isinstance(name, str) else ""


_ALIAS_RANK = {key_of(a): (f, rank) for f, aliases in ALIASES.items() for rank, a in enumerate(aliases)}


def to_row(item: Item, src: Source) -> dict[str, Any]:
    """Validate and map one record; raises Bad with a named reason."""
    picked, rest = _pick(item.value or {}, src.columns)
    for ours, value in item.fixed.items():
        if ours in picked:  # e.g. an `id:` in front matter: the path is the id, the key is kept as metadata
            rest[picked[ours][0]] = picked[ours][1]
        picked[ours] = (ours, value)

    def get(ours: str) -> tuple[str, Any]:
        return picked.get(ours, (src.columns.get(ours, ALIASES[ours][0]), None))

    row: dict[str, Any] = {
        "note_id": _note_id(*get("note_id")),
        "title": _string(*get("title"), numbers=True) or item.fallback.get("title"),
        "created_at": _date(*get("created_at")),
        "category": _string(*get("category"), numbers=True) or None,
        "tags": _unique([*_tags(*get("tags")), *item.tags]),
    }
    text_key, text = get("text")
    text = _string(text_key, text)
    if _present(picked, "messages"):
        turns = _messages(*get("messages"))
        users = [m["content"] for m in turns if m["role"] == "user"]
        row |= {"task": "chat", "messages": json.dumps(turns, ensure_ascii=False)}
        text = text if text is not None else "\n\n".join(users)
    elif _present(picked, "instruction"):
        instruction, inp, out = (_string(*get(f)) for f in ("instruction", "input", "output"))
        if out is None:
            raise Bad("missing_field:" + get("output")[0], "an instruction record needs an output", get("output")[0])
        row |= {"task": "instruction", "instruction": instruction, "input": inp, "output": out}
        text = text if text is not None else (inp or instruction)
    elif _present(picked, "summary") and text is not None:
        row |= {"task": "summarize", "input": text, "output": _string(*get("summary"))}
    if text is None:
        raise Bad("missing_field:" + text_key, "the record has no text", text_key)
    row["text"] = text
    # label keys the record's task did not use (an "output" on a plain note) are kept as metadata
    for ours in picked.keys() - _BASE_FIELDS - _TASK_FIELDS[row.get("task")]:
        rest[picked[ours][0]] = picked[ours][1]

    limit = src.cfg.max_note_bytes
    for name in _LONG_FIELDS:
        value = row.get(name)
        if value is None or len(value) * 4 <= limit:  # at most 4 bytes a character: no need to encode it
            continue
        if (size := len(value.encode("utf-8", "surrogatepass"))) > limit:
            bad = too_large(size, limit, name)
            bad.field = text_key if name == "text" else get(name)[0]
            raise bad
    meta = {str(k): v for k, v in rest.items() if not (src.format == "csv" and v == "")}
    row["metadata"] = dumps_metadata(meta | item.meta)
    for name in ("note_id", "title", "category", "metadata", *_LONG_FIELDS, "tags"):
        value = row.get(name)
        value = "".join(value) if isinstance(value, list) else value
        # JSON can escape half an emoji ("\ud83d"); such text cannot be written as UTF-8 anywhere later
        if value is not None and not value.isascii() and (m := _SURROGATE.search(value)):
            raise Bad("invalid_utf8", f"{name} holds a lone surrogate \\u{ord(m.group()):04x}, "
                                      "which is not valid Unicode", name)
    return row


def guess_id(item: Item, columns: dict[str, str]) -> tuple[str, str | None]:
    """The export's id key and the record's id, when one can be read (for reject rows and duplicate errors)."""
    key = columns.get("note_id", ALIASES["note_id"][0])
    if "note_id" in item.fixed:
        return "note_id", item.fixed["note_id"]
    if not isinstance(item.value, dict):
        return key, None
    key, value = _pick(item.value, columns)[0].get("note_id", (key, None))
    return key, str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _pick(obj: dict, columns: dict[str, str]) -> tuple[dict[str, tuple[str, Any]], dict]:
    """Split a record into our fields (field -> (export key, value)) and the rest, kept as metadata.
    An explicit mapping in `columns` replaces the aliases of that field."""
    mapped = {their: ours for ours, their in columns.items()}
    picked: dict[str, tuple[str, Any]] = {}
    ranks: dict[str, int] = {}
    rest: dict = {}
    for key, value in obj.items():
        if key in mapped:
            ours, rank = mapped[key], -1
        else:
            ours, rank = _ALIAS_RANK.get(key_of(key), (None, 0))
            if ours in columns:
                ours = None
        if ours is None:
            rest[key] = value
        elif ours not in picked or rank < ranks[ours]:
            if ours in picked:
                rest[picked[ours][0]] = picked[ours][1]
            picked[ours], ranks[ours] = (key, value), rank
        else:
            rest[key] = value
    return picked, rest


def _present(picked: dict, ours: str) -> bool:
    return ours in picked and picked[ours][1] not in (None, "")


def _string(key: str, value: Any, *, numbers: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return newlines(value)
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # YAML reads `title: 2024` as a number
    raise Bad(f"bad_type:{key}", f"expected a string, got {json_kind(value)}", key, value)


def _note_id(key: str, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, str):
        return (value or "").strip() or None  # missing ids get a content hash later
    raise Bad(f"bad_type:{key}", f"expected a string or integer id, got {json_kind(value)}", key, value)


def _tags(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        if re.search(r"[,;]", value):
            parts = re.split(r"[,;]", value)
        elif "#" in value:  # Bear/Obsidian: "#work #ideas"
            parts = value.split()
        else:
            parts = [value]
    elif isinstance(value, list) and all(isinstance(t, (str, int, float)) and not isinstance(t, bool) for t in value):
        parts = [str(t) for t in value]
    else:
        raise Bad(f"bad_type:{key}", f"expected a list of strings or a comma-separated string, got {json_kind(value)}",
                  key, value)
    return [t.strip().lstrip("#").strip() for t in parts]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tags if t))


def _messages(key: str, value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):  # CSV cells carry the list as JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Bad(f"bad_type:{key}", "expected a list of messages (or a JSON string of one)", key, value) from None
    if not isinstance(value, list):
        raise Bad(f"bad_type:{key}", f"expected a list of messages, got {json_kind(value)}", key, value)
    turns = []
    for i, m in enumerate(value, 1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise Bad(f"bad_type:{key}", f"message {i} must be an object with a string 'content'", key, m)
        if m.get("role") not in ROLES:
            raise Bad(f"bad_value:{key}", f"message {i} has role {m.get('role')!r}; roles are {', '.join(ROLES)}",
                      key, m.get("role"))
        turns.append({"role": m["role"], "content": newlines(m["content"])})
    if not any(t["role"] == "user" for t in turns):
        raise Bad(f"bad_value:{key}", "a chat needs at least one user message", key)
    return turns


def _date(key: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        when = parse_date(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise Bad("bad_date", f"cannot read this date: {exc}", key, value) from None
    return when


def parse_date(value: Any) -> datetime:
    """ISO 8601 (also ENEX's 20250314T093000Z), epoch seconds/ms/µs, YAML dates, or an unambiguous written date."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a date")
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        when = _from_epoch(value)
    elif isinstance(value, str):
        when = _from_string(value.strip())
    else:
        raise ValueError(f"expected a string or a number, got {json_kind(value)}")
    # Naive times are taken as UTC: exports rarely say their zone, and one rule keeps rows comparable.
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _from_epoch(value: int | float) -> datetime:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    size = abs(value)
    if size >= 1e14:
        return _EPOCH + timedelta(microseconds=value)
    if size >= 1e11:  # 1e11 seconds is the year 5138, so numbers this large are milliseconds
        return _EPOCH + timedelta(milliseconds=value)
    return _EPOCH + timedelta(seconds=value)


def _from_string(text: str) -> datetime:
    if re.fullmatch(r"\d{8}", text):
        return datetime.strptime(text, "%Y%m%d")
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return _from_epoch(float(text) if "." in text else int(text))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    m = re.match(r"(\d{1,2})[/.](\d{1,2})[/.]\d{2,4}\b", text)
    if m and m[1] != m[2] and max(int(m[1]), int(m[2])) <= 12:
        raise ValueError(f"{text!r} could be day/month or month/day; use ISO 8601 (YYYY-MM-DD)")
    # parse twice with different defaults: if the results differ, the text left out a year, month or day
    first = dateparser.parse(text, default=datetime(2000, 1, 1))
    if first != dateparser.parse(text, default=datetime(2001, 2, 2)):
        raise ValueError(f"{text!r} is not a full date")
    return first
