from datetime import datetime, timezone

import polars as pl

from assay.curation.balance import balance, coverage
from assay.curation.config import BalanceConfig, SplitConfig
from assay.curation.splits import assign_splits, split_counts
from assay.records import notes_frame


def _notes(counts: dict[str, int]) -> pl.DataFrame:
    rows = []
    for cat, n in counts.items():
        for i in range(n):
            rows.append({"note_id": f"{cat}-{i}", "text": "word " * (10 + i * 40), "category": cat,
                         "created_at": datetime(2025, 1 + i % 3, 1, tzinfo=timezone.utc), "tags": [f"t{i % 2}"]})
    return notes_frame(rows)


def test_coverage_gaps_and_downsampling():
    df = _notes({"work": 40, "journal": 12, "recipes": 3, "travel": 1})
    result = balance(df, BalanceConfig(max_per_cell=20, target_per_cell=10))
    assert result.kept.height == 20 + 12 + 3 + 1
    assert result.dropped == {"over_represented": 20}
    assert all(r == "over_represented:category=work" for r in result.rejects["reason"])
    gaps = {g["cell"]: g["missing"] for g in result.extra["gaps"]}
    assert gaps == {"category=recipes": 7, "category=travel": 9}
    before = {c["cell"]: c["rows"] for c in result.extra["coverage_before"]}
    assert before["category=work"] == 40


def test_downsampling_is_stable_when_rows_are_added():
    cfg = BalanceConfig(max_per_cell=10)
    small = balance(_notes({"work": 30}), cfg).kept["note_id"].to_list()
    bigger = _notes({"work": 30, "journal": 5})
    assert balance(bigger, cfg).kept.filter(pl.col("category") == "work")["note_id"].to_list() == small


def test_dimensions_and_targets():
    df = _notes({"work": 6, "journal": 2})
    cfg = BalanceConfig(dimensions=["category", "length", "month"],
                        targets={"category=journal,length=short(<200),month=2025-01": 4})
    table = coverage(df, cfg)
    assert sum(c["rows"] for c in table) == 8
    cell = next(c for c in table if c["cell"] == "category=journal,length=short(<200),month=2025-01")
    assert (cell["rows"], cell["target"], cell["missing"]) == (1, 4, 3)
    tags = coverage(df, BalanceConfig(dimensions=["tag"]))
    assert {c["cell"] for c in tags} == {"tag=t0", "tag=t1"}


def test_splits_are_deterministic_stable_and_keep_clusters_together():
    df = _notes({"work": 300, "journal": 100}).with_columns(
        pl.when(pl.col("note_id").str.ends_with("7")).then(pl.lit("c7")).otherwise(None).alias("dup_cluster"))
    cfg = SplitConfig()
    first = assign_splits(df, cfg)
    again = assign_splits(df.reverse(), cfg).reverse()
    assert first["split"].to_list() == again["split"].to_list()
    grown = assign_splits(pl.concat([df, _notes({"ideas": 50})], how="diagonal"), cfg)
    assert grown.head(df.height)["split"].to_list() == first["split"].to_list()
    assert first.filter(pl.col("dup_cluster") == "c7")["split"].n_unique() == 1
    counts = split_counts(first, cfg)
    assert counts["train"] + counts["validation"] + counts["test"] == df.height
    assert 0.7 < counts["train"] / df.height < 0.9
    assert set(counts["by_category"]) == {"work", "journal"}
