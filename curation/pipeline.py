"""`assay curate`: ingest -> clean -> dedupe -> balance -> split, written as one dataset version."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import polars as pl

from assay.curation.balance import balance
from assay.curation.clean import clean
from assay.curation.config import CurateConfig
from assay.curation.contract import length_report
from assay.curation.dedupe import dedupe
from assay.curation.ingest import ingest
from assay.curation.splits import assign_splits, split_counts
from assay.curation.steps import StepResult
from assay.store import DatasetStore, Version


class Tracker(Protocol):
    """Makes a progress callback for a piece of work of known size (rich in the CLI, nothing in tests)."""

    def __call__(self, description: str, total: int | None) -> Callable[[int], None]: ...


def no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda advance: None


@dataclass
class CurateRun:
    version: Version
    steps: list[StepResult]

    @property
    def table(self) -> list[dict]:
        return self.version.manifest["steps"]


def curate(export: str | Path, cfg: CurateConfig, *, name: str, store: DatasetStore,
           track: Tracker = no_progress, embedder=None, duplicate_reviews: pl.DataFrame | None = None,
           stage: dict | None = None) -> CurateRun:
    """`duplicate_reviews`: reviewers' same-note answers (curation/review/duplicates.load_decisions);
    `stage` (assay.stage's fingerprint and inputs) goes into the manifest, so an unchanged rerun is found."""
    store.check_writable(name)  # a bad name or a broken dataset folder is said before the work, not after
    steps: list[StepResult] = []
    tick = track("ingest", None)
    steps.append(ingest(export, cfg.ingest, progress=tick))
    steps.append(clean(steps[-1].kept, cfg.clean))
    if cfg.dedupe.semantic.enabled and embedder is None:
        from assay.models import load_embedder

        embedder = load_embedder(cfg.dedupe.semantic.model)
    steps += dedupe(steps[-1].kept, cfg.dedupe, embedder=embedder, progress=track("dedupe", steps[-1].kept.height),
                    reviewed=duplicate_reviews)
    steps.append(balance(steps[-1].kept, cfg.balance))
    final = assign_splits(steps[-1].kept, cfg.split)

    rejects = [s.rejects for s in steps if s.rejects.height]
    clusters = [s.extra["clusters"] for s in steps
                if s.extra.get("clusters") is not None and s.extra["clusters"].height]
    tables = {}
    if rejects:
        tables["rejects"] = pl.concat(rejects, how="diagonal_relaxed")
    if clusters:
        tables["clusters"] = pl.concat(clusters, how="diagonal_relaxed")
    possible = [s.extra["possible"] for s in steps if s.extra.get("possible") is not None]
    if possible:  # kept notes that may be duplicates, for a person to decide (both still in the data)
        ids = final["note_id"].unique().implode()
        tables["possible_duplicates"] = pl.concat(possible).filter(
            pl.col("note_id_a").is_in(ids) & pl.col("note_id_b").is_in(ids))
    contract, broken = length_report(final)  # kept, counted and listed: the user's labels, for a person to fix
    if broken is not None:
        tables["length_contract"] = broken
    dropped = Counter()
    for step in steps:
        dropped.update(step.dropped)
    rows_in = steps[0].rows_in
    # the invariant users rely on: every input record is either in the data or in rejects, with a reason
    assert rows_in == final.height + sum(dropped.values()), (rows_in, final.height, dict(dropped))
    balance_step = steps[-1]
    version = store.write(
        name, final, step="curate", config=cfg.model_dump(mode="json"),
        tables=tables,
        source=str(export),
        inputs=steps[0].extra.get("inputs", []),
        warnings=steps[0].extra.get("warnings", []),
        rows_in=rows_in,
        dropped=dict(sorted(dropped.items())),
        steps=[{"step": s.step, "in": s.rows_in, "kept": s.kept.height, "dropped": s.dropped} for s in steps],
        coverage=balance_step.extra.get("coverage", []),
        coverage_before=balance_step.extra.get("coverage_before", []),
        gaps=balance_step.extra.get("gaps", []),
        possible_duplicates=tables["possible_duplicates"].height if "possible_duplicates" in tables else None,
        length_contract=contract,
        duplicate_reviews=None if duplicate_reviews is None else duplicate_reviews.height,
        splits=split_counts(final, cfg.split),
        **(stage or {}),
    )
    return CurateRun(version, steps)
