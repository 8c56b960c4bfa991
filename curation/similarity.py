"""Semantic similarity for dedupe: unit embeddings, pairs above a cosine by blocks, word overlap."""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from assay.curation.config import SemanticDedupeConfig

Progress = Callable[[int], None]


def long_enough(norm: pl.Series, min_words: int) -> np.ndarray:
    """Rows with at least min_words words: in a shorter note one changed word (another day, another
    number) is the whole difference, and it barely moves the embedding."""
    words = (norm.str.count_matches(" ", literal=True) + 1).to_numpy()
    return np.flatnonzero((norm.to_numpy() != "") & (words >= min_words))


def embed_unit(embedder, texts: pl.Series, batch_size: int, progress: Progress | None = None,
           chunk: int = 2048) -> np.ndarray:
    """Unit-length embeddings, encoded longest texts first in chunks (for progress) of similar lengths."""
    values = texts.to_list()
    order = np.argsort([-len(t) for t in values], kind="stable")
    out: np.ndarray | None = None
    for s in range(0, len(values), chunk):
        idx = order[s:s + chunk]
        vecs = embedder.encode([values[k] for k in idx], batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True)
        if out is None:
            out = np.empty((len(values), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if progress:
            progress(len(idx))
    return out if out is not None else np.zeros((0, 1), dtype=np.float32)


def similar_pairs(emb: np.ndarray, threshold: float, other: np.ndarray | None = None,
                   max_block: int = 1 << 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs with cosine >= threshold, by blocks of rows so memory stays at max_block floats.
    Within one set: pairs i < j. Against `other`: (row of emb, row of other)."""
    target = emb if other is None else other
    n, m = len(emb), len(target)
    step = max(1, min(n, max_block // max(m, 1)))
    found_i, found_j, found_s = [], [], []
    for s in range(0, n, step):
        block = emb[s:s + step] @ target.T
        if other is None:  # keep the upper triangle only
            block[np.arange(block.shape[0])[:, None] + s >= np.arange(m)[None, :]] = -1.0
        bi, bj = np.nonzero(block >= threshold)
        found_i.append(bi + s)
        found_j.append(bj)
        found_s.append(block[bi, bj].astype(np.float64))
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)


def word_overlap(norm_a: pl.Series, norm_b: pl.Series, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the sets of words of texts a[i[k]] and b[j[k]] (only the few candidate pairs)."""
    if len(i) == 0:
        return np.zeros(0)
    words_a = {r: set(t.split(" ")) for r, t in zip(np.unique(i), norm_a.gather(np.unique(i)).to_list())}
    words_b = {r: set(t.split(" ")) for r, t in zip(np.unique(j), norm_b.gather(np.unique(j)).to_list())}
    return np.array([len(words_a[a] & words_b[b]) / max(len(words_a[a] | words_b[b]), 1) for a, b in zip(i, j)])


def load_embedder(cfg: SemanticDedupeConfig):
    from assay.models import load_embedder

    return load_embedder(cfg.model)
