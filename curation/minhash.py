"""Vectorized pieces of near-duplicate detection: normalize, shingle, sketch, band, verify, group.

Everything works on whole columns at once (polars for strings, numpy for hashes and sketches),
because a Python loop per note or per shingle is what makes MinHash slow. A signature matrix is
`uint32[n_texts, num_perm]`, built in O(shingles) rather than O(shingles x num_perm).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
import polars as pl

U64 = np.uint64
_MIX = U64(0x9E3779B97F4A7C15)
# scripts written without spaces between words: each character becomes a word of its own
_NO_SPACE_SCRIPTS = r"[\p{Han}\p{Hiragana}\p{Katakana}]"


def normalize_texts(texts: pl.Series) -> pl.Series:
    """Unicode NFKC, casefold, every run of whitespace collapsed to one space, trimmed; null becomes ""."""
    texts = texts.fill_null("")
    out = texts.str.to_lowercase()  # for ASCII text this is NFKC + casefold already
    other = np.flatnonzero((texts.str.len_bytes() != texts.str.len_chars()).to_numpy())
    if len(other):
        folded = [" ".join(unicodedata.normalize("NFKC", t).casefold().split()) for t in texts.gather(other).to_list()]
        out = out.scatter(other, pl.Series(folded, dtype=pl.String))
    # a single space is by far the most common whitespace; only rewrite runs and other kinds
    out = out.str.replace_all(r"[ \t\n\v\f\r]{2,}|[\t\n\v\f\r]", " ")
    edges = np.flatnonzero((out.str.starts_with(" ") | out.str.ends_with(" ")).to_numpy())
    if len(edges):  # few texts start or end with whitespace: trim only those
        out = out.scatter(edges, out.gather(edges).str.strip_chars(" "))
    return out.alias("norm")


def word_tokens(norm: pl.Series, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the words of each normalized text, flat (uint64), and the word count per text."""
    other = np.flatnonzero((norm.str.len_bytes() != norm.str.len_chars()).to_numpy())
    if len(other):
        cjk = other[norm.gather(other).str.contains(_NO_SPACE_SCRIPTS).to_numpy()]
        if len(cjk):
            spaced = (norm.gather(cjk).str.replace_all(_NO_SPACE_SCRIPTS, " $0 ")
                      .str.replace_all(" {2,}", " ").str.strip_chars(" "))
            norm = norm.scatter(cjk, spaced)
    words = norm.replace("", None).str.split(" ")
    counts = words.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = words.explode().drop_nulls().hash(seed=seed).to_numpy()
    return flat, counts


def char_tokens(norm: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Code points of each normalized text, flat (as uint64), and the length per text."""
    counts = norm.str.len_chars().to_numpy().astype(np.int64)
    flat = np.frombuffer("".join(norm.to_list()).encode("utf-32-le"), dtype=np.uint32).astype(U64)
    return flat, counts


def shingles(tokens: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every window of n consecutive tokens inside one text (flat) and the count per text.

    A text shorter than n tokens gets one shingle made of all its tokens; an empty text gets none.
    """
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    ends = starts + counts
    windows = max(len(tokens) - n + 1, 0)  # windows that start at each position of the flat token array
    h = tokens[:windows] * _MIX if n > 1 else tokens.copy()
    for k in range(1, n):
        h ^= tokens[k:k + windows]
        if k < n - 1:
            h *= _MIX
    valid = np.ones(windows, dtype=bool)
    for k in range(1, n):  # windows that run past the end of their text
        tail = ends - k
        tail = tail[(tail >= starts) & (tail < windows)]
        valid[tail] = False
    out = h[valid]
    new_counts = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle of all their tokens, inserted at the text's place
        s, c = starts[short], counts[short]
        hs = tokens[s] * _MIX
        for k in range(1, n):
            hs ^= np.where(k < c, tokens[np.minimum(s + k, len(tokens) - 1)], U64(0))
            if k < n - 1:
                hs *= _MIX
        offsets = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(new_counts[:-1], out=offsets[1:])
        full = np.empty(int(new_counts.sum()), dtype=U64)
        is_short = np.zeros(len(full), dtype=bool)
        is_short[offsets[short]] = True
        full[is_short] = hs
        full[~is_short] = out
        out = full
    # no finalizer here: signatures() rehashes every shingle (multiply, xor-shift) in each round
    return out, new_counts


_EMPTY = np.uint32(0xFFFFFFFF)
_ROUNDS = 2  # each shingle lands in two slots: fewer empty slots to fill in for short notes


def _round_multiplier(seed: int, r: int) -> np.uint64:
    x = (seed * 0x9E3779B97F4A7C15 + (r + 1) * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    return U64(x | 1)  # odd, so multiplying is a bijection on 64-bit values


def signatures(hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures, uint32[len(counts), num_perm], in O(shingles): each shingle is hashed into
    one slot per round and each slot keeps its smallest value (one-permutation hashing); slots no
    shingle reached borrow from the next filled slot (rotation densification, Shrivastava & Li 2014).
    Either way two texts agree on a slot with probability equal to their Jaccard similarity.
    Rows of empty texts stay all-empty and must not be compared."""
    n = len(counts)
    sig = np.full(n * num_perm, _EMPTY, dtype=np.uint32)
    base = np.repeat(np.arange(n, dtype=np.int64) * num_perm, counts)
    for r in range(_ROUNDS):
        x = hashes * _round_multiplier(seed, r)
        x ^= x >> U64(29)
        slot = x >> U64(32)  # the high half picks the slot, the low half is the value
        slot *= U64(num_perm)
        slot >>= U64(32)
        slot = slot.view(np.int64)  # values < num_perm: the same bits, no copy
        slot += base
        np.minimum.at(sig, slot, x.view(np.uint32)[::2])  # the low halves (little-endian), no copy
    sig = sig.reshape(n, num_perm)
    _densify(sig, counts > 0)
    return sig


def _densify(sig: np.ndarray, nonempty: np.ndarray) -> None:
    """Fill each empty slot from the next filled slot to its right (wrapping), tagged with the distance."""
    rows = np.flatnonzero(nonempty & (sig == _EMPTY).any(axis=1))
    if len(rows) == 0:
        return
    width = sig.shape[1]
    sub = sig[rows]
    empty = sub == _EMPTY
    position = np.where(empty, np.int16(2 * width), np.arange(width, dtype=np.int16))
    nearest = np.minimum.accumulate(position[:, ::-1], axis=1)[:, ::-1]
    holes = np.flatnonzero(empty)  # only the empty slots get new values
    near = nearest.ravel()[holes].astype(np.int64)
    row_start = holes - holes % width
    wrap = near == 2 * width  # past the row's last filled slot: its first filled slot, one turn later
    near[wrap] = nearest.ravel()[row_start[wrap]] + width
    flat = sub.ravel()
    flat[holes] = flat[row_start + near % width] + (near - holes % width).astype(np.uint32) * np.uint32(0x9E3779B1)
    sig[rows] = sub


@dataclass
class Sketches:
    sig: np.ndarray  # uint32[n_texts, num_perm]

    def jaccard(self, a: np.ndarray, b: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """Estimated Jaccard similarity (share of equal slots) of texts a[k] and b[k]."""
        out = np.empty(len(a), dtype=np.float64)
        for s in range(0, len(a), chunk):
            out[s:s + chunk] = (self.sig[a[s:s + chunk]] == self.sig[b[s:s + chunk]]).mean(axis=1)
        return out


def near_candidates(norm: pl.Series, *, shingle: str, ngram: int, num_perm: int, seed: int, threshold: float,
                    groups: np.ndarray | None = None, first: np.ndarray | None = None, chunk_rows: int = 50_000,
                    progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, Sketches]:
    """Pairs (i < j) of non-empty normalized texts that share an LSH band, and the signatures.
    Only texts of one group (a task) are paired; `first` rows lead their buckets (see _band_pairs).
    Texts are shingled and sketched in chunks, so the token lists never exist for all texts at once."""
    sig = np.empty((len(norm), num_perm), dtype=np.uint32)
    nonempty = np.zeros(len(norm), dtype=bool)
    for start in range(0, len(norm), chunk_rows):
        part = norm.slice(start, chunk_rows)
        tokens, counts = word_tokens(part, seed) if shingle == "word" else char_tokens(part)
        hashes, counts = shingles(tokens, counts, ngram)
        del tokens
        sig[start:start + part.len()] = signatures(hashes, counts, num_perm, seed)
        nonempty[start:start + part.len()] = counts > 0
        if progress:
            progress(part.len())
    rows = np.flatnonzero(nonempty)
    i, j = candidate_pairs(sig, rows, *lsh_params(threshold, num_perm), groups=groups, first=first)
    return i, j, Sketches(sig)


# --- locality-sensitive hashing -------------------------------------------------------------

@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.9) -> tuple[int, int]:
    """Bands and rows per band (bands * rows <= num_perm) minimizing the weighted false-positive and
    false-negative areas of the S-curve around the threshold, as datasketch does; candidates are
    verified afterwards, so a missed pair weighs more than an extra candidate."""
    grid = np.linspace(0.0, 1.0, 2001)
    best, best_cost = (num_perm, 1), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - grid ** r) ** b
            fp = np.trapezoid(np.where(grid < threshold, p, 0.0), grid)
            fn = np.trapezoid(np.where(grid >= threshold, 1.0 - p, 0.0), grid)
            cost = (1.0 - fn_weight) * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


def _band_pairs(keys: np.ndarray, first: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs of rows whose band keys collide: each member with the one before it and with the first
    of its bucket, so a bucket of k rows costs at most 2k pairs, not k^2 (a big bucket is a chain).
    Rows marked `first` lead their bucket, so every other member is paired with one of them."""
    order = np.argsort(keys, kind="stable") if first is None else np.lexsort((~first, keys))
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return
    idx = np.arange(1, len(keys))
    lead = np.maximum.accumulate(np.where(np.concatenate([[True], ~same]), np.arange(len(keys)), 0))
    yield order[idx[same] - 1], order[idx[same]]
    star = same & (lead[1:] < idx - 1)
    yield order[lead[1:][star]], order[idx[star]]


def candidate_pairs(sig: np.ndarray, rows: np.ndarray, bands: int, rows_per_band: int,
                    groups: np.ndarray | None = None, first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i, j), i < j, among `rows` whose signatures share at least one band (and a group)."""
    every = len(rows) == len(sig)  # the usual case: no copy of the signature matrix
    found = []
    for b in range(bands):
        block = sig[:, b * rows_per_band:(b + 1) * rows_per_band] if every else \
            sig[rows, b * rows_per_band:(b + 1) * rows_per_band]
        key = block[:, 0].astype(U64)
        for c in range(1, rows_per_band):
            key *= _MIX
            key ^= block[:, c]
        if groups is not None:
            key ^= (groups[rows].astype(U64) + U64(1)) * U64(0xD6E8FEB86659FD93)
        hit = np.flatnonzero(pl.Series(key).is_duplicated().to_numpy())  # hashing beats sorting every row
        if len(hit) == 0:
            continue
        members = rows[hit]
        for i, j in _band_pairs(key[hit], None if first is None else first[members]):
            i, j = members[i], members[j]
            found.append(np.minimum(i, j).astype(U64) << U64(32) | np.maximum(i, j).astype(U64))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.concatenate(found)
    pairs.sort()
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
    return (pairs >> U64(32)).astype(np.int64), (pairs & U64(0xFFFFFFFF)).astype(np.int64)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph: for each node, the smallest node of its component."""
    parent = np.arange(n)
    while len(i):
        pi, pj = parent[i], parent[j]
        lo, hi = np.minimum(pi, pj), np.maximum(pi, pj)
        moved = lo != hi
        if not moved.any():
            break
        np.minimum.at(parent, hi[moved], lo[moved])  # hook roots under smaller nodes; parent[x] <= x always
        while True:  # pointer jumping until every node points at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
    return parent
