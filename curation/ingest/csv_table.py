"""CSV: a header row, then one note per row; `ingest.columns` maps our fields to the export's column names."""

from __future__ import annotations

import csv
import itertools
from typing import Iterator

from assay.curation.ingest._io import Bad, Item, Source, lines, readable, utf8_bad
from assay.errors import InputError

_DELIMITERS = ",;\t"


def read_csv(src: Source, rel: str | None = None) -> Iterator[Item]:
    # The csv module's field limit is process-wide; notes up to max_note_bytes need more than its 128 KiB default.
    csv.field_size_limit(max(csv.field_size_limit(), src.cap))
    pending: list[str] = []  # the physical lines of the record being read, for reject rows
    bad_bytes: dict[int, Bad] = {}  # line number -> its first undecodable byte (or NUL byte)
    at_end = []  # set once every line has been handed to the csv reader

    def physical() -> Iterator[str]:
        for number, offset, data, _ in lines(src):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_bytes[number] = utf8_bad(exc, offset, number)
                text = data.decode("utf-8", "surrogateescape")
            if "\0" in text and number not in bad_bytes:  # no text export holds one; the csv module keeps it
                at = offset + data.index(b"\0")
                bad_bytes[number] = Bad("nul_byte", f"NUL byte (0x00) at byte offset {at}",
                                        line=number)
            pending.append(text)
            yield text
        at_end.append(True)

    rows = physical()
    first = next(rows, None)
    if first is None or not first.strip():
        yield src.empty()
        return
    delimiter = max(_DELIMITERS, key=first.count)  # Excel writes ";" in locales where "," is the decimal mark
    reader = csv.reader(itertools.chain([first], rows), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:  # like other header problems, this spoils every row
        raise InputError(f"unreadable CSV header: {exc}", file=src.name, line=1, field="header") from None
    _check_header(src, header)
    record = 0
    while True:
        start = reader.line_num + 1
        pending.clear()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            record += 1
            reason = "too_large" if "field larger" in str(exc) else "bad_row"
            yield Item(record, start, readable("".join(pending)), bad=Bad(reason, f"unreadable CSV row: {exc}"))
            continue
        if not row:
            continue  # a blank line is not a record
        record += 1
        item = Item(record, start, readable("".join(pending)))
        broken = [bad_bytes[n] for n in range(start, reader.line_num + 1) if n in bad_bytes]
        if broken:
            item.bad = broken[0]
        elif at_end and _unterminated(pending, delimiter):
            # the csv module reads an unclosed quote to the end of the file and calls it one field
            item.bad = Bad("bad_row", f"a quote opened in the record at line {start} is never closed; lines "
                                      f"{start}-{reader.line_num} (the rest of the file) would be one note")
        elif len(row) != len(header):
            item.bad = Bad("bad_row", f"row has {len(row)} fields, the header has {len(header)}")
        else:
            item.value = dict(zip(header, row))
        yield item
    if record == 0:
        src.warnings.append(f"{src.name}: CSV has a header but no rows")


def _unterminated(physical: list[str], delimiter: str) -> bool:
    """Whether these lines end inside a quoted field (the strict reader calls that "unexpected end of data")."""
    try:
        for _ in csv.reader(physical, delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _check_header(src: Source, header: list[str]) -> None:
    """Problems with the header spoil every row, so they stop the run even with skip_invalid."""
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name or name in seen:
            problem = "empty" if not name else "repeated"
            raise InputError(f"column {i} of the header is {problem}", file=src.name, line=1, field="header",
                             value=name)
        seen.add(name)
    missing = [f"{ours}->{theirs}" for ours, theirs in src.columns.items() if theirs not in seen]
    if missing:
        raise InputError(f"ingest.columns names columns the header lacks: {', '.join(missing)}; "
                         f"the header has: {', '.join(header)}", file=src.name, line=1, field="columns")
