"""Markdown and text notes (Obsidian, Bear, plain folders): one file is one note, with optional YAML front matter."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Iterator

import yaml

from assay.config import YAMLRefused, safe_yaml
from assay.curation.ingest._io import BOM, CHUNK, Bad, Item, Source, newlines, readable, too_large, utf8_bad
from assay.errors import beyond_python
from assay.records import dumps_metadata

_FRONT_END = re.compile(r"^(---|\.\.\.)[ \t]*$", re.M)
_HEADING = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?(^\1|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# Obsidian's inline tags: "#" after a space or line start, letters/digits/_/-/ "/", not only digits
_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]*[^\W\d][\w/-]*)")


def read_markdown(src: Source, rel: str) -> Iterator[Item]:
    # Front matter cannot make up more than a chunk, so a larger file cannot hold a note within the limit.
    # The limit holds while reading, not from stat: a file can grow, and some (in /proc) report size 0.
    limit = src.cfg.max_note_bytes + CHUNK
    data = src.read(limit + 1)
    if len(data) > limit:
        size = max(src.size(), len(data))  # stat knows a regular file's size; not that of one in /proc
        yield Item(1, None, readable(data[: 8 * 1024]),
                   bad=too_large(size, src.cfg.max_note_bytes, "file", at_least=size == len(data)))
        return
    skipped = len(BOM) if data.startswith(BOM) else 0
    try:
        text = newlines(data[skipped:].decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, skipped + exc.start) + 1
        yield Item(1, line, readable(data[skipped:]), bad=utf8_bad(exc, skipped))
        return
    item = Item(1, None, readable(text))
    try:
        front, body = _front_matter(text)
    except Bad as bad:
        item.line, item.bad = bad.line, bad
        yield item
        return
    body = body.strip("\n")
    path = PurePosixPath(rel)
    heading = _HEADING.search(_FENCE.sub("", body))
    item.value = front
    item.fixed = {"note_id": rel, "text": body}
    item.fallback = {"title": heading[1] if heading else path.stem}
    if str(path.parent) != ".":
        item.meta = {"folder": str(path.parent)}
    item.tags = inline_tags(body)
    yield item


def _front_matter(text: str) -> tuple[dict, str]:
    """YAML between a first line "---" and the next "---" (or "..."); no closing line means no front matter."""
    if not text.startswith("---\n"):
        return {}, text
    end = _FRONT_END.search(text, 4)
    if end is None:
        return {}, text
    block = text[4:end.start()]
    try:
        front = _text_keys(safe_yaml(block, aliases=False))
        dumps_metadata(front if isinstance(front, dict) else {})  # fails here, not later: 0x + 5,000 hex digits
    except YAMLRefused as exc:
        raise Bad("bad_front_matter", f"{exc.problem} in front matter", line=2) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 2  # the block starts on line 2
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise Bad("bad_front_matter", f"invalid YAML front matter: {problem}", line=line) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise Bad("bad_front_matter", f"invalid YAML front matter: {beyond_python(exc)}", line=2) from None
    if front is None:
        front = {}
    if not isinstance(front, dict):
        raise Bad("bad_front_matter", f"front matter must be a mapping of keys, got {type(front).__name__}", line=2)
    return front, text[end.end():]


def _text_keys(value):
    """YAML keys can be numbers, dates or null; metadata is JSON, whose keys are text (and sorted: 1 and "b"
    in one mapping could not be)."""
    if isinstance(value, dict):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value


def inline_tags(body: str) -> list[str]:
    """Obsidian-style #tags in the text, outside code."""
    prose = _INLINE_CODE.sub("", _FENCE.sub("", body))
    return list(dict.fromkeys(m.rstrip("/") for m in _INLINE_TAG.findall(prose)))
