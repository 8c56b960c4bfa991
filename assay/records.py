"""The one record type: a note row with its labels and lineage, as polars columns.

Every step takes a frame of these columns and returns one; lineage columns
(note_id, origin, teacher, prompt_version, reviewers, decision) survive every step.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")

NOTE_SCHEMA: dict[str, pl.DataType] = {
    "note_id": pl.String,
    "title": pl.String,
    "text": pl.String,
    "created_at": UTC_TIME,
    "category": pl.String,
    "tags": pl.List(pl.String),
    "metadata": pl.String,  # JSON object of the fields the export had that we do not model
    # where the row came from, so errors and reviewers can find it again
    "source_file": pl.String,
    "source_line": pl.Int64,
    "source_format": pl.String,
    # labels an export may already carry, or that synthesis/review add
    "task": pl.String,
    "instruction": pl.String,
    "input": pl.String,
    "output": pl.String,
    "messages": pl.String,  # JSON list of {"role", "content"}
    # lineage
    "origin": pl.String,  # "export", "synthetic", "human"
    "teacher": pl.String,
    "prompt_version": pl.String,
    "synthetic": pl.Boolean,
    "reviewers": pl.List(pl.String),
    "decision": pl.String,
}

LINEAGE_COLUMNS = ("note_id", "origin", "teacher", "prompt_version", "synthetic", "reviewers", "decision")
REJECT_COLUMNS = {"step": pl.String, "reason": pl.String}


def notes_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Build a frame with the full note schema; missing columns become nulls."""
    rows = list(rows)
    filled = [{col: row.get(col) for col in NOTE_SCHEMA} for row in rows]
    return pl.DataFrame(filled, schema=NOTE_SCHEMA, orient="row") if filled else empty_notes()


def empty_notes() -> pl.DataFrame:
    return pl.DataFrame(schema=NOTE_SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add any missing note columns as nulls and put the note columns first."""
    missing = [pl.lit(None, dtype=dtype).alias(col) for col, dtype in NOTE_SCHEMA.items() if col not in df.columns]
    if missing:
        df = df.with_columns(missing)
    extra = [c for c in df.columns if c not in NOTE_SCHEMA]
    return df.select([*NOTE_SCHEMA, *extra])


def dumps_metadata(fields: dict[str, Any]) -> str | None:
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str) if fields else None
