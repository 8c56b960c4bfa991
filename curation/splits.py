"""Deterministic train/validation/test assignment.

A row's split comes from a salted hash of its group (its duplicate cluster when it has one,
else its note id), so adding notes never moves old ones, every row of one note and every
member of a duplicate cluster land on the same side, and nothing leaks from train into test.
Because the hash ignores the category, each category gets the configured proportions in
expectation; the manifest records the per-category counts so a skewed small category is visible.
"""

from __future__ import annotations

import hashlib

import polars as pl

from assay.curation.config import SplitConfig


def assign_splits(df: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    group = df["dup_cluster"] if "dup_cluster" in df.columns else pl.Series([None] * df.height, dtype=pl.String)
    keys = [g if g is not None else f"note:{n}" for g, n in zip(group, df["note_id"])]
    train_edge, val_edge = cfg.train, cfg.train + cfg.validation
    splits = []
    for key in keys:
        u = int.from_bytes(hashlib.sha256(f"{cfg.salt}:{key}".encode()).digest()[:8], "big") / 2**64
        splits.append("train" if u < train_edge else "validation" if u < val_edge else "test")
    return df.with_columns(pl.Series("split", splits, dtype=pl.String))


def assign_synthetic_splits(df: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    """Synthetic rows train or validate, in the configured train:validation ratio, never test: an
    evaluation is about real notes. The same salted hash keeps a rerun's assignment stable."""
    edge = cfg.train / (cfg.train + cfg.validation) if cfg.train + cfg.validation else 1.0
    splits = []
    for note_id in df["note_id"]:
        u = int.from_bytes(hashlib.sha256(f"{cfg.salt}:synthetic:{note_id}".encode()).digest()[:8], "big") / 2**64
        splits.append("train" if u < edge else "validation")
    return df.with_columns(pl.Series("split", splits, dtype=pl.String))


def split_counts(df: pl.DataFrame, cfg: SplitConfig) -> dict:
    counts = {s: int((df["split"] == s).sum()) for s in ("train", "validation", "test")}
    by = cfg.report_by
    if by and by in df.columns:
        table = df.group_by(by, "split").len().sort(by)
        per: dict[str, dict[str, int]] = {}
        for value, split, n in table.iter_rows():
            per.setdefault(str(value), {"train": 0, "validation": 0, "test": 0})[split] = n
        counts[f"by_{by}"] = per
    return counts
