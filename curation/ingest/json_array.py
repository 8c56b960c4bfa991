"""JSON exports: an array of notes, an object with a "notes" array, or one note object.

The file is read whole (JSON has no record boundaries to stream on; use JSONL for exports larger than
memory), then each array element is decoded on its own, so every record knows its line, a bad element
is reported by record number, and the records before a syntax error are still read."""

from __future__ import annotations

import json
import re
from typing import Iterator

from assay.curation.ingest._io import BOM, RAW_CHARS, Bad, Item, Source, json_kind, readable
from assay.errors import beyond_python

_WS = re.compile(r"[ \t\n\r]*")
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # undecodable bytes, kept by the surrogateescape decoding


def read_json(src: Source, rel: str | None = None) -> Iterator[Item]:
    data = src.read()
    skipped = len(BOM) if data.startswith(BOM) else 0
    # surrogateescape keeps undecodable bytes as markers, so one bad byte spoils one record, not the file
    text = data[skipped:].decode("utf-8", "surrogateescape")
    del data
    if not text.strip():
        yield src.empty()
        return
    scan = _Scan(text, src, skipped)
    try:
        yield from scan.records()
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data" and scan.top == "{":
            hint = " (one JSON object per line is JSON Lines: set ingest.format=jsonl)"
        start = scan.start if scan.start is not None else max(0, exc.pos - 200)
        rest = "; the rest of the file could not be read" if scan.count else ""
        yield Item(scan.count + 1, exc.lineno, readable(text[start:start + RAW_CHARS]),
                   bad=Bad("invalid_json", f"invalid JSON at column {exc.colno}: {exc.msg}{hint}{rest}"))
    except (RecursionError, ValueError) as exc:  # past what Python's decoder reads; where exactly, it does not say
        start = scan.start if scan.start is not None else 0
        rest = "; the rest of the file could not be read" if scan.count else ""
        yield Item(scan.count + 1, text.count("\n", 0, start) + 1, readable(text[start:start + RAW_CHARS]),
                   bad=Bad("invalid_json", f"invalid JSON: {beyond_python(exc)}{rest}"))


class _Scan:
    def __init__(self, text: str, src: Source, skipped: int):
        self.text, self.src, self.skipped = text, src, skipped
        self.decoder = json.JSONDecoder(strict=False)  # literal tabs and newlines inside strings are common
        self.count = 0  # records yielded so far
        self.start: int | None = None  # where the record being decoded starts
        self.top = ""
        self._line, self._line_at = 1, 0

    def records(self) -> Iterator[Item]:
        text = self.text
        pos = _WS.match(text, 0).end()
        self.top = text[pos]
        if self.top == "[":
            pos = yield from self._array(pos)
        elif self.top == "{":
            pos = yield from self._object(pos)
        else:
            value, pos = self.decoder.raw_decode(text, pos)
            self.count += 1
            yield Item(1, 1, readable(text), bad=Bad(
                "not_an_array", f"expected an array of notes or an object, got {json_kind(value)}"))
        pos = _WS.match(text, pos).end()
        if pos != len(text):
            self.start = None
            raise json.JSONDecodeError("Extra data", text, pos)

    def _array(self, pos: int) -> Iterator[Item]:
        text = self.text
        pos = _WS.match(text, pos + 1).end()
        if text.startswith("]", pos):
            if self.count == 0:
                self.src.warnings.append(f"{self.src.name}: empty JSON array, no notes")
            return pos + 1
        while True:
            self.start = pos
            value, end = self.decoder.raw_decode(text, pos)
            self.count += 1
            yield self._item(value, pos, end)
            self.start = None
            pos = _WS.match(text, end).end()
            if text.startswith(",", pos):
                pos = _WS.match(text, pos + 1).end()
            elif text.startswith("]", pos):
                return pos + 1
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)

    def _object(self, pos: int) -> Iterator[Item]:
        """A wrapper {"notes": [...], ...} gives its notes; any other object is one note."""
        text, first = self.text, pos
        members: dict = {}
        pos = _WS.match(text, pos + 1).end()
        found = False
        while not text.startswith("}", pos):
            key, pos = self.decoder.raw_decode(text, pos)
            if not isinstance(key, str):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
            pos = _WS.match(text, pos).end()
            if not text.startswith(":", pos):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
            pos = _WS.match(text, pos + 1).end()
            if key == "notes" and text.startswith("[", pos) and not found:
                found = True
                pos = yield from self._array(pos)
            else:
                members[key], pos = self.decoder.raw_decode(text, pos)
            pos = _WS.match(text, pos).end()
            if text.startswith(",", pos):
                pos = _WS.match(text, pos + 1).end()
            elif not text.startswith("}", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        if found:
            if members:
                self.src.warnings.append(
                    f"{self.src.name}: top-level keys besides 'notes' are not notes and were not read: "
                    + ", ".join(sorted(members)))
        else:
            self.count += 1
            yield self._item(members, first, pos + 1)
        return pos + 1

    def _item(self, value: object, start: int, end: int) -> Item:
        text = self.text
        self._line += text.count("\n", self._line_at, start)
        self._line_at = start
        item = Item(self.count, self._line, readable(text[start:min(end, start + RAW_CHARS)]))
        if end - start > self.src.cap:
            item.bad = Bad("too_large", f"record is {end - start:,} characters, too large for a note within "
                                        f"max_note_bytes={self.src.cfg.max_note_bytes:,}")
        elif m := _BAD_BYTE.search(text, start, end):
            offset = self.skipped + len(text[:m.start()].encode("utf-8", "surrogateescape"))
            line = self._line + text.count("\n", start, m.start())
            byte = ord(m.group()) - 0xDC00
            item.bad = Bad("invalid_utf8", f"invalid UTF-8: byte 0x{byte:02x} at line {line}, byte offset {offset}")
        elif not isinstance(value, dict):
            item.bad = Bad("not_an_object", f"a note must be a JSON object, got {json_kind(value)}", value=value)
        else:
            item.value = value
        return item

