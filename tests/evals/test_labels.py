"""A classifier is evaluated with the labels it was taught: the labels config of the synthesis that labeled
its dataset, followed through later versions (review), resolved as synthesis resolved it."""

from __future__ import annotations

import polars as pl

from assay.evals.run import _labels, _task_instruction
from assay.evals.suite import load_suite
from assay.store import DatasetStore

CUSTOM = {"categories": ["garden", "taxes"], "importance": ["meh", "urgent"], "context": ["home", "office"]}


def _lineage(tmp_path, labels: dict | None):
    store = DatasetStore(tmp_path / "datasets")
    notes = pl.DataFrame({"note_id": ["1", "2"], "text": ["Prune the roses.", "File the return."],
                          "category": ["work", "personal"], "split": ["train", "test"]})
    curated = store.write("notes", notes, step="curate", config={})
    synth_cfg = {"task": "classify", **({"labels": labels} if labels else {})}
    labeled = store.write("notes", notes, step="synth", config=synth_cfg, parents=[curated.ref])
    return store.write("notes", notes, step="review", config={"mode": "pull"}, parents=[labeled.ref])


def test_custom_labels_reach_the_eval_through_a_reviewed_version(tmp_path):
    reviewed = _lineage(tmp_path, CUSTOM)
    suite = load_suite("classify")
    labels = _labels(suite, reviewed)
    assert (labels.categories, labels.importance, labels.context) == (
        ("garden", "taxes"), ("meh", "urgent"), ("home", "office"))
    instruction = _task_instruction(suite, reviewed)
    assert "garden, taxes" in instruction and "meh, urgent" in instruction and "home, office" in instruction
    assert "low" not in instruction and "work, personal" not in instruction


def test_without_configured_labels_the_notes_own_categories_and_the_defaults(tmp_path):
    reviewed = _lineage(tmp_path, None)
    labels = _labels(load_suite("classify"), reviewed)
    assert labels.categories == ("personal", "work") and labels.importance == ("low", "medium", "high")
