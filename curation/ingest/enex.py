"""Evernote .enex: <note> elements with <title>, <content> (ENML, an HTML dialect, in CDATA), <created>, <tag>.

Parsed with expat directly rather than through an element tree: notes stream out as each one closes,
the base64 <resource> data (attachments, often most of the file) is never held in memory, and each
note knows the line it starts on. Entity declarations are refused, so neither external entities
(XXE) nor entity expansion ("billion laughs") can happen; an ENEX export never declares entities.
"""

from __future__ import annotations

from pyexpat import ExpatError, ParserCreate, errors
from typing import Iterator

from assay.curation.ingest._io import BOM, CHUNK, Bad, Item, Source, readable, utf8_bad

_FIELDS = {"title", "content", "created", "updated", "tag"}
_LINE_BYTES = 64 * 1024  # how much of a broken line is read back to show it


class _Forbidden(Exception):
    def __init__(self, what: str, line: int):
        super().__init__(what)
        self.what, self.line = what, line


def read_enex(src: Source, rel: str | None = None) -> Iterator[Item]:
    first = src.read(CHUNK)
    if not first.lstrip(BOM).strip():
        yield src.empty()
        return
    notes = _Notes(src)
    parser = ParserCreate()
    notes.attach(parser)
    chunk = first
    try:
        while True:
            parser.Parse(chunk, not chunk)
            yield from notes.take()
            if not chunk:
                break
            chunk = src.read(CHUNK)
    except _Forbidden as exc:
        yield from notes.take()
        yield Item(notes.failing(), exc.line, _line_text(src, exc.line)[1],
                   bad=Bad("unsafe_xml", f"{exc.what} are not allowed in an export (they can read local files "
                                         "or expand without bound)"))
        return
    except ExpatError as exc:
        yield from notes.take()
        offset, data = _line_text(src, exc.lineno, raw=True)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:  # expat calls an undecodable byte just "invalid token"
            truncated = bad.reason == "unexpected end of data" and len(data) == _LINE_BYTES
            failure = None if truncated else utf8_bad(bad, offset, exc.lineno)
        else:
            failure = None
        if failure is None:
            failure = Bad("invalid_xml", f"invalid XML at column {exc.offset + 1}: {errors.messages[exc.code]}")
        if notes.failing() > 1:
            failure.message += "; the rest of the file could not be read"
        yield Item(notes.failing(), exc.lineno, readable(data), bad=failure)
        return
    if notes.count == 0:
        src.warnings.append(f"{src.name}: no <note> elements, no notes")


class _Notes:
    """expat callbacks that collect one dict per <note>, in the export's own element names."""

    def __init__(self, src: Source):
        self.src, self.count, self.done = src, 0, []
        self.note: dict | None = None
        self.line, self.resources = 0, 0
        self.capture: str | None = None  # the element whose text is being collected
        self.parts: list[str] = []
        self.size = 0
        self.too_large = False
        self.in_attributes = False
        self.in_resource = 0

    def attach(self, parser) -> None:
        self.parser = parser
        parser.buffer_text = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.data
        parser.EntityDeclHandler = lambda *a: self._forbid("entity declarations")
        parser.UnparsedEntityDeclHandler = lambda *a: self._forbid("entity declarations")
        parser.ExternalEntityRefHandler = lambda *a: self._forbid("external entities")

    def _forbid(self, what: str) -> None:
        raise _Forbidden(what, self.parser.CurrentLineNumber)

    def failing(self) -> int:
        """The number of the note the parse broke in (or the one after the last complete note)."""
        return self.count if self.note is not None else self.count + 1

    def take(self) -> list[Item]:
        done, self.done = self.done, []
        return done

    def start(self, name: str, attrs: dict) -> None:
        if name == "note":
            self.count += 1
            self.note = {"tags": []}
            self.line, self.resources, self.too_large = self.parser.CurrentLineNumber, 0, False
        elif self.note is None or self.in_resource:
            self.in_resource += name == "resource"
        elif name == "resource":
            self.in_resource, self.resources = 1, self.resources + 1
        elif name == "note-attributes":
            self.in_attributes = True
        elif self.capture is None and (name in _FIELDS or self.in_attributes):
            self.capture, self.parts, self.size = name, [], 0

    def data(self, text: str) -> None:
        if self.capture is None:
            return
        self.size += len(text)
        if self.size > self.src.cap:  # stop holding a note that cannot be kept anyway
            self.too_large = True
        else:
            self.parts.append(text)

    def end(self, name: str) -> None:
        if self.in_resource:
            self.in_resource -= name == "resource"
        elif name == self.capture:
            value = "".join(self.parts)
            if name == "tag":
                self.note["tags"].append(value)
            else:
                self.note[name] = value
            self.capture, self.parts = None, []
        elif name == "note-attributes":
            self.in_attributes = False
        elif name == "note" and self.note is not None:
            self.done.append(self._item())
            self.note = None

    def _item(self) -> Item:
        note = self.note
        item = Item(self.count, self.line, readable(note.get("content", "")))
        if self.too_large:
            item.bad = Bad("too_large", f"note is over {self.src.cap:,} characters, too large for "
                                        f"max_note_bytes={self.src.cfg.max_note_bytes:,}")
            return item
        if not note["tags"]:
            del note["tags"]
        item.value = note
        if self.resources:
            item.meta = {"resources": self.resources}
        return item


def _line_text(src: Source, lineno: int, raw: bool = False) -> tuple[int, bytes | str]:
    """The byte offset and text of one line of the file, to show where it broke."""
    offset = 0
    with src.path.open("rb") as f:
        for number, data in enumerate(f, 1):
            if number == lineno:
                return offset, data[:_LINE_BYTES] if raw else readable(data)
            offset += len(data)
    return offset, b"" if raw else ""
