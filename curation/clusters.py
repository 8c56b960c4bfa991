"""Duplicate clusters: which row of each is kept, why, the reason on every other member, and the
`dup_cluster` id that keeps a cluster on one side of the split (used by every dedupe pass, `curation.dedupe`).

Which row is kept: the longest text (normalized characters), then the earliest created_at (missing dates
last), then the smallest note_id; the `why` column of the cluster table says which of these decided.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from assay.curation import minhash
from assay.curation.steps import StepResult, split_by_reason

CLUSTER_SCHEMA = {"cluster_id": pl.String, "note_id": pl.String, "kind": pl.String, "kept": pl.Boolean,
                  "kept_id": pl.String, "similarity": pl.Float64, "why": pl.String}


def allowed_mask(df: pl.DataFrame, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Only rows of the same task and of different notes can be near or semantic duplicates."""
    if len(i) == 0:
        return np.zeros(0, dtype=bool)
    task = int_codes(string_col(df, "task"))
    note = int_codes(df["note_id"])
    return (task[i] == task[j]) & (note[i] != note[j])


def edge_components(n: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that have at least one edge, and the component label of each."""
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    nodes = np.unique(np.concatenate([i, j]))
    local = minhash.components(len(nodes), np.searchsorted(nodes, i), np.searchsorted(nodes, j))
    return nodes, nodes[local]


def resolve(df: pl.DataFrame, norm: pl.Series, rows: np.ndarray, labels: np.ndarray, kind: str,
             similarity: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[StepResult, np.ndarray]:
    """Pick the kept row of each cluster, name the reason for every other member, build the table."""
    n = df.height
    created = df["created_at"] if "created_at" in df.columns else pl.Series([None] * n, dtype=pl.Datetime("us", "UTC"))
    m = pl.DataFrame({
        "row": rows, "label": labels,
        "note_id": df["note_id"].gather(rows), "length": norm.str.len_chars().gather(rows),
        "created_at": created.gather(rows),
    }).sort(["label", "length", "created_at", "note_id", "row"], descending=[False, True, False, False, False],
            nulls_last=True)
    first = pl.col("row").first().over("label")
    m = m.with_columns(
        first.alias("win_row"),
        pl.col("note_id").first().over("label").alias("kept_id"),
        pl.col("length").first().over("label").alias("win_len"),
        pl.col("created_at").first().over("label").alias("win_created"),
    )
    # near/semantic: every row of the winning note stays (its other outputs); exact: one row, even of one note
    same_note = (pl.col("note_id") == pl.col("kept_id")) if kind != "exact" else pl.lit(False)
    m = m.with_columns(((pl.col("row") == pl.col("win_row")) | same_note).alias("kept"))
    # the runner-up (best row of another note) is what the winner is compared with in its own `why`
    runner = (m.filter(~pl.col("kept")).group_by("label", maintain_order=True)
              .agg(pl.col("length").first().alias("ru_len"), pl.col("created_at").first().alias("ru_created"),
                   pl.col("note_id").first().alias("ru_id")))
    m = m.join(runner, on="label", how="left", maintain_order="left")
    m = m.with_columns(_why().alias("why"))
    win_rows = m["win_row"].to_numpy()
    member_rows = m["row"].to_numpy()
    sims = np.ones(m.height) if kind == "exact" else np.asarray(similarity(member_rows, win_rows), dtype=np.float64)
    sims[member_rows == win_rows] = 1.0
    # cluster ids name the kept note; a note that wins several clusters (several tasks) gets #2, #3
    heads = m.filter(pl.col("row") == pl.col("win_row")).select("label", "kept_id").sort("label")
    heads = heads.with_columns(pl.format(f"{kind}:{{}}", "kept_id").alias("base"))
    heads = heads.with_columns(pl.int_range(pl.len()).over("base").alias("k"))
    heads = heads.with_columns(pl.when(pl.col("k") == 0).then(pl.col("base"))
                               .otherwise(pl.format("{}#{}", "base", pl.col("k") + 1)).alias("cluster_id"))
    m = m.with_columns(pl.Series("similarity", sims)).join(heads.select("label", "cluster_id"), on="label",
                                                           maintain_order="left")
    table = m.select("cluster_id", "note_id", pl.lit(kind).alias("kind"), "kept", "kept_id", "similarity", "why")

    reasons = np.full(n, None, dtype=object)
    dropped = m.filter(~pl.col("kept"))
    reasons[dropped["row"].to_numpy()] = [f"{kind}_duplicate_of:{k}" for k in dropped["kept_id"].to_list()]
    cluster_of = np.full(n, None, dtype=object)
    cluster_of[member_rows] = m["cluster_id"].to_numpy()
    marked = df.with_columns(_dup_cluster(df, cluster_of))
    result = split_by_reason(marked, pl.Series(reasons.tolist(), dtype=pl.String), f"dedupe_{kind}", clusters=table)
    keep = np.ones(n, dtype=bool)
    keep[dropped["row"].to_numpy()] = False
    return result, keep


def _why() -> pl.Expr:
    def decided(len_a: str, len_b: str, created_a: str, created_b: str, id_a: str, id_b: str) -> pl.Expr:
        return (pl.when(pl.col(len_a) != pl.col(len_b))
                .then(pl.format("longest text ({} > {} chars)", pl.col(len_a), pl.col(len_b)))
                .when(pl.col(created_a).is_not_null() & (pl.col(created_b).is_null()
                                                         | (pl.col(created_a) != pl.col(created_b))))
                .then(pl.lit("earliest created_at (") + pl.col(created_a).dt.strftime("%Y-%m-%d %H:%M")
                      + pl.lit(")"))
                .when(pl.col(id_a) != pl.col(id_b)).then(pl.lit("smallest note_id"))
                .otherwise(pl.lit("first of identical rows")))

    winner = pl.lit("kept: ") + decided("length", "ru_len", "created_at", "ru_created", "note_id", "ru_id")
    return (pl.when(pl.col("row") == pl.col("win_row")).then(winner)
            .when(pl.col("kept")).then(pl.lit("same note as the kept row"))
            .otherwise(decided("win_len", "length", "win_created", "created_at", "kept_id", "note_id")))


def _dup_cluster(df: pl.DataFrame, cluster_of: np.ndarray) -> pl.Series:
    """One id per group of rows tied together by this pass's clusters, earlier dup_cluster ids and
    shared notes: the smallest id in the group. Rows of groups with no cluster get null."""
    n = df.height
    previous = df["dup_cluster"] if "dup_cluster" in df.columns else pl.Series([None] * n, dtype=pl.String)
    current = pl.Series(cluster_of.tolist(), dtype=pl.String)
    # nodes: rows, then one per note, per previous id, per current id
    note = int_codes(df["note_id"])
    prev_code = int_codes(previous, nulls=-1)
    cur_code = int_codes(current, nulls=-1)
    base_prev = n + note.max(initial=-1) + 1
    base_cur = base_prev + prev_code.max(initial=-1) + 1
    total = base_cur + cur_code.max(initial=-1) + 1
    rows = np.arange(n)
    i = [rows, rows[prev_code >= 0], rows[cur_code >= 0]]
    j = [n + note, base_prev + prev_code[prev_code >= 0], base_cur + cur_code[cur_code >= 0]]
    comp = minhash.components(total, np.concatenate(i), np.concatenate(j))[:n]
    labels = pl.DataFrame({"comp": np.concatenate([comp, comp]), "id": pl.concat([previous, current])})
    best = labels.drop_nulls("id").group_by("comp").agg(pl.col("id").min())
    joined = pl.DataFrame({"comp": comp}).join(best, on="comp", how="left", maintain_order="left")
    return joined["id"].alias("dup_cluster")


# --- columns as arrays ----------------------------------------------------------------------------

def note_texts(df: pl.DataFrame) -> pl.Series:
    return df["text"].fill_null("")


def string_col(df: pl.DataFrame, name: str) -> pl.Series:
    return df[name].cast(pl.String) if name in df.columns else pl.Series(name, [None] * df.height, dtype=pl.String)


def int_codes(values: pl.Series, nulls: int | None = None) -> np.ndarray:
    """Integer codes of a column's values (0..distinct-1 in order of appearance); nulls get one more
    code of their own, or `nulls` when given."""
    first = pl.DataFrame({"v": values}).with_row_index("i").select(pl.col("i").min().over("v"))["i"]
    codes = first.rank("dense").to_numpy().astype(np.int64) - 1
    if nulls is not None:
        codes = np.where(values.is_null().to_numpy(), nulls, codes)
    return codes
