"""Dedupe: exact, near (MinHash + LSH) and semantic (embeddings) passes, and cross-set decontamination.

Each pass groups duplicate rows into clusters, keeps one row per cluster and drops the others with a
reason naming the kept row. Which row is kept: the longest text (normalized characters), then the
earliest created_at (missing dates last), then the smallest note_id; the `why` column of the cluster
table says which of these decided. `extra["clusters"]` lists every member of every cluster.

Labeled examples: the exact pass compares (normalized text, task, output), so the same note labeled
for two tasks, or with two different outputs, is not an exact duplicate. The near and semantic passes
compare text, but only between rows of the same task and different notes; when a cluster's winner has
several rows (one note, several outputs), all of them are kept. Cross-set mode compares text alone:
any reference row with the same or a similar text is a leak, whatever its task.

The semantic pass drops only near-certain duplicates: distinct notes on one subject embed close, and
dropping one loses a person's note. Pairs in its review band are kept and listed in `extra["possible"]`
(note_id_a, note_id_b, cosine, word_overlap, text_a, text_b), which curate writes as the version's
possible_duplicates table for a person to decide.

Reviewed pairs (`reviewed`, from `assay review pull-duplicates`): a person's answer beats the threshold. A
pair a reviewer called the same note drops one of the two (the one they kept stays, else the longer) with
`reviewed_duplicate_of:<kept id>`, in its own step before the semantic pass; a pair they called different
is never a semantic edge and is not listed for review again.

`dup_cluster` on a row names the duplicate cluster it belongs to, so splits keep a cluster, and every
row of a note that is in one, on one side. Across passes a row keeps the smallest cluster id among
the clusters that touch its note (so a note that won an exact cluster and then a near one keeps one id).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from assay.curation import minhash
from assay.curation.clusters import (
    CLUSTER_SCHEMA,
    allowed_mask,
    edge_components,
    int_codes,
    note_texts,
    resolve,
    string_col,
)
from assay.curation.config import DedupeConfig, NearDedupeConfig, SemanticDedupeConfig
from assay.curation.similarity import Progress, embed_unit, load_embedder, long_enough, similar_pairs, word_overlap
from assay.curation.steps import StepResult, split_by_reason

# --- public steps -----------------------------------------------------------------------------

def dedupe_exact(df: pl.DataFrame) -> StepResult:
    return _exact(df, minhash.normalize_texts(note_texts(df)))[0]


def dedupe_near(df: pl.DataFrame, cfg: NearDedupeConfig, progress: Progress | None = None) -> StepResult:
    return _near(df, minhash.normalize_texts(note_texts(df)), cfg, progress)[0]


def dedupe_semantic(df: pl.DataFrame, cfg: SemanticDedupeConfig, embedder=None,
                    progress: Progress | None = None, different: set[tuple[str, str]] | None = None) -> StepResult:
    return _semantic(df, cfg, embedder or load_embedder(cfg), progress, different)


def dedupe(df: pl.DataFrame, cfg: DedupeConfig, embedder=None, progress: Progress | None = None,
           reviewed: pl.DataFrame | None = None) -> list[StepResult]:
    """Run the enabled passes in order (exact, near, reviewed, semantic), each on the rows the previous one
    kept. `reviewed`: note_id_a, note_id_b, decision ("same" | "different"), keep (a note id or null)."""
    if cfg.semantic.enabled and embedder is None:
        embedder = load_embedder(cfg.semantic)
    advanced, rows_in = 0, df.height

    def tick(n: int) -> None:
        nonlocal advanced
        advanced += n
        if progress:
            progress(n)

    results: list[StepResult] = []
    norm = minhash.normalize_texts(note_texts(df))
    if cfg.exact:
        result, keep = _exact(df, norm)
        results.append(result)
        df, norm = result.kept, norm.filter(keep)
    if cfg.near.enabled:
        # the slowest enabled pass drives the progress bar; the others are quick by comparison
        result, keep = _near(df, norm, cfg.near, None if cfg.semantic.enabled else tick)
        results.append(result)
        df = result.kept
    different: set[tuple[str, str]] = set()
    if reviewed is not None and reviewed.height:
        same = reviewed.filter(pl.col("decision") == "same")
        different = {tuple(sorted(p)) for p in reviewed.filter(pl.col("decision") == "different")
                     .select("note_id_a", "note_id_b").iter_rows()}
        result = dedupe_reviewed(df, same)
        results.append(result)
        df = result.kept
    if cfg.semantic.enabled:
        results.append(_semantic(df, cfg.semantic, embedder, tick, different))
    if progress and advanced < rows_in:
        progress(rows_in - advanced)
    return results


def cross_dedupe(df: pl.DataFrame, reference: pl.DataFrame, cfg: DedupeConfig, reference_name: str,
                 embedder=None) -> StepResult:
    """Drop rows of df whose text is the same as, or a near or semantic duplicate of, a reference row."""
    n = df.height
    norm, ref_norm = minhash.normalize_texts(note_texts(df)), minhash.normalize_texts(note_texts(reference))
    ref_ids = reference["note_id"].to_numpy() if reference.height else np.array([], dtype=object)
    match = np.full(n, -1, dtype=np.int64)  # the reference row each df row leaks into
    sim = np.zeros(n, dtype=np.float64)
    kind = np.full(n, None, dtype=object)

    def record(rows: np.ndarray, refs: np.ndarray, sims: np.ndarray, label: str) -> None:
        # best match per df row, and only for rows an earlier pass did not already catch
        order = np.lexsort((-sims, rows))
        rows, refs, sims = rows[order], refs[order], sims[order]
        first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, bool)
        rows, refs, sims = rows[first], refs[first], sims[first]
        new = match[rows] < 0
        match[rows[new]], sim[rows[new]], kind[rows[new]] = refs[new], sims[new], label

    if cfg.exact and n and reference.height:
        left = pl.DataFrame({"norm": norm, "row": np.arange(n)}).filter(pl.col("norm") != "")
        right = pl.DataFrame({"norm": ref_norm, "ref": np.arange(reference.height)}).filter(pl.col("norm") != "")
        hits = left.join(right.group_by("norm").agg(pl.col("ref").min()), on="norm")
        record(hits["row"].to_numpy(), hits["ref"].to_numpy(), np.ones(hits.height), "exact")
    if cfg.near.enabled and n and reference.height:
        is_ref = np.arange(n + reference.height) >= n
        i, j, sketches = _near_candidates(pl.concat([norm, ref_norm]), cfg.near, first=is_ref)
        cross = (i < n) & (j >= n)  # i < j, so a crossing pair has the df row first
        i, j = i[cross], j[cross]
        est = sketches.jaccard(i, j)
        ok = est >= cfg.near.threshold
        record(i[ok], j[ok] - n, est[ok], "near")
    if cfg.semantic.enabled and n and reference.height:
        sem = cfg.semantic
        model = embedder or load_embedder(sem)
        mine, theirs = long_enough(norm, sem.min_words), long_enough(ref_norm, sem.min_words)
        if len(mine) and len(theirs):
            emb = embed_unit(model, note_texts(df).gather(mine), sem.batch_size)
            ref_emb = embed_unit(model, note_texts(reference).gather(theirs), sem.batch_size)
            # a leak is anything the semantic pass would drop or list for review: a test row dropped
            # costs little, one that leaks inflates every score measured on it
            threshold, overlap = sem.threshold, sem.min_word_overlap
            if sem.review_threshold is not None:
                threshold, overlap = sem.review_threshold, min(overlap, sem.review_min_word_overlap)
            rows, refs, sims = similar_pairs(emb, threshold, other=ref_emb)
            rows, refs = mine[rows], theirs[refs]
            ok = word_overlap(norm, ref_norm, rows, refs) >= overlap
            record(rows[ok], refs[ok], sims[ok], "semantic")

    leaked = np.flatnonzero(match >= 0)
    reasons = np.full(n, None, dtype=object)
    reasons[leaked] = [f"leaks_into:{reference_name}:{ref_ids[r]}" for r in match[leaked]]
    members = pl.DataFrame({
        "cluster_id": [f"leak:{reference_name}:{ref_ids[r]}" for r in match[leaked]],
        "note_id": df["note_id"].to_numpy()[leaked] if n else [],
        "kind": kind[leaked], "kept": False, "kept_id": ref_ids[match[leaked]] if n else [],
        "similarity": sim[leaked], "why": [f"{k} duplicate of a {reference_name} row" for k in kind[leaked]],
    }, schema_overrides=CLUSTER_SCHEMA) if len(leaked) else pl.DataFrame(schema=CLUSTER_SCHEMA)
    refs_hit = (members.select("cluster_id", pl.col("kept_id").alias("note_id"), "kind")
                .unique("cluster_id", keep="first"))
    table = pl.concat([
        refs_hit.with_columns(pl.lit(True).alias("kept"), pl.col("note_id").alias("kept_id"),
                              pl.lit(1.0).alias("similarity"), pl.lit(f"row of {reference_name}").alias("why")),
        members,
    ], how="diagonal_relaxed").select(list(CLUSTER_SCHEMA)).sort("cluster_id", "kept", descending=[False, True])
    return split_by_reason(df, pl.Series(reasons.tolist(), dtype=pl.String), "decontaminate", clusters=table)


# --- the passes -----------------------------------------------------------------------------

def _exact(df: pl.DataFrame, norm: pl.Series) -> tuple[StepResult, np.ndarray]:
    task, output = string_col(df, "task"), string_col(df, "output")
    # a 64-bit hash of (text, task, output) finds the few candidate rows; the strings then decide
    key = norm.hash(1).to_numpy() ^ (task.hash(2).to_numpy() * np.uint64(3))
    key ^= output.hash(3).to_numpy() * np.uint64(5)
    maybe = pl.Series(key).is_duplicated().to_numpy() & (norm.str.len_bytes().to_numpy() > 0)
    candidates = pl.DataFrame({"norm": norm.filter(maybe), "task": task.filter(maybe), "output": output.filter(maybe),
                               "row": np.flatnonzero(maybe)})
    found = (candidates.group_by("norm", "task", "output").agg(pl.col("row"))
              .filter(pl.col("row").list.len() > 1).with_columns(pl.col("row").list.min().alias("label"))
              .explode("row").sort("row"))
    rows, labels = found["row"].to_numpy(), found["label"].to_numpy()
    return resolve(df, norm, rows, labels, "exact", lambda a, b: np.ones(len(a)))


def _near(df: pl.DataFrame, norm: pl.Series, cfg: NearDedupeConfig,
          progress: Progress | None) -> tuple[StepResult, np.ndarray]:
    # rows of one note with one task and one text (several outputs) are sketched once, as one unit
    unit = _units(df, norm)
    reps = np.flatnonzero(unit == np.arange(df.height))
    task = int_codes(string_col(df, "task"))
    i, j, sketches = _near_candidates(norm.gather(reps), cfg, progress, groups=task[reps])
    est = sketches.jaccard(i, j)
    i, j = reps[i], reps[j]  # back to row numbers
    allowed = allowed_mask(df, i, j)
    ok = allowed & (est >= cfg.threshold)
    rep_members, rep_labels = edge_components(df.height, i[ok], j[ok])
    label_of = np.full(df.height, -1, dtype=np.int64)
    label_of[rep_members] = rep_labels
    members = np.flatnonzero(label_of[unit] >= 0)
    local = np.full(df.height, -1, dtype=np.int64)
    local[reps] = np.arange(len(reps))
    return resolve(df, norm, members, label_of[unit[members]], "near",
                    lambda a, b: sketches.jaccard(local[unit[a]], local[unit[b]]))


def _units(df: pl.DataFrame, norm: pl.Series) -> np.ndarray:
    """For each row, the first row with the same note, task and normalized text."""
    if df["note_id"].n_unique() == df.height:
        return np.arange(df.height)
    keys = pl.DataFrame({"note": df["note_id"], "task": string_col(df, "task"), "norm": norm}).with_row_index("i")
    return keys.select(pl.col("i").min().over("note", "task", "norm"))["i"].to_numpy().astype(np.int64)


def dedupe_reviewed(df: pl.DataFrame, same: pl.DataFrame) -> StepResult:
    """Drop one note of each pair a reviewer called the same note: not the one they kept, else the shorter.
    Chains resolve to one kept note (a = b and b = c keep one of the three); pairs with a note absent here
    (cleaned or dropped earlier) change nothing."""
    present = set(df["note_id"].to_list())
    length = dict(zip(df["note_id"].to_list(), minhash.normalize_texts(note_texts(df)).str.len_chars().to_list()))
    parent: dict[str, str] = {}

    def root(note: str) -> str:
        while note in parent:
            note = parent[note]
        return note

    for a, b, keep in same.sort("note_id_a", "note_id_b").select("note_id_a", "note_id_b", "keep").iter_rows():
        if a not in present or b not in present:
            continue
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        if keep in (a, b):
            kept = root(keep)
        else:  # reviewers split between A and B: dedupe's own rule, the longer text, then the smaller id
            kept = min((ra, rb), key=lambda n: (-length[n], n))
        parent[rb if kept == ra else ra] = kept
    dropped = {note: root(note) for note in parent}
    reasons = [f"reviewed_duplicate_of:{dropped[n]}" if n in dropped else None for n in df["note_id"].to_list()]
    members = sorted(set(dropped) | set(dropped.values()))
    table = pl.DataFrame([{"cluster_id": f"reviewed:{dropped.get(n, n)}", "note_id": n, "kind": "reviewed",
                           "kept": n not in dropped, "kept_id": dropped.get(n, n), "similarity": None,
                           "why": "a reviewer said: same note"} for n in members], schema=CLUSTER_SCHEMA)
    return split_by_reason(df, pl.Series(reasons, dtype=pl.String), "dedupe_reviewed", clusters=table)


def _semantic(df: pl.DataFrame, cfg: SemanticDedupeConfig, embedder, progress: Progress | None,
              different: set[tuple[str, str]] | None = None) -> StepResult:
    norm = minhash.normalize_texts(note_texts(df))
    rows = long_enough(norm, cfg.min_words)
    emb = embed_unit(embedder, note_texts(df).gather(rows), cfg.batch_size, progress)
    if progress and len(rows) < df.height:
        progress(df.height - len(rows))
    review = cfg.review_threshold if cfg.review_threshold is not None else cfg.threshold
    i, j, sims = similar_pairs(emb, min(cfg.threshold, review))
    i, j = rows[i], rows[j]
    allowed = allowed_mask(df, i, j)
    ids = df["note_id"].to_list()
    if different:  # a reviewer said these are different notes: never an edge, never listed again
        allowed &= np.array([tuple(sorted((ids[a], ids[b]))) not in different for a, b in zip(i, j)], dtype=bool)
    i, j, sims = i[allowed], j[allowed], sims[allowed]
    overlap = word_overlap(norm, norm, i, j)
    certain = (sims >= cfg.threshold) & (overlap >= cfg.min_word_overlap)
    members, labels = edge_components(df.height, i[certain], j[certain])
    if different:  # a cluster that still joins two notes a reviewer told apart (a ~ b ~ c, a != c) drops
        # nothing: its pairs go back to the review band for a person to settle
        label_of = {ids[r]: lab for r, lab in zip(members.tolist(), labels.tolist())}
        split = {label_of[a] for a, b in different if a in label_of and label_of[a] == label_of.get(b)}
        if split:
            row_label = np.full(df.height, -1, dtype=np.int64)
            row_label[members] = labels
            certain &= ~np.isin(row_label[i], list(split))
            members, labels = edge_components(df.height, i[certain], j[certain])
    where = np.full(df.height, -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    result, keep = resolve(df, norm, members, labels, "semantic",
                            lambda a, b: np.einsum("ij,ij->i", emb[where[a]], emb[where[b]]))
    if cfg.review_threshold is not None:
        maybe = ~certain & (sims >= cfg.review_threshold) & (overlap >= cfg.review_min_word_overlap)
        maybe &= keep[i] & keep[j]  # a pair with a dropped note is settled
        result.extra["possible"] = _possible_table(df, i[maybe], j[maybe], sims[maybe], overlap[maybe])
    return result


POSSIBLE_SCHEMA = {"note_id_a": pl.String, "note_id_b": pl.String, "cosine": pl.Float64, "word_overlap": pl.Float64,
                   "text_a": pl.String, "text_b": pl.String}


def _possible_table(df: pl.DataFrame, i: np.ndarray, j: np.ndarray, sims: np.ndarray,
                    overlap: np.ndarray) -> pl.DataFrame:
    """One row per pair of notes (the closest rows where a note has several), most similar first."""
    ids, texts = df["note_id"], note_texts(df)
    a, b = ids.gather(i), ids.gather(j)
    swap = (a > b).to_numpy()
    first, second = np.where(swap, j, i), np.where(swap, i, j)
    pairs = pl.DataFrame({"note_id_a": ids.gather(first), "note_id_b": ids.gather(second), "cosine": sims,
                          "word_overlap": overlap, "text_a": texts.gather(first), "text_b": texts.gather(second)},
                         schema=POSSIBLE_SCHEMA)
    return (pairs.sort("cosine", descending=True).unique(["note_id_a", "note_id_b"], keep="first")
            .sort(["cosine", "note_id_a", "note_id_b"], descending=[True, False, False]))


# --- small helpers --------------------------------------------------------------------------

def _near_candidates(norm: pl.Series, cfg: NearDedupeConfig, progress: Progress | None = None, **kw):
    return minhash.near_candidates(norm, shingle=cfg.shingle, ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed,
                                   threshold=cfg.threshold, progress=progress, **kw)
