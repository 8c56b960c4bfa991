"""Balance: a coverage table over configurable dimensions, downsampling of crowded cells, and the gap list.

The gap list (cells under target, with how many rows are missing) goes into the manifest,
where synthetic generation reads it to know what to fill.
"""

from __future__ import annotations

import hashlib
import json
from statistics import median

import polars as pl

from assay.curation.config import BalanceConfig
from assay.curation.steps import StepResult, split_by_reason

NONE = "(none)"


def cell_columns(df: pl.DataFrame, cfg: BalanceConfig) -> pl.DataFrame:
    """One string column per dimension, named like the dimension, with the row's cell value."""
    low, *rest = cfg.length_buckets
    high = rest[-1] if rest else low
    exprs = {
        "category": pl.col("category").fill_null(NONE),
        # a note can carry several tags; its first one decides its cell so every row sits in exactly one
        "tag": pl.col("tags").list.first().fill_null(NONE),
        "folder": pl.col("metadata").map_elements(_folder, return_dtype=pl.String).fill_null(NONE),
        "task": pl.col("task").fill_null("note"),
        "length": pl.when(pl.col("text").str.len_chars() < low).then(pl.lit(f"short(<{low})"))
        .when(pl.col("text").str.len_chars() < high).then(pl.lit(f"medium(<{high})"))
        .otherwise(pl.lit("long")),
        "month": pl.col("created_at").dt.strftime("%Y-%m").fill_null(NONE),
    }
    return df.select([exprs[d].alias(d) for d in cfg.dimensions])


def _folder(metadata: str | None) -> str | None:
    if not metadata:
        return None
    folder = json.loads(metadata).get("folder")
    return str(folder).split("/")[0] if folder else None


def cell_key(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def coverage(df: pl.DataFrame, cfg: BalanceConfig) -> list[dict]:
    """Rows per cell with its target and how many are missing, largest cells first."""
    if df.height == 0:
        return []
    counts = cell_columns(df, cfg).group_by(cfg.dimensions).len("rows").sort("rows", descending=True)
    default_target = cfg.target_per_cell or max(1, int(median(counts["rows"].to_list())))
    table = []
    for row in counts.iter_rows(named=True):
        key = cell_key({d: row[d] for d in cfg.dimensions})
        target = cfg.targets.get(key, default_target)
        table.append({"cell": key, "rows": row["rows"], "target": target, "missing": max(0, target - row["rows"])})
    return table


def balance(df: pl.DataFrame, cfg: BalanceConfig) -> StepResult:
    reasons: list[str | None] = [None] * df.height
    if cfg.enabled and cfg.max_per_cell is not None and df.height:
        keys = [cell_key(dict(zip(cfg.dimensions, values))) for values in cell_columns(df, cfg).iter_rows()]
        # rows compete for a cell's places in the order of a seeded hash of their id:
        # stable when rows are added, and no RNG state to carry around
        order = sorted(range(df.height), key=lambda i: (_stable_rank(cfg.seed, df["note_id"][i]), i))
        seen: dict[str, int] = {}
        for i in order:
            seen[keys[i]] = seen.get(keys[i], 0) + 1
            if seen[keys[i]] > cfg.max_per_cell:
                reasons[i] = f"over_represented:{keys[i]}"
    result = split_by_reason(df, reasons, "balance")
    after = coverage(result.kept, cfg) if cfg.enabled else []
    result.extra = {"coverage_before": coverage(df, cfg) if cfg.enabled else [], "coverage": after,
                    "gaps": [c for c in after if c["missing"] > 0]}
    return result


def _stable_rank(seed: int, note_id: str) -> str:
    return hashlib.blake2b(f"{seed}:{note_id}".encode(), digest_size=8).hexdigest()
