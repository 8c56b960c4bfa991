"""What every reader shares: the file being read (hashed as it is read), the record it yields, and line helpers."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from assay.curation.config import IngestConfig
from assay.errors import InputError

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
    left unread, so inputs[].sha256 is always the hash of the whole file.

    A file the export may not make us read (see open_regular) is not opened: `refused` says why."""

    def __init__(self, path: Path, fmt: str, name: str, cfg: IngestConfig, root: Path | None = None):
        self.path, self.format, self.name, self.cfg = path, fmt, name, cfg
        self.columns = cfg.columns
        # a raw record bigger than this cannot hold a note within max_note_bytes (JSON escapes at most
        # ~6 bytes per character, plus room for metadata), so readers refuse it without parsing it
        self.cap = 6 * cfg.max_note_bytes + CHUNK
        self.warnings: list[str] = []
        self._sha = hashlib.sha256()
        self.refused: Bad | None = None
        self._file: BinaryIO | None = None
        try:
            self._file = open_regular(path, root)
        except Bad as bad:
            self.refused = bad
        else:
            self._opened_size = self.size()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._file.read(size)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=self.name) from None
        self._sha.update(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        try:
            data = self._file.readline(size)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=self.name) from None
        self._sha.update(data)
        return data

    def size(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def close(self, drain: bool = True) -> str | None:
        if self._file is None:
            return None
        # hash what was left unread, but no further than the size the file had when opened: a file that
        # grows while read, or one in /proc that says 0 and never ends, must not keep the run reading
        end = self._opened_size + CHUNK
        while drain and self._file.tell() < end and self.read(CHUNK):
            pass
        self._file.close()
        return self._sha.hexdigest()

    def empty(self) -> Item:
        return Item(0, None, "", bad=Bad("empty_export", "empty export: the file holds no records"))


def open_regular(path: Path, root: Path | None) -> BinaryIO:
    """Open one file of an export, which is untrusted: only a regular file, and (for a folder export) only
    one whose real path is inside the folder, so a link cannot make us read /etc/passwd, a process's
    environment or /dev/zero, and a FIFO cannot make us wait forever. Raises Bad("unsafe_file" or
    "unreadable_file")."""
    real = os.path.realpath(path)
    if root is not None:
        top = os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise Bad("unsafe_file", f"not read: a link to {real}, outside the export folder {top}")
    try:
        mode = os.stat(real).st_mode  # before opening: opening a socket fails and a FIFO would block
        if not stat.S_ISREG(mode):
            raise Bad("unsafe_file", f"not read: {file_kind(mode)}, not a regular file")
        # O_NOFOLLOW and fstat: what is opened is the file just checked, even if it was swapped meanwhile;
        # O_NONBLOCK: should that be a FIFO after all, opening it does not wait for a writer
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Bad("unreadable_file", f"not read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Bad("unsafe_file", f"not read: {file_kind(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_kind(mode: int) -> str:
    kinds = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (named pipe)",
             stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}
    return kinds.get(stat.S_IFMT(mode), "a special file")


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


def too_large(size: int, limit: int, what: str = "note", at_least: bool = False) -> Bad:
    return Bad("too_large", f"{what} is {'over ' if at_least else ''}{size:,} bytes, larger than "
                            f"max_note_bytes={limit:,}")


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
