"""`assay curate` reports the training references that break their task's length contract (and keeps them).

Real notes and real human summaries from the sample export (its 45 notes that have one), a few made
longer or shorter than the summarize task asks; the real CLI curates them.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"
LONG = ("It was agreed after a long discussion in which everyone spoke, the budget was checked twice, the "
        "calendar was compared with the holidays of every person involved, and the risks were listed one by "
        "one, with an owner and a date for each of them, so that nobody would be surprised later on, and the "
        "notes were sent to everyone who missed the call.")


def export_with_summaries(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    notes = {n["id"]: n for n in json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))}
    for line in (SAMPLE / "gold.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            gold = json.loads(line)
            notes[gold["note_id"]]["summary"] = gold["summary"]
    labeled = [n for n in notes.values() if n.get("summary")]
    planted = {}
    for k, note in enumerate(labeled[:9]):
        if k < 5:
            note["summary"] += " It also lists what comes next. Nothing else was decided."
            planted[note["id"]] = "4_sentences" if note["summary"].count(". ") >= 3 else "3_sentences"
        elif k < 8:
            note["summary"] = LONG
            planted[note["id"]] = "too_many_words"
        else:
            note["summary"] = "Tea."
            planted[note["id"]] = "too_few_words"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(labeled), encoding="utf-8")
    return path, planted


def test_curate_counts_lists_and_keeps_references_that_break_the_length_contract(tmp_path, assay):
    from assay.evals.metrics import summary_length_problem

    export, planted = export_with_summaries(tmp_path)
    done = assay("curate", str(export), "dedupe.semantic.enabled=false", "balance.enabled=false", home=tmp_path)
    folder = tmp_path / "datasets" / "notes" / "v1"
    data = pl.read_parquet(folder / "data.parquet")
    trained_on = data.filter(pl.col("split").is_in(["train", "validation"]))
    expected = {i: planted[i] for i in trained_on["note_id"].to_list() if i in planted}
    assert summary_length_problem(LONG) == "too_many_words" and len(expected) >= 5  # most land in train
    assert set(planted) <= set(data["note_id"].to_list())  # reported, never dropped

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = manifest["length_contract"]
    reasons = {}
    for reason in expected.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    assert entry == {"task": "summarize", "contract": "1-2 sentences and 8-60 words",
                     "references": trained_on.height, "outside": len(expected),
                     "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}
    listed = pl.read_parquet(folder / "length_contract.parquet")
    assert dict(zip(listed["note_id"].to_list(), listed["reason"].to_list())) == expected
    line = " ".join(done.stdout.split())
    assert (f"{len(expected)} of {trained_on.height} summarize references to train on break the task's length "
            "contract (1-2 sentences and 8-60 words)") in line
    assert "length_contract.parquet" in line


def test_summaries_from_an_export_are_asked_for_with_the_tasks_length_contract(tmp_path):
    """An export's summary rows carry no instruction: training and evals ask with the summarize task's own,
    which states the length the gate checks, as synthetic rows do."""
    from assay.curation.synth.tasks import get_task
    from assay.evals.suite import training_instruction
    from assay.records import notes_frame
    from assay.store import DatasetStore
    from assay.training.data import to_examples

    rows = [{"note_id": "n1", "text": "Bought milk and bread; the bakery closes at six on Sundays now.",
             "task": "summarize", "input": "Bought milk and bread; the bakery closes at six on Sundays now.",
             "output": "Bought milk and bread, and the bakery now closes at six on Sundays."}]
    frame = notes_frame(rows).with_columns(pl.lit("train").alias("split"))
    (example,), _ = to_examples(frame)
    asked = get_task("summarize").instruction
    assert "one or two sentences" in asked
    assert example.prompt == [{"role": "user", "content": f"{asked}\n\n{rows[0]['input']}"}]
    version = DatasetStore(tmp_path / "datasets").write("notes", frame, step="test", config={})
    assert training_instruction("summarize", version) == asked
