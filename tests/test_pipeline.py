"""End to end on the shipped sample export: the real pipeline, the real embedder, the planted truth."""

import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from assay.config import load_config
from assay.curation.config import CurateConfig
from assay.curation.pipeline import curate
from assay.display import show_version
from assay.store import DatasetStore

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"
PLANTED = json.loads((SAMPLE / "planted.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    store = DatasetStore(tmp_path_factory.mktemp("home") / "datasets")
    cfg = load_config(CurateConfig, SAMPLE / "curate.yaml")
    return curate(SAMPLE / "notes.json", cfg, name="notes", store=store)


def test_every_record_accounted_for(run):
    m = run.version.manifest
    raw = json.loads((SAMPLE / "notes.json").read_text())
    assert m["rows_in"] == len(raw)
    assert m["rows"] + sum(m["dropped"].values()) == len(raw)
    rejects = run.version.table("rejects")
    data = run.version.data()
    assert sorted(rejects["note_id"].to_list() + data["note_id"].to_list()) == sorted(r["id"] for r in raw)
    assert rejects["reason"].null_count() == 0


@pytest.mark.parametrize("kind", ["exact", "near"])
def test_planted_duplicates_are_caught(run, kind):
    rejects = run.version.table("rejects")
    reasons = dict(zip(rejects["note_id"], rejects["reason"]))
    clusters = run.version.table("clusters")
    for a, b in PLANTED[kind]:
        # exactly one of the pair goes (which one is the keep rule's choice), naming the other
        dropped = [(x, y) for x, y in ((a, b), (b, a)) if reasons.get(x, "").startswith(f"{kind}_duplicate_of:")]
        assert len(dropped) == 1, (kind, a, b, reasons.get(a), reasons.get(b))
        dup, kept = dropped[0]
        assert reasons[dup] == f"{kind}_duplicate_of:{kept}"
        cluster = clusters.filter(pl.col("note_id") == dup)["cluster_id"][0]
        assert set(clusters.filter(pl.col("cluster_id") == cluster)["note_id"]) == {a, b}


def test_planted_paraphrases_are_kept_and_listed_as_possible_duplicates(run):
    # the author's rewrites (cosine 0.82-0.90, see PLANTED.md) look to the embedder like distinct notes on one
    # subject, which must not be dropped: both notes stay, and the pair is listed for a person to decide
    semantic = next(s for s in run.steps if s.step == "dedupe_semantic")
    found = semantic.extra["possible"]
    assert found.columns == ["note_id_a", "note_id_b", "cosine", "word_overlap", "text_a", "text_b"]
    listed = {frozenset(p): row for p, row in zip(found.select("note_id_a", "note_id_b").rows(),
                                                   found.iter_rows(named=True))}
    for a, b in PLANTED["semantic"]:
        assert {a, b} <= set(semantic.kept["note_id"])
        row = listed[frozenset((a, b))]
        assert 0.82 <= row["cosine"] < 0.95 and row["word_overlap"] >= 0.2 and row["text_a"] and row["text_b"]

    # the version's table lists the pairs whose two notes are in its data (balance may cap one away)
    data, rejects = set(run.version.data()["note_id"]), run.version.table("rejects")
    table = run.version.table("possible_duplicates")
    in_table = {frozenset(p) for p in table.select("note_id_a", "note_id_b").rows()}
    assert in_table == {p for p in listed if p <= data}
    assert run.version.manifest["possible_duplicates"] == len(in_table)
    capped = set(rejects.filter(pl.col("reason").str.starts_with("over_represented"))["note_id"])
    assert all(frozenset(p) in in_table or set(p) & capped for p in PLANTED["semantic"])
    assert sum(frozenset(p) in in_table for p in PLANTED["semantic"]) >= 2


def test_datasets_show_lists_the_possible_duplicates(run):
    console = Console(record=True, width=200)
    show_version(console, run.version)
    out = console.export_text()
    assert f"{run.version.table('possible_duplicates').height} possible duplicate pair(s)" in out
    table = run.version.table("possible_duplicates")
    assert all(a in out and b in out for a, b in table.head(10).select("note_id_a", "note_id_b").rows())


def test_no_distinct_notes_merged(run):
    pairs = {frozenset(p) for kind in ("exact", "near") for p in PLANTED[kind]}
    rejects = run.version.table("rejects")
    dup_rejects = rejects.filter(pl.col("reason").str.contains("duplicate_of"))
    found = {frozenset((nid, reason.split(":", 1)[1]))
             for nid, reason in zip(dup_rejects["note_id"], dup_rejects["reason"])}
    assert found == pairs


def test_low_quality_notes_dropped_by_clean(run):
    rejects = run.version.table("rejects")
    cleaned = set(rejects.filter(pl.col("step") == "clean")["note_id"])
    assert set(PLANTED["low_quality"]) == cleaned


def test_balance_caps_and_writes_gaps(run):
    m = run.version.manifest
    data = run.version.data()
    assert data.group_by("category").len()["len"].max() <= 60
    assert m["dropped"]["over_represented"] > 0
    gaps = {g["cell"]: g["missing"] for g in m["gaps"]}
    assert gaps and all(v > 0 for v in gaps.values())
    counts = dict(data.group_by("category").len().iter_rows())
    for cell, missing in gaps.items():
        assert counts[cell.split("=", 1)[1]] + missing == next(c["target"] for c in m["coverage"] if c["cell"] == cell)


def test_splits_and_lineage(run):
    data = run.version.data()
    assert set(data["split"]) == {"train", "validation", "test"}
    assert data["origin"].unique().to_list() == ["export"]
    assert data["note_id"].null_count() == 0 and data["source_file"].null_count() == 0
    summarize = data.filter(pl.col("task") == "summarize")
    assert summarize.height > 0 and summarize["output"].null_count() == 0


def test_cli_show_and_diff(tmp_path, assay):
    home = tmp_path
    first = assay("curate", str(SAMPLE / "notes.json"), "--config", str(SAMPLE / "curate.yaml"),
                  "dedupe.semantic.enabled=false", home=home)
    assert "notes@v1" in first.stdout and "dedupe_near" in first.stdout and "coverage gap" in first.stdout
    assay("curate", str(SAMPLE / "notes.json"), "dedupe.semantic.enabled=false", "balance.enabled=false", home=home)
    listing = assay("datasets", "list", home=home).stdout
    assert "v1" in listing and "v2" in listing
    show = assay("datasets", "show", "notes@v1", home=home).stdout
    assert "duplicate cluster" in show and "kept" in show and "over_represented" in show
    diff = assay("datasets", "diff", "notes@v1", "notes@v2", home=home).stdout
    assert "added" in diff and "balance.max_per_cell" in diff
