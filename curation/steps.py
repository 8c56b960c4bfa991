"""The shared filter wrapper: every step returns kept rows, rejected rows with a reason, and counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl


@dataclass
class StepResult:
    step: str
    kept: pl.DataFrame
    rejects: pl.DataFrame  # the input columns plus "step" and "reason"
    extra: dict = field(default_factory=dict)  # step-specific outputs (clusters, coverage, ...)

    @property
    def rows_in(self) -> int:
        return self.kept.height + self.rejects.height

    @property
    def dropped(self) -> dict[str, int]:
        """Drop counts per reason family ("near_duplicate_of:n12" counts as "near_duplicate")."""
        if self.rejects.height == 0:
            return {}
        families = Counter(reason_family(r) for r in self.rejects["reason"].to_list())
        return dict(sorted(families.items()))


def reason_family(reason: str) -> str:
    return reason.split(":", 1)[0]


def split_by_reason(df: pl.DataFrame, reasons: pl.Series | list, step: str, **extra) -> StepResult:
    """Keep rows whose reason is null; the others become rejects that carry their reason."""
    reasons = pl.Series("reason", reasons, dtype=pl.String)
    if len(reasons) != df.height:
        raise AssertionError(f"{step}: {len(reasons)} reasons for {df.height} rows")
    marked = df.with_columns(reasons)
    kept = marked.filter(pl.col("reason").is_null()).drop("reason")
    rejects = marked.filter(pl.col("reason").is_not_null()).with_columns(pl.lit(step).alias("step"))
    return StepResult(step, kept, rejects, dict(extra))
