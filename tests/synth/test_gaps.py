"""Gap filling on a tiny curated version with a known gap: plan, write, vet (clean, dedupe, cross-dedupe), count."""

import json
import re

import polars as pl

from assay.curation.balance import balance
from assay.curation.config import BalanceConfig
from assay.curation.synth.config import GapFillConfig, SynthConfig
from assay.curation.synth.contract import FREE, Reply
from assay.curation.synth.gaps import parse_cell, plan_gaps, write_requests
from assay.curation.synth.run import synth
from assay.curation.synth.teachers import note_text
from assay.project import Project
from assay.records import notes_frame
from assay.store import DatasetStore

REAL = {
    "w1": ("work", "Quarterly planning: finalize the hiring plan, review the budget with finance, "
                   "and send the roadmap to the team."),
    "w2": ("work", "Customer call notes: they want SSO before renewal, a better audit log, "
                   "and a discount for two years."),
    "w3": ("work", "Incident review for the outage on Tuesday: root cause was an expired certificate "
                   "on the load balancer."),
    "w4": ("work", "Onboarding checklist for the new engineer: laptop, accounts, buddy, first starter ticket, "
                   "and team lunch."),
    "r1": ("recipes", "Sourdough loaf: feed the starter in the morning, mix the dough at noon, fold four times, "
                      "bake covered at 250C."),
}
# what the scripted writer answers, per slot of the one gap cell
WRITTEN = {
    1: "Lentil soup: fry onion and cumin, add red lentils, stock and tomatoes, simmer twenty five minutes, "
       "finish with lemon juice and parsley.",
    # slot 1 with one word changed: a near duplicate of another synthetic note
    2: "Lentil soup: fry onion and cumin, add red lentils, stock and tomatoes, simmer twenty five minutes, "
       "finish with lime juice and parsley.",
    # a real note with one word changed: leaks into the real notes
    3: "Sourdough loaf: feed the starter in the morning, mix the dough at noon, fold four times, bake covered at 240C.",
    4: "a!!!!!!!! b!!!!!!!! c!!!!!!!! d!!!!!!!! e!!!!!!!! f!!!!!!!!",  # clean drops it: mostly symbols
    5: "Sure!",  # fails to parse: too short to be a note
    6: "Overnight oats: half a cup of oats, milk, chia seeds and honey in a jar; top with berries in the morning.",
    7: "Pesto pasta: blend basil, pine nuts, parmesan, garlic and olive oil; "
       "toss with hot spaghetti and a splash of pasta water.",
}


class ScriptedTeacher:
    """An in-process teacher with fixed answers: notes for write_note prompts, the lead sentence otherwise."""

    provider, is_remote, price, batch_size = "local", False, FREE, 8

    def __init__(self, spec="local:scripted"):
        self.spec, self.model = spec, spec.partition(":")[2]
        self.seen = []

    async def generate(self, requests):
        self.seen += requests
        replies = []
        for r in requests:
            slot = re.search(r"New note number (\d+)", r.messages[-1]["content"])
            text = WRITTEN[int(slot.group(1))] if slot else note_text(r).split(". ")[0] + "."
            replies.append(Reply(text, "stop", {"input_tokens": 10, "output_tokens": 10}, 0.0, False, None, self.spec))
        return replies


def curated(store: DatasetStore):
    df = notes_frame({"note_id": k, "text": t, "category": c, "origin": "export", "synthetic": False}
                     for k, (c, t) in REAL.items())
    cfg = BalanceConfig(target_per_cell=3)
    result = balance(df, cfg)
    assert result.extra["gaps"] == [{"cell": "category=recipes", "rows": 1, "target": 3, "missing": 2}]
    return store.write("notes", result.kept, step="curate", config={"balance": cfg.model_dump(mode="json")},
                       gaps=result.extra["gaps"], coverage=result.extra["coverage"])


def test_plan_reads_the_manifest_gaps_and_uses_the_cells_real_notes_as_examples(tmp_path):
    version = curated(DatasetStore(tmp_path))
    [plan] = plan_gaps(version.manifest, version.data(), GapFillConfig(oversample=1.5))
    assert (plan.key, plan.missing, plan.to_write, plan.note_ids) == ("category=recipes", 2, 3, ["r1"])
    slots = write_requests([plan], GapFillConfig(oversample=1.5))
    prompts = [s[3].messages[-1]["content"] for s in slots]
    assert len(set(prompts)) == 3  # distinct prompts, so distinct cache keys
    assert all(REAL["r1"][1] in p and 'category "recipes"' in p for p in prompts)


def test_cells_that_cannot_be_written_are_reported_not_filled():
    assert parse_cell("category=recipes,length=short(<200)") == {"category": "recipes", "length": "short(<200)"}
    df = notes_frame([{"note_id": "a", "text": "one two three four", "task": "summarize", "category": "x"}])
    manifest = {"config": {"balance": {"dimensions": ["task", "category"]}},
                "gaps": [{"cell": "task=summarize,category=x", "rows": 1, "target": 2, "missing": 1}]}
    [plan] = plan_gaps(manifest, df, GapFillConfig())
    assert plan.to_write == 0 and plan.skipped == "not_generated:task"


def test_fill_gaps_writes_vets_and_counts_synthetic_notes(tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    version = curated(store)
    writer = ScriptedTeacher()
    cfg = SynthConfig(teachers=["local:scripted", "rule:lead"], fill_gaps=True,
                      gaps={"oversample": 3.5, "dedupe": {"semantic": {"enabled": False}}})
    run = synth(version.ref, cfg, store=store, project=Project(tmp_path), teachers={"local:scripted": writer})
    m = run.version.manifest
    [line] = m["gap_fill"]
    assert line["cell"] == "category=recipes" and line["missing"] == 2 and line["requested"] == 7
    assert line["parse_failed"] == {"too_short": 1}
    assert line["dropped"] == {"mostly_symbols": 1, "near_duplicate_of": 1, "leaks_into": 1, "over_target": 1}
    assert line["synthetic_kept"] == 2 and line["still_missing"] == 0
    assert line["outputs_added"] == 3  # the real recipe note and the two new ones got outputs

    data = run.version.data()
    syn = data.filter(pl.col("synthetic"))
    assert syn.height == 2 and set(syn["origin"]) == {"synthetic"} and set(syn["category"]) == {"recipes"}
    assert set(syn["written_by"]) == {"local:scripted"} and syn["output"].null_count() == 0
    assert set(syn["text"]) <= set(WRITTEN.values()) and WRITTEN[3] not in set(syn["text"])
    for meta in syn["metadata"].to_list():
        assert json.loads(meta)["written_by"] == "local:scripted" and json.loads(meta)["examples"] == ["r1"]
    # every written note is accounted for: kept, or a reject with its reason, or a failed parse in candidates
    rejects = run.version.table("rejects").filter(pl.col("origin") == "synthetic")
    assert rejects.height == 4
    written = run.version.table("candidates").filter(pl.col("task") == "write_note")
    assert written.height == 7 and written.filter(~pl.col("ok"))["reason"].to_list() == ["too_short"]
    assert m["coverage"] and {c["cell"]: c["missing"] for c in m["coverage"]}["category=recipes"] == 0
    assert data.filter(~pl.col("synthetic")).height == len(REAL)


def test_every_labeled_row_reaches_training_or_is_counted(tmp_path):
    """Synthetic notes get a split (train or validation, never test), so the trainer sees them."""
    from assay.curation.config import SplitConfig
    from assay.curation.splits import assign_splits
    from assay.training.data import load_splits, to_examples

    store = DatasetStore(tmp_path / "datasets")
    version = curated(store)
    real = assign_splits(version.data(), SplitConfig(train=0.5, validation=0.5, test=0.0))
    version = store.write("notes", real, step="curate", config={**version.manifest["config"],
                          "split": {"train": 0.5, "validation": 0.5, "test": 0.0}},
                          gaps=version.manifest["gaps"], coverage=version.manifest["coverage"])
    cfg = SynthConfig(teachers=["local:scripted", "rule:lead"], fill_gaps=True,
                      gaps={"oversample": 3.5, "dedupe": {"semantic": {"enabled": False}}})
    run = synth(version.ref, cfg, store=store, project=Project(tmp_path),
                teachers={"local:scripted": ScriptedTeacher()})
    data = run.version.data()
    syn = data.filter(pl.col("synthetic"))
    assert syn.height == 2 and set(syn["split"]) <= {"train", "validation"}
    labeled = data.filter(pl.col("output").is_not_null())
    train, val = load_splits(run.version, task="summarize")
    (train_ex, dropped), (val_ex, val_dropped) = to_examples(train), to_examples(val)
    # the count invariant: every labeled row is a training or validation example, or counted as dropped
    assert len(train_ex) + len(val_ex) + sum(dropped.values()) + sum(val_dropped.values()) == \
        labeled.filter(pl.col("split").is_in(["train", "validation"])).height
    assert labeled.filter(pl.col("split").is_null()).height == 0
    assert {e.note_id for e in train_ex + val_ex} >= set(syn["note_id"])



def test_dry_run_prices_the_notes_to_write_and_their_outputs(tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    version = curated(store)
    cfg = SynthConfig(teachers=["local:scripted"], fill_gaps=True, dry_run=True, gaps={"oversample": 3.5})
    writer = ScriptedTeacher()
    run = synth(version.ref, cfg, store=store, project=Project(tmp_path), teachers={"local:scripted": writer})
    assert run.version is None and writer.seen == [] and len(store.versions("notes")) == 1
    assert run.estimate["new_notes_planned"] == 7
    # 5 real notes + 7 planned new ones to label, and 7 notes to write
    assert run.estimate["teachers"]["local:scripted"]["requests"] == 5 + 7 + 7
