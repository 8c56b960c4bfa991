"""JSON Lines: one note object per line, streamed, so a file of any size reads in bounded memory."""

from __future__ import annotations

import json
from typing import Iterator

from assay.curation.ingest._io import Bad, Item, Source, json_kind, lines, readable, utf8_bad
from assay.errors import beyond_python


def read_jsonl(src: Source, rel: str | None = None) -> Iterator[Item]:
    record = 0
    for number, offset, data, too_long in lines(src, src.cap):
        if too_long:
            record += 1
            limit = src.cfg.max_note_bytes
            yield Item(record, number, readable(data), bad=Bad(
                "too_large", f"line is over {src.cap:,} bytes, too large for a note within max_note_bytes={limit:,}"))
            continue
        data = data.rstrip(b"\r\n")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            record += 1
            yield Item(record, number, readable(data), bad=utf8_bad(exc, offset))
            continue
        if not text.strip():
            continue  # blank lines separate nothing and are not records
        record += 1
        item = Item(record, number, readable(text))
        try:
            value = json.loads(text, strict=False)
        except json.JSONDecodeError as exc:
            hint = " (a JSON array? set ingest.format=json)" if record == 1 and text.lstrip().startswith("[") else ""
            item.bad = Bad("invalid_json", f"invalid JSON at column {exc.colno}: {exc.msg}{hint}")
        except (RecursionError, ValueError) as exc:
            item.bad = Bad("invalid_json", f"invalid JSON: {beyond_python(exc)}")
        else:
            if isinstance(value, dict):
                item.value = value
            else:
                item.bad = Bad("not_an_object", f"a note must be a JSON object, got {json_kind(value)}", value=value)
        yield item
    if record == 0:
        yield src.empty()
