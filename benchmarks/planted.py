"""Planted duplicate sets built from real text, shared by the dedupe tests and benchmarks.

The text comes from the test corpora inside the gensim 4.4.0 wheel (Australian news, movie-review
snippets, Usenet posts). `gensim_archive()` downloads the wheel once with pip into the cache folder
(`$ASSAY_CACHE`, else ~/.cache/assay) and `corpus()` reads files straight out of the zip.

`planted_notes(n)` builds n notes from recombined real sentences and plants lightly edited copies
(a few words substituted/deleted/inserted, a line appended, a sentence dropped, typos, case and
whitespace changes), returning the notes and the truth: which notes are copies of one another.
`pair_scores()` turns a dedupe run's cluster tables into pair precision and recall against that truth.
"""

from __future__ import annotations

import copyreg
import functools
import io
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

GENSIM = "gensim==4.4.0"
CORPORA = {
    "lee_background": "gensim/test/test_data/lee_background.cor",  # 300 news stories, one per line
    "lee": "gensim/test/test_data/lee.cor",  # 50 more news stories
    "pang_lee_polarity": "gensim/test/test_data/pang_lee_polarity.cor",  # 200 one-sentence reviews
    "mini_newsgroup": "gensim/test/test_data/mini_newsgroup",  # 200 Usenet posts (a pickled sklearn Bunch)
}
PLANTED_VERSION = 2  # bump when the generator changes, so cached planted sets are rebuilt


def cache_dir() -> Path:
    return Path(os.environ.get("ASSAY_CACHE") or Path.home() / ".cache" / "assay")


def gensim_archive() -> Path:
    """The gensim wheel (or sdist where no wheel fits this platform), downloaded once with pip."""
    folder = cache_dir() / "gensim-4.4.0"
    found = sorted(folder.glob("gensim-4.4.0*"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # another process may download at the same time
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", GENSIM, "-d", tmp],
                       check=True)
        for path in Path(tmp).iterdir():
            os.replace(path, folder / path.name)
    found = sorted(folder.glob("gensim-4.4.0*"))
    if not found:
        raise RuntimeError(f"pip download {GENSIM} left nothing in {folder}")
    return found[0]


def _read_member(member: str) -> bytes:
    archive = gensim_archive()
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    import tarfile

    with tarfile.open(archive) as tf:
        name = next(n for n in tf.getnames() if n.endswith(member))
        return tf.extractfile(name).read()


@functools.cache
def corpus(name: str) -> tuple[str, ...]:
    """Documents of one gensim test corpus, as plain strings."""
    raw = _read_member(CORPORA[name])
    if name == "mini_newsgroup":
        return tuple(_newsgroup_body(post) for post in _load_bunch(raw)["data"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # lee.cor is Latin-1 (a pound sign)
        text = raw.decode("latin-1")
    lines = text.splitlines()
    if name == "pang_lee_polarity":
        lines = [re.sub(r"^__label__\w+\s+", "", line) for line in lines]
    return tuple(line.strip() for line in lines if line.strip())


def _load_bunch(raw: bytes) -> dict:
    """Unpickle the zlib'd sklearn Bunch without sklearn, allowing only the classes it is made of."""
    import zlib

    from numpy._core import multiarray

    allowed = {"_reconstructor": copyreg._reconstructor, "Bunch": dict, "dict": dict, "object": object,
               "_reconstruct": multiarray._reconstruct, "ndarray": np.ndarray, "dtype": np.dtype}

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if name not in allowed:
                raise pickle.UnpicklingError(f"refusing {module}.{name}")
            return allowed[name]

    return Restricted(io.BytesIO(zlib.decompress(raw)), encoding="latin1").load()


def _newsgroup_body(post: str) -> str:
    """The author's own words: no headers, quoted lines, attributions or signature."""
    body = post.split("\n\n", 1)[1] if "\n\n" in post else post
    body = body.split("\n-- \n")[0].split("\n--\n")[0]
    keep = [line.rstrip() for line in body.splitlines()
            if not line.lstrip().startswith((">", "|", "In article", "/--", "\\--"))
            and not line.rstrip().endswith("writes:")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()


# --- known structure of the news corpus ------------------------------------------------------

# lee_background's own duplicates (indices into its 300 stories): seven stories appear twice verbatim,
# one twice with three typo fixes; three more pairs are one story cut short or extended with more news.
NATURAL = {(104, 112), (115, 119), (117, 120), (150, 156), (230, 236), (263, 271), (281, 288), (232, 241)}
CONTAINED = {(59, 72), (98, 107), (182, 191)}
# Distinct reports of one event (Qantas strike, Israeli air raids, Tora Bora): close in meaning, not duplicates.
SAME_EVENT = {(124, 130), (125, 191), (142, 245)}

# Light paraphrases, written by hand, of the first two sentences of lee_background stories.
PARAPHRASES = {
    0: "Hundreds of residents have been forced to leave their houses in the Southern Highlands of New South Wales as "
       "strong winds today drove a big bushfire toward the town of Hill Top. A new fire close to Goulburn, south-west "
       "of Sydney, has caused the closure of the Hume Highway.",
    5: "The Federal Government says it should be safe for Afghan asylum seekers in Australia to go back home once the "
       "situation becomes secure. The Government has put their applications on hold while the interim government is "
       "set up in Kabul.",
    10: "Work is continuing this morning to restore electricity to tens of thousands of houses that were blacked out "
        "during wild storms that hit south-east Queensland last night. Gale force winds knocked over trees and brought "
        "down power lines, damaging houses and vehicles.",
    20: "Argentine President Adolfo Rodriguez Saa has asked the nation's banks to help restore calm by making it "
        "easier to pay pensions and wages to workers and retirees. He says he made the appeal at a meeting with "
        "leaders of the banking industry.",
    30: "The Northern Territory Aids Council says it is not surprised that the Territory's rate of HIV infection "
        "through male to female sex is double the national rate. A report in the Centre for Disease Control Bulletin "
        "says 21 per cent of HIV infections in the Territory came from male to female sex, against 10 per cent "
        "nationally.",
    40: "Firefighters across New South Wales are getting ready for a wind change that could bring more property losses "
        "today. Over 100 fires now surround two-thirds of the greater Sydney region.",
    80: "Zimbabwe has been given five weeks to end the political violence and the invasions of white-owned farms or "
        "face possible suspension from the Commonwealth. A London meeting of the Commonwealth Ministerial Action Group "
        "has put Zimbabwe on its list - the first step towards what could mean much tougher action.",
}


# --- sentences and vocabulary -------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


@functools.cache
def sentence_pool() -> tuple[str, ...]:
    """Distinct real sentences of 6 to 60 words from all four corpora."""
    seen: dict[str, None] = {}
    for name in CORPORA:
        for doc in corpus(name):
            for sentence in split_sentences(doc):
                if 6 <= len(sentence.split()) <= 60:
                    seen.setdefault(sentence, None)
    return tuple(seen)


@functools.cache
def vocabulary() -> tuple[str, ...]:
    words = {w for s in sentence_pool() for w in re.findall(r"[A-Za-z]{3,}", s)}
    return tuple(sorted(words))


# --- realistic light edits ------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return re.split(r"(\s+)", text)  # words at even positions, the whitespace between them at odd ones


def substitute_words(text: str, rng: random.Random, k: int) -> str:
    parts = _words(text)
    slots = list(range(0, len(parts), 2))
    for i in rng.sample(slots, min(k, len(slots))):
        parts[i] = rng.choice(vocabulary())
    return "".join(parts)


def delete_words(text: str, rng: random.Random, k: int) -> str:
    parts = _words(text)
    slots = list(range(0, len(parts), 2))
    if len(slots) <= k + 3:
        return text
    drop = set(rng.sample(slots, k))
    return " ".join(p for i, p in enumerate(parts) if i % 2 == 0 and i not in drop)


def insert_words(text: str, rng: random.Random, k: int) -> str:
    parts = _words(text)
    for _ in range(k):
        i = rng.randrange(0, len(parts) + 1, 2)
        parts[i:i] = [rng.choice(vocabulary()), " "]
    return "".join(parts)


def append_line(text: str, rng: random.Random, k: int = 1) -> str:
    """One line (a real sentence) added at the end, whatever k."""
    return text.rstrip() + "\n" + rng.choice(sentence_pool())


def drop_sentence(text: str, rng: random.Random, k: int = 1) -> str:
    sentences = split_sentences(text)
    if len(sentences) < 4:
        return text
    del sentences[rng.randrange(len(sentences))]
    return " ".join(sentences)


def typos(text: str, rng: random.Random, k: int) -> str:
    parts = _words(text)
    slots = [i for i in range(0, len(parts), 2) if len(parts[i]) >= 4 and parts[i].isalpha()]
    for i in rng.sample(slots, min(k, len(slots))):
        w, j = parts[i], rng.randrange(1, len(parts[i]) - 1)
        kind = rng.randrange(3)
        parts[i] = (w[:j] + w[j + 1] + w[j] + w[j + 2:] if kind == 0 else  # swap two letters
                    w[:j] + w[j + 1:] if kind == 1 else  # drop one
                    w[:j] + w[j] + w[j:])  # double one
    return "".join(parts)


def cosmetic(text: str, rng: random.Random, k: int = 1) -> str:
    """Changes the exact pass must see through: case, spacing, line endings."""
    kind = rng.randrange(4)
    if kind == 0:
        return text.upper() if rng.random() < 0.2 else text.lower()
    if kind == 1:
        return re.sub(r" ", lambda m: "  " if rng.random() < 0.1 else " ", text) + "  "
    if kind == 2:
        return "\r\n".join(text.split("\n")) + "\r\n"
    return "\t" + text.replace(". ", ".\n", 2)


LIGHT_EDITS = (substitute_words, delete_words, insert_words, append_line, drop_sentence, typos)


def light_edit(text: str, rng: random.Random) -> str:
    """One to three edits of a few words each, sometimes with cosmetic changes on top."""
    for op in rng.sample(LIGHT_EDITS, rng.randint(1, 3)):
        text = op(text, rng, rng.randint(1, 3))
    if rng.random() < 0.3:
        text = cosmetic(text, rng)
    return text


# --- planted sets ---------------------------------------------------------------------------

@dataclass
class Planted:
    notes: pl.DataFrame  # the note schema's note_id, text, created_at, shuffled
    truth: pl.DataFrame  # note_id, group: notes of one group are copies of each other; singletons absent

    @property
    def truth_pairs(self) -> int:
        sizes = self.truth.group_by("group").len()["len"]
        return int((sizes * (sizes - 1) // 2).sum())


def base_doc(rng: random.Random, pool: tuple[str, ...], vocab: tuple[str, ...], mutate: float) -> str:
    """A new note of 2 to 16 real sentences; each word is swapped for another real word with p=mutate,
    so recombined notes that happen to share sentences are still distinct."""
    k = rng.choice((2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10, 12, 14, 16))
    out = []
    for sentence in rng.sample(pool, k):
        words = sentence.split(" ")
        for i in range(len(words)):
            if rng.random() < mutate:
                words[i] = rng.choice(vocab)
        out.append(" ".join(words))
        out.append("\n" if rng.random() < 0.15 else " ")
    return "".join(out[:-1])


def planted_notes(n: int, *, dup_share: float = 0.1, seed: int = 0, mutate: float = 0.12,
                  cache: bool = True) -> Planted:
    """n notes of which about dup_share are lightly edited (or cosmetically changed) copies of others.

    A copy is an edit of the original (70%) or of an earlier copy (30%, a note edited twice);
    one copy in ten only has case/whitespace changes (an exact duplicate after normalization).
    Cached as parquet under the cache folder, since a million notes take a minute to build.
    """
    path = cache_dir() / "planted" / f"v{PLANTED_VERSION}-n{n}-d{dup_share}-s{seed}-m{mutate}.parquet"
    if cache and path.exists():
        both = pl.read_parquet(path)
        return Planted(both.drop("group"), both.filter(pl.col("group").is_not_null()).select("note_id", "group"))
    rng = random.Random(seed)
    pool, vocab = sentence_pool(), vocabulary()
    n_copies = int(n * dup_share)
    texts = [base_doc(rng, pool, vocab, mutate) for _ in range(n - n_copies)]
    group: list[int | None] = [None] * len(texts)
    members: dict[int, list[int]] = {}
    n_base = len(texts)
    for _ in range(n_copies):
        origin = rng.randrange(n_base)
        family = members.setdefault(origin, [origin])
        source = family[-1] if len(family) > 1 and rng.random() < 0.3 else origin
        text = cosmetic(texts[source], rng) if rng.random() < 0.1 else light_edit(texts[source], rng)
        group[origin] = origin
        family.append(len(texts))
        texts.append(text)
        group.append(origin)
    order = list(range(n))
    rng.shuffle(order)
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    notes = pl.DataFrame({
        "note_id": [f"n{i:07d}" for i in range(n)],
        "text": [texts[i] for i in order],
        "created_at": [start + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)) for _ in range(n)],
        "group": [group[i] for i in order],
    }, schema={"note_id": pl.String, "text": pl.String, "created_at": pl.Datetime("us", "UTC"), "group": pl.Int64})
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        notes.write_parquet(tmp)
        os.replace(tmp, path)
    return Planted(notes.drop("group"), notes.filter(pl.col("group").is_not_null()).select("note_id", "group"))


def planted_copies(docs: list[str], *, seed: int = 0, exact_share: float = 0.1) -> Planted:
    """Every document plus one lightly edited copy of each (an exact-after-normalization copy for a share)."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i, doc in enumerate(docs):
        copy = cosmetic(doc, rng) if rng.random() < exact_share else light_edit(doc, rng)
        rows += [(f"d{i:04d}", doc), (f"d{i:04d}e", copy)]
        truth += [(f"d{i:04d}", i), (f"d{i:04d}e", i)]
    notes = pl.DataFrame(rows, schema={"note_id": pl.String, "text": pl.String}, orient="row")
    return Planted(notes, pl.DataFrame(truth, schema={"note_id": pl.String, "group": pl.Int64}, orient="row"))


# --- scoring --------------------------------------------------------------------------------

def predicted_groups(clusters: list[pl.DataFrame]) -> pl.DataFrame:
    """note_id -> one label per connected group, merging the cluster tables of all passes."""
    edges = pl.concat([c.select("note_id", "kept_id") for c in clusters if c.height]) if clusters else None
    if edges is None or edges.height == 0:
        return pl.DataFrame(schema={"note_id": pl.String, "label": pl.Int64})
    ids = pl.concat([edges["note_id"], edges["kept_id"]]).unique().sort()
    index = {x: i for i, x in enumerate(ids.to_list())}
    parent = list(range(len(index)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(edges["note_id"].to_list(), edges["kept_id"].to_list()):
        ra, rb = find(index[a]), find(index[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return pl.DataFrame({"note_id": ids, "label": [find(index[x]) for x in ids.to_list()]})


@dataclass
class Scores:
    true_pairs: int
    found_pairs: int  # pairs the method put in one group
    hits: int  # true pairs found
    false_merges: int  # found groups that join notes of different truth groups (or a stray note)

    @property
    def precision(self) -> float:
        return self.hits / self.found_pairs if self.found_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.hits / self.true_pairs if self.true_pairs else 1.0


def pair_scores(truth: pl.DataFrame, clusters: list[pl.DataFrame]) -> Scores:
    pred = predicted_groups(clusters)
    sizes = pred.group_by("label").len()["len"]
    found = int((sizes * (sizes - 1) // 2).sum())
    joined = truth.join(pred, on="note_id", how="left")
    hit_sizes = joined.filter(pl.col("label").is_not_null()).group_by("group", "label").len()["len"]
    hits = int((hit_sizes * (hit_sizes - 1) // 2).sum())
    true_sizes = truth.group_by("group").len()["len"]
    mixed = (pred.join(truth, on="note_id", how="left")
             .group_by("label")
             .agg(pl.col("group").drop_nulls().n_unique().alias("g"), pl.col("group").null_count().alias("stray"))
             .filter((pl.col("g") > 1) | (pl.col("stray") > 0)).height)
    return Scores(int((true_sizes * (true_sizes - 1) // 2).sum()), found, hits, mixed)
