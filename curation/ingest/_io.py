"""What every reader shares: the file being read (hashed as it is read), the record it yields, and line helpers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from assay.errors import InputError
from curation.config import IngestConfig

BOM = b"\xef\xbb\xbf"
RAW_CHARS = 2_000  # how much of an unreadable record a reject row keeps, for a person to look at
CHUNK = 1 << 20


class Bad(Exception):
    """Why one record cannot become a note: a named reason plus a message for people."""

    def __init__(self, reason: str, message: str, field: str | None = None, value: Any = None,
                 line: int | None = None):
        super().__init__(message)
        self.reason, self.message, self.field, self.value, self.line = reason, message, field, value, line


@dataclass
class Item:
    """One record as a reader found it: a mapping in the export's own keys, or the reason it is unreadable."""

    record: int  # 1-based position in its file; 0 when the problem is the whole file
    line: int | None  # 1-based line where it starts (or where it broke), when the format has lines
    raw: str  # the record's text, kept (truncated) in reject rows
    value: dict | None = None
    bad: Bad | None = None
    # set by readers that know these themselves (markdown, enex); they bypass the key aliases
    fixed: dict[str, Any] = field(default_factory=dict)  # our field -> value, wins over the export's keys
    fallback: dict[str, Any] = field(default_factory=dict)  # our field -> value when the export has none
    meta: dict[str, Any] = field(default_factory=dict)  # added to metadata
    tags: list[str] = field(default_factory=list)  # added to the export's tags


class Source:
    """One export file being read. Every byte read passes through the hash, and close() hashes what was
    left unread, so inputs[].sha256 is always the hash of the whole file."""

    def __init__(self, path: Path, fmt: str, name: str, cfg: IngestConfig):
        self.path, self.format, self.name, self.cfg = path, fmt, name, cfg
        self.columns = cfg.columns
        # a raw record bigger than this cannot hold a note within max_note_bytes (JSON escapes at most
        # ~6 bytes per character, plus room for metadata), so readers refuse it without parsing it
        self.cap = 6 * cfg.max_note_bytes + CHUNK
        self.warnings: list[str] = []
        self._sha = hashlib.sha256()
        try:
            self._file = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=name) from None

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._sha.update(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._file.readline(size)
        self._sha.update(data)
        return data

    def close(self, drain: bool = True) -> str:
        while drain and self.read(CHUNK):
            pass
        self._file.close()
        return self._sha.hexdigest()

    def empty(self) -> Item:
        return Item(0, None, "", bad=Bad("empty_export", "empty export: the file holds no records"))


def lines(src: Source, cap: int | None = None) -> Iterator[tuple[int, int, bytes, bool]]:
    """(line number, byte offset, bytes with their line ending, too_long) for each line.

    A line longer than `cap` is not kept whole: its first bytes come back with too_long=True and the
    rest is read past in chunks, so one giant line costs at most `cap` bytes of memory."""
    number, offset = 0, 0
    while True:
        data = src.readline(-1 if cap is None else cap + 1)
        if not data:
            return
        number += 1
        start, offset = offset, offset + len(data)
        if number == 1 and data.startswith(BOM):  # a UTF-8 BOM is valid; it is not part of the first record
            data, start = data[len(BOM):], start + len(BOM)
        if cap is not None and len(data) > cap and not data.endswith(b"\n"):
            while (more := src.readline(CHUNK)) and not more.endswith(b"\n"):
                offset += len(more)
            offset += len(more)
            yield number, start, data[: RAW_CHARS * 4], True
        else:
            yield number, start, data, False


def utf8_bad(exc: UnicodeDecodeError, offset: int, line: int | None = None) -> Bad:
    """The reason for undecodable bytes, naming the first bad byte and its offset in the file."""
    at = f"line {line}, " if line is not None else ""
    byte = exc.object[exc.start]
    return Bad("invalid_utf8", f"invalid UTF-8: byte 0x{byte:02x} at {at}byte offset {offset + exc.start}")


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, which is what the people who wrote the export know."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)


def too_large(size: int, limit: int, what: str = "note") -> Bad:
    return Bad("too_large", f"{what} is {size:,} bytes, larger than max_note_bytes={limit:,}")


def readable(data: bytes | str, limit: int = RAW_CHARS) -> str:
    """Text a person can look at, whatever the bytes were; undecodable bytes become U+FFFD."""
    if isinstance(data, str):
        try:
            data = data[:limit].encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # an escaped lone surrogate such as "\ud83d" from JSON
            return data[:limit].encode("utf-8", "replace").decode("utf-8")
    else:
        data = data[: limit * 4]
    return data.decode("utf-8", "replace")[:limit]


def newlines(text: str) -> str:
    """CRLF and lone CR become LF, so every note has one kind of line ending."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
