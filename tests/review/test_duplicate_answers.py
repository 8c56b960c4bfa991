"""Duplicate answers feed the next curation: curate the sample, push its possible duplicates, answer as
annotators, pull the answers, curate again."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
from conftest import annotator, server_records, submit

from assay.config import load_config
from assay.curation.config import CurateConfig
from assay.curation.pipeline import curate
from assay.curation.review.client import connect
from assay.curation.review.duplicates import load_decisions, pair_id, pull_duplicates
from assay.project import Project
from assay.store import DatasetStore

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"
# A drop band that would take the sample's seed-swap pair (cosine 0.84, word overlap 0.23) as a semantic
# duplicate: the reviewer's "different" must keep it anyway.
TIGHT = ["dedupe.semantic.threshold=0.83", "dedupe.semantic.min_word_overlap=0.2",
         "dedupe.semantic.review_threshold=0.82"]


def review(server, *args):
    proc = subprocess.run([sys.executable, "-m", "assay", *args], env=server.env(), capture_output=True, text=True,
                          timeout=300, cwd=SAMPLE.parents[1])
    assert proc.returncode == 0, f"assay {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_answers_decide_the_next_curation(server, tmp_path):
    # the sample's notes on three subjects, each with a planted paraphrase (a tenth of the sample: a quick curate)
    notes = [n for n in json.loads((SAMPLE / "notes.json").read_text())
             if any(w in n["content"].lower() for w in ("knee", "seed", "oats"))]
    export = tmp_path / "notes.json"
    export.write_text(json.dumps(notes))
    store = DatasetStore(server.home / "datasets")
    first = curate(export, load_config(CurateConfig, SAMPLE / "curate.yaml", []), name="sampledup",
                   store=store).version
    pairs = first.table("possible_duplicates")
    by_text = {row["text_a"].split()[0]: row for row in pairs.iter_rows(named=True)}
    knee, seeds = by_text["Went"], by_text["Could"]  # the knee-run pair and the seed-swap pair
    assert seeds["cosine"] >= 0.83 and seeds["word_overlap"] >= 0.2  # inside TIGHT's drop band

    assert f"pushed {pairs.height} new record(s)" in review(server, "review", "push", first.ref, "--only", "duplicates")
    records = server_records(server, "sampledup-v1-duplicates")
    ann, bob = annotator(server, "ann"), annotator(server, "bob")
    for user in (ann, bob):  # both: the same note, keep B
        submit(server, user, records[pair_id(knee["note_id_a"], knee["note_id_b"])], {"same_note": "keep_b"})
    submit(server, ann, records[pair_id(seeds["note_id_a"], seeds["note_id_b"])],
           {"same_note": "keep_both", "comment": "two plans, not one"})

    out = review(server, "review", "pull-duplicates", first.ref)
    assert f"2 of {pairs.height} pair(s) answered" in out and "1 different, 1 same" in out, out
    with contextlib.closing(Project(server.home).db()) as conn:
        stored = {(r["note_id_a"], r["note_id_b"]): dict(r) for r in conn.execute("SELECT * FROM duplicate_reviews")}
    assert stored[(knee["note_id_a"], knee["note_id_b"])]["keep"] == knee["note_id_b"]
    assert json.loads(stored[(knee["note_id_a"], knee["note_id_b"])]["reviewers"]) == ["ann", "bob"]
    assert stored[(seeds["note_id_a"], seeds["note_id_b"])]["decision"] == "different"
    decided = load_decisions(Project(server.home))
    assert decided.height == 2
    again = pull_duplicates(store, first.ref, connect(Project(server.home)), Project(server.home))
    assert again["decisions"] == {"different": 1, "same": 1}  # pulling again changes nothing
    assert load_decisions(Project(server.home)).drop("pulled_at").equals(decided.drop("pulled_at"))

    review(server, "curate", str(export), "--config", str(SAMPLE / "curate.yaml"), "--name",
           "sampledup", *TIGHT)
    second = store.get("sampledup")
    assert second.ref == "sampledup@v2" and second.manifest["duplicate_reviews"] == 2
    steps = {s["step"]: s for s in second.manifest["steps"]}
    assert steps["dedupe_reviewed"]["dropped"] == {"reviewed_duplicate_of": 1}
    # the seed-swap pair is in TIGHT's drop band, yet neither note is dropped or clustered by the semantic pass
    semantic = rejects_of(second, "dedupe_semantic")
    assert not {seeds["note_id_a"], seeds["note_id_b"]} & set(semantic["note_id"] + semantic["kept"])
    clusters = second.table("clusters").filter(pl.col("kind") == "semantic")
    assert not {seeds["note_id_a"], seeds["note_id_b"]} & set(clusters["note_id"].to_list())
    assert second.manifest["dropped"]["reviewed_duplicate_of"] == 1
    rejects = second.table("rejects")
    gone = rejects.filter(pl.col("note_id") == knee["note_id_a"])
    assert gone["reason"].to_list() == [f"reviewed_duplicate_of:{knee['note_id_b']}"]
    ids = (set(second.data()["note_id"].to_list())
           | set(rejects.filter(pl.col("step") == "balance")["note_id"].to_list()))
    assert {knee["note_id_b"], seeds["note_id_a"], seeds["note_id_b"]} <= ids  # kept through dedupe
    left = {(a, b) for a, b in second.table("possible_duplicates").select("note_id_a", "note_id_b").iter_rows()}
    assert (seeds["note_id_a"], seeds["note_id_b"]) not in left  # decided: not listed for review again
    assert first.manifest["steps"][0]["in"] == second.manifest["steps"][0]["in"]


def rejects_of(version, step: str) -> dict:
    rows = version.table("rejects").filter(pl.col("step") == step)
    return {"note_id": rows["note_id"].to_list(), "kept": [r.split(":", 1)[1] for r in rows["reason"].to_list()]}


def decisions(*rows) -> pl.DataFrame:
    return pl.DataFrame([{"note_id_a": a, "note_id_b": b, "decision": d, "keep": k} for a, b, d, k in rows],
                        schema={"note_id_a": pl.String, "note_id_b": pl.String, "decision": pl.String,
                                "keep": pl.String})


def test_reviewed_pairs_keep_the_chosen_note_and_chains_keep_one():
    from assay.curation.dedupe import dedupe_reviewed
    from assay.records import notes_frame

    texts = {"n1": "Seed swap at the allotment in February, ask the committee first.",
             "n2": "Seed swap in Feb?", "n3": "Could we hold a seed swap morning at the allotments next February?",
             "n4": "Overnight oats: 50 g oats, 150 ml milk.", "n5": "Oats overnight, 50 g and milk.",
             "n6": "Knee scan at Southmead."}
    df = notes_frame({"note_id": k, "text": v} for k, v in texts.items())
    result = dedupe_reviewed(df, decisions(("n1", "n2", "same", "n2"),  # the reviewer kept the shorter one
                                           ("n2", "n3", "same", None),   # split vote: the longer text stays
                                           ("n4", "n5", "same", None),
                                           ("n5", "n9", "same", "n9")))  # n9 is not in this data: no change
    reasons = dict(zip(result.rejects["note_id"].to_list(), result.rejects["reason"].to_list()))
    assert reasons == {"n1": "reviewed_duplicate_of:n3", "n2": "reviewed_duplicate_of:n3",
                       "n5": "reviewed_duplicate_of:n4"}
    assert sorted(result.kept["note_id"].to_list()) == ["n3", "n4", "n6"]
    clusters = result.extra["clusters"]
    assert clusters.filter(pl.col("kept"))["note_id"].sort().to_list() == ["n3", "n4"]


def test_votes_resolve_conservatively():
    from collections import Counter

    from assay.curation.review.duplicates import resolve

    assert resolve(Counter(keep_a=1, keep_both=1), "a", "b") == ("different", None)  # a tie loses no note
    assert resolve(Counter(keep_a=2, keep_both=1), "a", "b") == ("same", "a")
    assert resolve(Counter(keep_a=1, keep_b=1), "a", "b") == ("same", None)
    assert resolve(Counter(keep_b=1), "a", "b") == ("same", "b")


def test_a_cluster_joining_two_notes_told_apart_drops_nothing():
    """a ~ b ~ c are near-certain copies; a reviewer said a and c differ: no note of the cluster is dropped,
    and its other pairs are listed for review again."""
    from assay.curation.config import DedupeConfig
    from assay.curation.dedupe import dedupe
    from assay.models import load_embedder
    from assay.records import notes_frame

    line = "Seed swap at the allotment on Saturday 8 February from ten, bring labelled envelopes and spare pots"
    texts = {"a": line + ".", "b": line + " please.", "c": line + " please!!", "d": "Knee scan at Southmead."}
    df = notes_frame({"note_id": k, "text": v} for k, v in texts.items())
    cfg = DedupeConfig(exact=False, near={"enabled": False})
    embedder = load_embedder()
    before = dedupe(df, cfg, embedder=embedder)[-1]
    assert before.rejects.height == 2  # without review: one cluster, two copies dropped
    after = dedupe(df, cfg, embedder=embedder, reviewed=decisions(("a", "c", "different", None)))
    semantic = after[-1]
    assert semantic.rejects.height == 0
    listed = {(a, b) for a, b in semantic.extra["possible"].select("note_id_a", "note_id_b").iter_rows()}
    assert listed == {("a", "b"), ("b", "c")}
