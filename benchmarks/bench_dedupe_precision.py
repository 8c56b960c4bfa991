"""Precision and recall of the dedupe defaults on real, distinct documents that share topics.

    python benchmarks/bench_dedupe_precision.py             # the defaults and the grid of thresholds
    python benchmarks/bench_dedupe_precision.py --pairs 20  # also print the closest distinct pairs

Dropping a note that is not a duplicate loses a person's data, so the defaults must be near-certain:
precision >= 0.99 on every corpus below. Each corpus is a set of distinct real documents on shared
topics (the negatives), plus true duplicates (the positives):

- news: the 350 stories of lee_background.cor and lee.cor (Australian news of one month: the same
  strikes, fires, matches and wars reported day after day); positives are lee_background's own repeats
  (`planted.NATURAL`, `planted.CONTAINED`) and one planted copy of each story with one to three light edits.
- news openings: the first three sentences of each story (note-sized); the same positives, plus seven
  hand-written paraphrases (`planted.PARAPHRASES`).
- news chunks: every story cut into consecutive two-sentence pieces: pieces of one story are distinct texts
  about one subject, like two entries on one project. Pieces that share a sentence verbatim (repeated
  stories) are left out of the scoring; positives are a heavier-edited copy (two to four light edits) of
  every fifth piece.
- usenet, reviews, wiki, imdb: gensim's mini_newsgroup (200 posts, 20 groups), pang_lee_polarity
  (200 one-sentence movie reviews), para2para (13 Wikipedia paragraphs on New York and Berlin) and
  alldata-id-10 (10 IMDB reviews); positives are one planted light-edit copy of each document.
- sample: the shipped sample export (298 personal notes) with its planted exact, near and semantic pairs.

The text comes from the gensim 4.4.0 wheel (downloaded once by planted.py into $ASSAY_CACHE). Embeddings
(all-MiniLM-L6-v2) are cached in $ASSAY_CACHE/dedupe-precision/, so a rerun only scores.
A pair counts as dropped when both notes end in one duplicate group (exact, near and semantic merged);
"listed" pairs are the semantic pass's possible duplicates, kept for review.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import planted  # noqa: E402

from benchmarks.record import Row, options, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class CachedEmbedder:
    """SentenceTransformer.encode with every vector kept on disk by a hash of its text and the model."""

    def __init__(self, model: str = "all-minilm-l6-v2"):
        self.name = model
        self.path = planted.cache_dir() / "dedupe-precision" / f"{model}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
        self._model = None

    def encode(self, texts: list[str], batch_size: int = 64, **_: object) -> np.ndarray:
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:24] for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.vectors]
        if missing:
            if self._model is None:
                from assay.models import load_embedder

                self._model = load_embedder(self.name)
            fresh = self._model.encode([texts[i] for i in missing], batch_size=batch_size,
                                       normalize_embeddings=True, convert_to_numpy=True)
            self.vectors.update({keys[i]: v for i, v in zip(missing, fresh)})
            self._save()
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(list(self.vectors)), vectors=np.stack(list(self.vectors.values())))
        os.replace(tmp, self.path)


@dataclass
class Corpus:
    name: str
    notes: pl.DataFrame  # note_id, text
    truth: pl.DataFrame  # note_id, group: notes of one group are duplicates of each other
    ignore: set[frozenset[str]]  # pairs scored neither way (they share a sentence verbatim)
    about: str


def _member(name: str) -> str:
    with zipfile.ZipFile(planted.gensim_archive()) as zf:
        return zf.read(f"gensim/test/test_data/{name}").decode("utf-8", "replace")


def _frame(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"note_id": pl.String, "text": pl.String}, orient="row")


def _truth(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    """Groups from duplicate pairs (connected, so a story, its repeat and their copies form one group)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    ids = sorted(parent)
    labels = {r: k for k, r in enumerate(sorted({find(x) for x in ids}))}
    return pl.DataFrame({"note_id": ids, "group": [labels[find(x)] for x in ids]},
                        schema={"note_id": pl.String, "group": pl.Int64})


def _with_copies(name: str, docs: list[str], about: str, *, seed: int, edits: tuple[int, int] = (1, 1),
                 every: int = 1, natural: set[tuple[int, int]] = frozenset(), extra: dict[str, tuple[int, str]] = None,
                 ignore: set[frozenset[str]] = frozenset()) -> Corpus:
    """Every document, an edited copy of every `every`-th one (light_edit applied edits[0]..edits[1] times)."""
    rng = random.Random(seed)
    rows = [(f"{name}{i:04d}", doc) for i, doc in enumerate(docs)]
    pairs = [(f"{name}{a:04d}", f"{name}{b:04d}") for a, b in natural]
    foreign = _foreign(docs)
    for i in range(0, len(docs), every):
        copy = docs[i]
        for _ in range(rng.randint(*edits)):
            copy = _light_edit(copy, rng, foreign)
        rows.append((f"{name}{i:04d}e", copy))
        pairs.append((f"{name}{i:04d}", f"{name}{i:04d}e"))
    for note_id, (i, text) in (extra or {}).items():
        rows.append((note_id, text))
        pairs.append((f"{name}{i:04d}", note_id))
    ids = {r[0] for r in rows}
    # a pair left out is left out with the copies of its notes too
    widened = {frozenset((x, y)) for a, b in map(tuple, ignore) for x in (a, a + "e") for y in (b, b + "e")
               if x in ids and y in ids}
    return Corpus(name, _frame(rows), _truth(pairs), widened, about)


def _foreign(docs: list[str]) -> tuple[str, ...]:
    """Real sentences from none of these documents: a line appended to a copy must not come from another
    document of the same corpus (that would make the copy a true near duplicate of two documents)."""
    everything = "\n".join(" ".join(doc.split()) for doc in docs)
    return tuple(s for s in planted.sentence_pool() if s not in everything)


def _light_edit(text: str, rng: random.Random, foreign: tuple[str, ...]) -> str:
    """planted.light_edit, with the appended line taken from `foreign`."""
    def append_foreign(t: str, r: random.Random, k: int = 1) -> str:
        return t.rstrip() + "\n" + r.choice(foreign)

    ops = tuple(append_foreign if op is planted.append_line else op for op in planted.LIGHT_EDITS)
    for op in rng.sample(ops, rng.randint(1, 3)):
        text = op(text, rng, rng.randint(1, 3))
    if rng.random() < 0.3:
        text = planted.cosmetic(text, rng)
    return text


def corpora() -> list[Corpus]:
    lee_bg, lee = list(planted.corpus("lee_background")), list(planted.corpus("lee"))
    stories = lee_bg + lee
    natural = planted.NATURAL | planted.CONTAINED
    openings = [" ".join(planted.split_sentences(t)[:3]) for t in stories]
    out = [
        _with_copies("news", stories, "lee_background + lee stories", seed=0, natural=natural),
        _with_copies("open", openings, "first 3 sentences of each story", seed=1, natural=natural,
                     extra={f"para{i:04d}": (i, text) for i, text in planted.PARAPHRASES.items()}),
    ]
    chunks, story_of, by_sentence = [], [], {}
    for s, story in enumerate(stories):
        sentences = planted.split_sentences(story)
        for k in range(0, len(sentences) - 1, 2):
            for sentence in sentences[k:k + 2]:
                by_sentence.setdefault(sentence, []).append(len(chunks))
            chunks.append(" ".join(sentences[k:k + 2]))
            story_of.append(s)
    # left out: pieces sharing a sentence verbatim, and pieces of a story and of its repeat (typo fixes)
    shared = {frozenset((f"chunk{a:04d}", f"chunk{b:04d}")) for cs in by_sentence.values() for a in cs for b in cs
              if a < b}
    pieces: dict[int, list[int]] = {}
    for c, s in enumerate(story_of):
        pieces.setdefault(s, []).append(c)
    shared |= {frozenset((f"chunk{a:04d}", f"chunk{b:04d}")) for x, y in natural for a in pieces.get(x, [])
               for b in pieces.get(y, [])}
    out.append(_with_copies("chunk", chunks, "two-sentence pieces of every story", seed=2, edits=(2, 4), every=5,
                            ignore=shared))
    usenet = [p for p in dict.fromkeys(planted.corpus("mini_newsgroup")) if len(p.split()) >= 8]
    out.append(_with_copies("usenet", usenet, "mini_newsgroup posts", seed=3))
    out.append(_with_copies("review", list(planted.corpus("pang_lee_polarity")), "pang_lee_polarity reviews", seed=4))
    wiki = [line for f in ("para2para_text1.txt", "para2para_text2.txt") for line in _member(f).splitlines()
            if line.strip()]
    out.append(_with_copies("wiki", wiki, "para2para Wikipedia paragraphs", seed=5))
    imdb = [line.split(" ", 1)[1] for line in _member("alldata-id-10.txt").splitlines() if line.strip()]
    out.append(_with_copies("imdb", imdb, "alldata-id-10 IMDB reviews", seed=6))
    out.append(_sample())
    return out


def _sample() -> Corpus:
    raw = json.loads((ROOT / "datasets" / "sample" / "notes.json").read_text())
    truth = json.loads((ROOT / "datasets" / "sample" / "planted.json").read_text())
    rows = [(r["id"], r["content"]) for r in raw if r["id"] not in set(truth["low_quality"])]
    pairs = [tuple(p) for kind in ("exact", "near", "semantic") for p in truth[kind]]
    return Corpus("sample", _frame(rows), _truth(pairs), set(), "datasets/sample personal notes")


# --- scoring --------------------------------------------------------------------------------

@dataclass
class Score(planted.Scores):
    listed: int = 0  # possible-duplicate pairs (kept, for review)
    listed_true: int = 0


def score(corpus: Corpus, results: list) -> tuple[Score, list[tuple[str, str]]]:
    groups = planted.predicted_groups([r.extra["clusters"] for r in results])
    label = dict(zip(groups["note_id"].to_list(), groups["label"].to_list()))
    group = dict(zip(corpus.truth["note_id"].to_list(), corpus.truth["group"].to_list()))
    members: dict[int, list[str]] = {}
    for note, g in label.items():
        members.setdefault(g, []).append(note)
    dropped = {frozenset((a, b)) for m in members.values() for a in m for b in m if a < b} - corpus.ignore
    true_of = {}
    for note, g in group.items():
        true_of.setdefault(g, []).append(note)
    true = {frozenset((a, b)) for m in true_of.values() for a in m for b in m if a < b}
    wrong = sorted(tuple(sorted(p)) for p in dropped - true)
    listed = {frozenset((a, b)) for r in results for a, b in
              zip(r.extra.get("possible", _EMPTY)["note_id_a"], r.extra.get("possible", _EMPTY)["note_id_b"])}
    return Score(len(true), len(dropped), len(dropped & true), len(wrong), len(listed), len(listed & true)), wrong


_EMPTY = pl.DataFrame({"note_id_a": [], "note_id_b": []}, schema={"note_id_a": pl.String, "note_id_b": pl.String})


def run(corpus: Corpus, cfg, embedder) -> tuple[Score, list[tuple[str, str]]]:
    from assay.curation.dedupe import dedupe
    from assay.records import notes_frame

    df = notes_frame(corpus.notes.to_dicts())
    return score(corpus, dedupe(df, cfg, embedder=embedder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=0, help="print this many wrongly dropped pairs per run")
    args = parser.parse_args()

    from assay.curation.config import DedupeConfig, NearDedupeConfig, SemanticDedupeConfig

    embedder = CachedEmbedder()
    sets = corpora()
    print("| corpus | notes | duplicate pairs | pairs compared | what |")
    print("| --- | ---: | ---: | ---: | --- |")
    for c in sets:
        n = c.notes.height
        print(f"| {c.name} | {n:,} | {_true_pairs(c):,} | {n * (n - 1) // 2 - len(c.ignore):,} | {c.about} |")

    default = SemanticDedupeConfig()
    no_semantic = SemanticDedupeConfig(enabled=False)
    configs = [(f"near only: word 3-grams, Jaccard {t}" + (" (default)" if t == NearDedupeConfig().threshold else ""),
                DedupeConfig(near=NearDedupeConfig(threshold=t), semantic=no_semantic)) for t in (0.5, 0.4, 0.3)]
    configs.append((f"all passes, defaults (semantic: drop at cosine {default.threshold} and overlap "
                    f"{default.min_word_overlap}; list from cosine {default.review_threshold}, overlap "
                    f"{default.review_min_word_overlap})", DedupeConfig()))
    for cosine, overlap in ((0.82, 0.2), (0.9, 0.3), (0.9, 0.5), (0.95, 0.2)):
        old = " (the old default)" if (cosine, overlap) == (0.82, 0.2) else ""
        configs.append((f"all passes, semantic: drop at cosine {cosine} and overlap {overlap}{old}",
                        DedupeConfig(semantic=SemanticDedupeConfig(threshold=cosine, min_word_overlap=overlap))))
    print("\n| config | corpus | precision | recall | dropped pairs | wrongly dropped | listed (true) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    scored = {}
    for label, cfg in configs:
        for c in sets:
            scored[label, c.name] = s, wrong = run(c, cfg, embedder)
            print(f"| {label} | {c.name} | {s.precision:.4f} | {s.recall:.4f} | {s.found_pairs:,} | {len(wrong)} "
                  f"| {s.listed} ({s.listed_true}) |", flush=True)
            text = dict(zip(c.notes["note_id"], c.notes["text"]))
            for a, b in wrong[:args.pairs]:
                print(f"    {a} / {b}: {text[a][:90]!r} / {text[b][:90]!r}")
    record("dedupe_precision", recorded(scored, configs[3][0], configs[4][0]), options(parser, args))


def recorded(scored: dict, defaults: str, old: str) -> list[Row]:
    """Every config x corpus, the defaults first: they carry the target (precision >= 0.99), the old defaults are
    their baseline."""
    rows = []
    for (label, corpus), (s, wrong) in sorted(scored.items(), key=lambda item: item[0][0] != defaults):
        value = f"P {s.precision:.4f} / R {s.recall:.4f}, {len(wrong)} wrongly dropped, listed {s.listed} " \
                f"({s.listed_true} true)"
        if label == defaults:
            o = scored[old, corpus][0]
            rows.append(Row(f"{corpus}: defaults", value, baseline=f"old defaults: P {o.precision:.4f} / "
                            f"R {o.recall:.4f}", ratio=f"P {s.precision - o.precision:+.4f}",
                            target="P >= 0.99", met=s.precision >= 0.99))
        else:
            rows.append(Row(f"{corpus}: {label}", value))
    return rows


def _true_pairs(c: Corpus) -> int:
    sizes = c.truth.group_by("group").len()["len"]
    return int((sizes * (sizes - 1) // 2).sum())


if __name__ == "__main__":
    main()
