"""Training references that break their task's length contract: counted and listed by `assay curate`, kept.

A student learns the length it is shown. When an export's summaries run to three sentences, the student
writes three, and the ship gate's length rule (evals' length_ok, the same contract) refuses it; the
place to see that is curation, before any training. The rows stay in the data (they are the user's
labels, and a longer summary may be what they want, with a gate to match): the manifest counts them by
reason and `length_contract.parquet` lists them, so a person can fix or drop them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl

from assay.curation.synth.tasks import TASKS

TRAINED_ON = ("train", "validation")  # the rows a student learns from and is chosen on


def length_report(df: pl.DataFrame) -> tuple[list[dict[str, Any]], pl.DataFrame | None]:
    """Per task with a contract: its training references, how many break it and why; and those rows."""
    if not {"task", "output", "split"} <= set(df.columns):
        return [], None
    report, tables = [], []
    for name, task in TASKS.items():
        if task.length_contract is None:
            continue
        rows = df.filter((pl.col("task") == name) & pl.col("split").is_in(TRAINED_ON) & pl.col("output").is_not_null())
        if not rows.height:
            continue
        reasons = [task.length_contract(text) for text in rows["output"].to_list()]
        broken = rows.with_columns(pl.Series("reason", reasons, dtype=pl.String)).filter(pl.col("reason").is_not_null())
        report.append({"task": name, "contract": task.contract_words, "references": rows.height,
                       "outside": broken.height, "reasons": dict(Counter(r for r in reasons if r).most_common())})
        if broken.height:
            tables.append(broken.select("note_id", "split", "task", "reason", "output"))
    return report, (pl.concat(tables) if tables else None)


def describe(entry: dict[str, Any]) -> str:
    """One sentence for the curate summary."""
    reasons = ", ".join(f"{r}={n}" for r, n in entry["reasons"].items())
    return (f"{entry['outside']} of {entry['references']} {entry['task']} references to train on break the task's "
            f"length contract ({entry['contract']}): {reasons}. The student learns the length it is shown and "
            "the ship gate checks this contract (length_ok): fix or drop them")
