"""Ingest: read a note export (JSON, JSONL, CSV, a Markdown folder, Evernote .enex) into note rows.

Every record read ends up in exactly one place: `kept`, or `rejects` with a named reason. Bad input
stops the run with an InputError naming file, line/record, field and value, unless
`skip_invalid` is set, in which case it is quarantined as a reject row that keeps the raw text.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import polars as pl

from assay.curation.config import IngestConfig
from assay.curation.ingest._io import Bad, Item, Source, file_kind, readable
from assay.curation.ingest._rows import ALIASES, guess_id, to_row
from assay.curation.ingest.csv_table import read_csv
from assay.curation.ingest.enex import read_enex
from assay.curation.ingest.json_array import read_json
from assay.curation.ingest.json_lines import read_jsonl
from assay.curation.ingest.markdown import read_markdown
from assay.curation.steps import StepResult
from assay.errors import ConfigError, InputError
from assay.records import dumps_metadata, notes_frame

__all__ = ["ingest", "EXTENSIONS", "REASONS"]

STEP = "ingest"
READERS: dict[str, Callable[[Source, str], Iterator[Item]]] = {
    "json": read_json, "jsonl": read_jsonl, "csv": read_csv, "markdown": read_markdown, "enex": read_enex,
}
EXTENSIONS = {
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
    ".md": "markdown", ".markdown": "markdown", ".txt": "markdown", ".enex": "enex",
}
# reason families a reject row can carry; ":field" names the export's key, e.g. "missing_field:content"
REASONS = ("unsafe_file", "unreadable_file", "empty_export", "invalid_json", "invalid_utf8", "invalid_xml",
           "unsafe_xml", "bad_front_matter",
           "bad_row", "not_an_array", "not_an_object", "missing_field", "bad_type", "bad_value", "bad_date",
           "nul_byte", "too_large", "duplicate_id")
# where a row points back to: a line for line formats, the record's position for containers, nothing for
# one-note-per-file formats (the file is the place)
_POSITION = {"json": "record", "enex": "record", "jsonl": "line", "csv": "line", "markdown": None}
_PROGRESS_EVERY = 1_000


def ingest(path: str | Path, cfg: IngestConfig, progress: Callable[[int], None] | None = None) -> StepResult:
    """Read every note in `path` (a file, or a folder of notes). `progress` is called with the number of
    records read since its last call."""
    path = Path(path)
    files, warnings = plan(path, cfg)
    run = _Run(cfg, progress)
    root = path if path.is_dir() else None  # a folder's files must stay inside it (links are not followed out)
    for file, fmt, name, rel in files:
        run.read(file, fmt, name, rel, root)
    return run.result(warnings)


def plan(path: Path, cfg: IngestConfig) -> tuple[list[tuple[Path, str, str, str]], list[str]]:
    """The files to read as (path, format, display name, path relative to the export); checks the config too."""
    if not path.exists():
        raise InputError("no such file or folder", file=str(path))
    if not path.is_file() and not path.is_dir():
        raise InputError(f"not read: {file_kind(path.stat().st_mode)}, not a file or folder", file=str(path))
    if path.is_file():
        fmt = cfg.format if cfg.format != "auto" else EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            known = ", ".join(sorted(EXTENSIONS))
            raise InputError(f"cannot tell the export format from the extension {path.suffix or '(none)'!r}; "
                             f"known: {known}; or set ingest.format", file=str(path))
        _check_columns(cfg, fmt)
        return [(path, fmt, str(path), path.name)], []
    # a folder is a folder of notes (Markdown) unless the format says otherwise, e.g. several .enex notebooks
    fmt = "markdown" if cfg.format == "auto" else cfg.format
    _check_columns(cfg, fmt)
    files, skipped = [], Counter()
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .obsidian, .trash, .git: not notes
        for name in sorted(names):
            file = Path(root, name)
            if not name.startswith(".") and EXTENSIONS.get(file.suffix.lower()) == fmt:
                files.append((file, fmt, str(file), file.relative_to(path).as_posix()))
            elif not name.startswith("."):
                skipped[file.suffix.lower() or "(no extension)"] += 1
    warnings = []
    if skipped:
        listing = ", ".join(f"{ext}: {n}" for ext, n in sorted(skipped.items()))
        warnings.append(f"{path}: skipped {sum(skipped.values())} file(s) that are not {fmt} notes ({listing})")
    if not files:
        wanted = ", ".join(e for e, f in EXTENSIONS.items() if f == fmt)
        others = sorted({EXTENSIONS[e] for e in skipped if e in EXTENSIONS})
        hint = f"; it has {' and '.join(others)} files: set ingest.format" if others else ""
        raise InputError(f"empty export: no {fmt} files ({wanted}) in this folder{hint}", file=str(path))
    return files, warnings


def _check_columns(cfg: IngestConfig, fmt: str) -> None:
    problems = []
    for ours, theirs in cfg.columns.items():
        if ours not in ALIASES:
            close = difflib.get_close_matches(ours, ALIASES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"ingest.columns: unknown field {ours!r}{hint}; fields: {', '.join(ALIASES)}")
        elif not theirs:
            problems.append(f"ingest.columns.{ours}: the export's column name is empty")
    if fmt == "markdown" and {"text", "note_id"} & set(cfg.columns):
        problems.append("ingest.columns: a Markdown note's text is its body and its id its path; they cannot be mapped")
    if problems:
        raise ConfigError("ingest config", problems)


class _Run:
    """Collects rows, rejects, per-file inputs and warnings, and holds the ids seen so far."""

    def __init__(self, cfg: IngestConfig, progress: Callable[[int], None] | None):
        self.cfg, self.progress = cfg, progress
        self.kept: list[dict] = []
        self.rejects: list[dict] = []
        self.reasons: list[str] = []
        self.inputs: list[dict] = []
        self.warnings: list[str] = []
        self.seen: dict[str, tuple[str, str]] = {}  # note id -> (file, where in it) it was first read
        self.unreported = 0

    def read(self, file: Path, fmt: str, name: str, rel: str, root: Path | None = None) -> None:
        src = Source(file, fmt, name, self.cfg, root)
        if src.refused is not None:  # a link out of the export, a device, a FIFO: one reject, nothing read
            self._take(src, Item(0, None, "", bad=src.refused))
            self._tick()
            self.inputs.append({"file": name, "format": fmt, "sha256": None, "records": 1})
            return
        count = 0
        try:
            for item in READERS[fmt](src, rel):
                count += 1
                self._take(src, item)
                self._tick()
        except BaseException:
            src.close(drain=False)  # the run stops here; no need to hash the rest
            raise
        sha256 = src.close()
        self.inputs.append({"file": name, "format": fmt, "sha256": sha256, "records": count})
        self.warnings += src.warnings

    def result(self, warnings: list[str]) -> StepResult:
        if self.progress and self.unreported:
            self.progress(self.unreported)
        rejects = notes_frame(self.rejects).with_columns(
            pl.Series("reason", self.reasons, dtype=pl.String), pl.lit(STEP, dtype=pl.String).alias("step"))
        return StepResult(STEP, notes_frame(self.kept), rejects,
                          {"inputs": self.inputs, "warnings": warnings + self.warnings})

    def _tick(self) -> None:
        self.unreported += 1
        if self.progress and self.unreported >= _PROGRESS_EVERY:
            self.progress(self.unreported)
            self.unreported = 0

    def _take(self, src: Source, item: Item) -> None:
        if item.bad is None:
            try:
                row = to_row(item, src)
            except Bad as bad:
                item.bad = bad
        if item.bad is not None:
            note_id = guess_id(item, src.columns)[1]  # unchecked: may hold a lone surrogate, so made readable
            self._reject(src, item, item.bad, {"note_id": note_id and readable(note_id), "text": item.raw})
            return
        where = (src.name, _where(src, item))
        if row["note_id"] is None:
            # no id in the export: a content hash is stable across runs; equal texts get -2, -3 (dedupe's job)
            base = "n-" + hashlib.sha1(row["text"].encode("utf-8")).hexdigest()[:12]
            row["note_id"], n = base, 1
            while row["note_id"] in self.seen:
                n += 1
                row["note_id"] = f"{base}-{n}"
        elif row["note_id"] in self.seen:
            first = self.seen[row["note_id"]]
            if first[0] == where[0]:  # same file: the positions are enough
                first, again = first[1], where[1]
            else:
                first, again = " ".join(filter(None, first)), " ".join(filter(None, where))
            bad = Bad("duplicate_id", f"duplicate id {row['note_id']!r}: first at {first}, again at {again}",
                      guess_id(item, src.columns)[0], row["note_id"])
            self._reject(src, item, bad, row)
            return
        self.seen[row["note_id"]] = where
        self.kept.append(row | self._lineage(src, item))

    def _reject(self, src: Source, item: Item, bad: Bad, row: dict[str, Any]) -> None:
        prefix = f"record {item.record}: " if _POSITION[src.format] == "record" and item.record else ""
        error = InputError(prefix + bad.message, file=src.name, line=bad.line or item.line,
                           field=bad.field, value=bad.value)
        if not self.cfg.skip_invalid:
            raise error
        meta = json.loads(row["metadata"]) if row.get("metadata") else {}
        meta["ingest_error"] = str(error)  # what the run would have stopped with, for the person who looks
        self.rejects.append(row | self._lineage(src, item) | {
            "text": row["text"] if bad.reason == "duplicate_id" else readable(row.get("text") or ""),
            "metadata": dumps_metadata(meta)})
        self.reasons.append(bad.reason)

    def _lineage(self, src: Source, item: Item) -> dict[str, Any]:
        kind = _POSITION[src.format]
        position = (item.record or None) if kind == "record" else item.line if kind == "line" else None
        return {"source_file": src.name, "source_line": position, "source_format": src.format,
                "origin": "export", "synthetic": False}


def _where(src: Source, item: Item) -> str:
    """Where a record sits in its file, in words."""
    kind = _POSITION[src.format]
    if kind == "record":
        return f"record {item.record} (line {item.line})"
    return f"line {item.line}" if kind == "line" else ""
