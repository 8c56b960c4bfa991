"""The stage contract and `assay run`/`assay demo`: reuse on unchanged fingerprints, reruns on changes,
resume after kill -9 during training, and the demo end to end with its counts adding up."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from assay.errors import AssayError
from assay.project import Project
from assay.runner import CurateSection, load_pipeline, run_pipeline, run_stage
from assay.stage import Context, history
from assay.store import DatasetStore

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample"
SMALL = ['synth.overrides=["limit=8", "teachers=[rule:lead]", "fill_gaps=false"]',
         'train.overrides=["train.max_steps=6", "train.save_steps=2", "eval.every_steps=2", '
         '"eval.generate_examples=1", "eval.max_new_tokens=16"]',
         'eval.overrides=["data.limit=6", "generation.max_new_tokens=24"]',
         'eval.against=[base, rule:lead]']


@pytest.fixture
def export(tmp_path):
    """A copy of the first 60 sample notes that a test may edit."""
    notes = json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))
    path = tmp_path / "export" / "notes.json"
    path.parent.mkdir()
    path.write_text(json.dumps(notes[:60]), encoding="utf-8")
    return path


def _pipeline(tmp_path, export, until_synth=True):
    text = (SAMPLE / "pipeline.yaml").read_text(encoding="utf-8").replace("source: notes.json", f"source: {export}")
    path = tmp_path / "pipeline.yaml"
    path.write_text(text.replace("config: curate.yaml", f"config: {SAMPLE / 'curate.yaml'}")
                    .replace("config: synth.yaml", f"config: {SAMPLE / 'synth.yaml'}"), encoding="utf-8")
    return path


def test_each_stage_is_reused_unchanged_and_reruns_when_its_input_or_config_changes(tmp_path, export):
    ctx = Context(Project(tmp_path / "home"))
    cfg = load_pipeline(_pipeline(tmp_path, export), ['synth.overrides=["teachers=[rule:lead]", "fill_gaps=false"]'])

    first = run_pipeline(cfg, ctx, until="synth")
    assert [(r.stage, r.status) for r in first.rows] == [("curate", "ran"), ("synth", "ran")]
    again = run_pipeline(cfg, ctx, until="synth")
    assert [(r.stage, r.status) for r in again.rows] == [("curate", "reused"), ("synth", "reused")]
    assert again.output("synth") == first.output("synth")
    store = DatasetStore(ctx.project.datasets)
    assert [v.ref for v in store.versions("notes")] == ["notes@v1", "notes@v2"]  # nothing written twice

    # a config change reruns that stage and what follows; the stage before it is reused
    changed = load_pipeline(_pipeline(tmp_path, export), ['synth.overrides=["teachers=[rule:lead]", "fill_gaps=false",'
                                                          ' "limit=5"]'])
    rows = run_pipeline(changed, ctx, until="synth").rows
    assert [(r.stage, r.status) for r in rows] == [("curate", "reused"), ("synth", "ran")]
    assert rows[1].why == "config changed"

    # editing one note reruns curation and synthesis; the teacher is asked only about the edited note
    notes = json.loads(export.read_text(encoding="utf-8"))
    labeled = store.get(first.output("synth").split(":")[1]).data().filter(pl.col("output").is_not_null())
    target = next(n for n in notes if str(n["id"]) in set(labeled["note_id"].to_list()))
    target["content"] += " Also: call the plumber about the kitchen tap on Friday."
    export.write_text(json.dumps(notes), encoding="utf-8")
    rows = run_pipeline(cfg, ctx, until="synth").rows
    # (synth's last run had limit=5, so its config changed too)
    assert [(r.stage, r.status, r.why) for r in rows] == [("curate", "ran", "input changed"),
                                                          ("synth", "ran", "input changed, config changed")]
    synth = store.get(rows[1].manifest.output.split(":")[1]).manifest
    assert synth["new_calls"] == 1  # every other answer came from the cache
    assert synth["cache_hits"] + synth["new_calls"] == synth["labeled"] + synth["no_valid_output"]

    # every stage run is recorded with its inputs' hashes, config hash and code version
    recorded = history(ctx.project)
    assert [m.stage for m in recorded] == ["curate", "synth", "synth", "curate", "synth"]
    assert all(m.inputs and m.inputs[0].hash.startswith("sha256:") and m.config_hash and m.code_version
               for m in recorded)


def test_a_cli_verb_is_the_same_stage(tmp_path, export, assay):
    """`assay curate` twice on the same export writes one version and says the second was reused."""
    home = tmp_path / "home"
    first = assay("curate", str(export), "--config", str(SAMPLE / "curate.yaml"), home=home)
    second = assay("curate", str(export), "--config", str(SAMPLE / "curate.yaml"), home=home)
    assert "written to" in first.stdout and "reused dataset:notes@v1" in second.stdout
    assert [p.name for p in (home / "datasets" / "notes").iterdir() if not p.name.startswith(".")] == ["v1"]
    third = assay("curate", str(export), "--config", str(SAMPLE / "curate.yaml"), "clean.min_words=4", home=home)
    assert "notes@v2" in third.stdout


def test_from_needs_the_earlier_outputs_and_dry_run_changes_nothing(tmp_path, export):
    ctx = Context(Project(tmp_path / "home"))
    cfg = load_pipeline(_pipeline(tmp_path, export), ['synth.overrides=["teachers=[rule:lead]", "fill_gaps=false"]'])
    with pytest.raises(AssayError, match="--from synth: stage curate has no output"):
        run_pipeline(cfg, ctx, start="synth", until="synth")
    plan = run_pipeline(cfg, ctx, dry_run=True)
    assert [(r.stage, r.status) for r in plan.rows][:3] == [("curate", "would run"), ("synth", "would run"),
                                                             ("review", "skipped")]
    assert not (ctx.project.datasets / "notes").exists()
    run_pipeline(cfg, ctx, until="curate")
    rows = run_pipeline(cfg, ctx, start="synth", until="synth").rows
    assert [(r.stage, r.status) for r in rows] == [("curate", "reused"), ("synth", "ran")]


def test_a_stage_whose_output_was_deleted_runs_again(tmp_path, export):
    ctx = Context(Project(tmp_path / "home"))
    section = CurateSection(source=str(export), config=str(SAMPLE / "curate.yaml"))
    first = run_stage("curate", section, [f"file:{export}"], ctx)
    shutil.rmtree(ctx.project.datasets / "notes" / "v1")
    second = run_stage("curate", section, [f"file:{export}"], ctx)
    assert (first.status, second.status, second.why) == ("ran", "ran", "the earlier output is gone")


# ---------------------------------------------------------------- the demo, for real

def _demo(home: Path, *extra: str, wait_for=None, timeout=1500):
    env = {**os.environ, "ASSAY_HOME": str(home), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "assay", "demo", *SMALL, *extra], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait_for is None:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not wait_for():
        time.sleep(0.5)
    assert proc.poll() is None, "the demo ended before training wrote a checkpoint:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, in the middle of training
    proc.wait()
    return proc.returncode, ""


@pytest.mark.slow
def test_demo_killed_during_training_resumes_and_ends_with_a_report_whose_counts_add_up(tmp_path, assay_cache):
    home = tmp_path / "home"

    def checkpoint():
        return any(p.is_file() for p in (home / "models").glob("notes-student/.runs/*/checkpoints/checkpoint-*/"
                                                                "trainer_state.json"))

    code, _ = _demo(home, wait_for=checkpoint)
    assert code == -signal.SIGKILL and not (home / "models" / "notes-student" / "v1.0.0").exists()
    paid = _ledger_rows(home)

    code, out = _demo(home)
    assert code == 0, out
    rows = _summary(home)
    assert [(stage, r["status"]) for stage, r in rows] == [
        ("curate", "reused"), ("synth", "reused"), ("review", "skipped"), ("train", "ran"), ("export", "skipped"),
        ("eval", "ran"), ("report", "ran")]
    assert re.search(r"\[assay train\] resuming from checkpoint-[24]\b", out), out
    asked = _ledger_rows(home)  # the eval stage asks the rule baseline about the gold notes: new keys only
    assert paid and all(asked[key] == 1 for key in paid) and max(asked.values()) == 1  # no teacher asked twice
    assert "verdict:" in out and "report:" in out
    assert "`assay review serve`, then the same command with review.mode=wait" in out  # how to turn review on
    assert "{'loss'" not in out and "it/s]" not in out  # the trainer's dicts and bars went to the log

    # the counts add up from the export to the report
    store = DatasetStore(home / "datasets")
    curated, labeled = store.get("notes@v1").manifest, store.get("notes@v2").manifest
    assert curated["rows_in"] == curated["rows"] + sum(curated["dropped"].values())
    assert labeled["labeled"] + labeled["no_valid_output"] == 8
    run = json.loads((home / "models" / "notes-student" / "v1.0.0" / "run.json").read_text())
    data = pl.read_parquet(home / "datasets" / "notes" / "v2" / "data.parquet")
    trainable = data.filter(pl.col("output").is_not_null())
    assert run["data"]["train_rows"] == trainable.filter(pl.col("split") == "train").height
    assert run["data"]["validation_rows"] == trainable.filter(pl.col("split") == "validation").height
    train_row = dict(rows)["train"]  # the summary's rows in > out: the dataset's rows > the rows training used
    assert (train_row["rows_in"], train_row["rows_out"]) == (
        data.height, trainable.filter(pl.col("split").is_in(["train", "validation"])).height)
    (folder,) = (home / "reports").glob("notes-student-v1.0.0-summarize-*")  # one eval run: one folder
    results = json.loads((folder / "results.json").read_text())
    # 6 steps on rule:lead labels, answers cut at 24 tokens: no student here can be clearly better than its base
    # on 6 notes, so the verdict is known, and it is the one the run's own rules give
    assert len(results["examples"]) == 6 and results["verdict"]["decision"] == "NO-SHIP"
    assert any(not rule["passed"] for rule in results["verdict"]["rules"])
    assert (folder / "index.html").stat().st_size > 10_000
    assert f"verdict: {results['verdict']['decision']}" in out

    # warm: nothing to redo
    started = time.time()
    code, out = _demo(home)
    assert code == 0 and {r["status"] for _, r in _summary(home)} == {"reused", "skipped"}
    assert time.time() - started < 60


def _ledger_rows(home: Path) -> Counter:
    """How many times each (teacher, prompt key) was answered, from the spend ledger."""
    import sqlite3

    with sqlite3.connect(home / ".assay" / "state.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "synth_ledger" not in tables:
            return Counter()
        return Counter(conn.execute("SELECT teacher, key FROM synth_ledger WHERE status = 'ok'").fetchall())


def _summary(home: Path) -> list[tuple[str, dict]]:
    """(stage, row) of the latest run, from the summary it wrote beside its log."""
    latest = max((home / ".assay" / "logs").glob("run-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [(r["stage"], r) for r in json.loads(latest.read_text(encoding="utf-8"))["stages"]]


def test_training_keeps_checkpoints_by_the_pipelines_own_gate(tmp_path, export):
    gate = tmp_path / "strict.yaml"
    gate.write_text("rules:\n  - {metric: length_ok, at_least: 0.9}\n", encoding="utf-8")
    cfg = load_pipeline(_pipeline(tmp_path, export), [f"eval.gate={gate}"])
    assert cfg.train.overrides[-1] == f"eval.gate={gate}"
    mine = load_pipeline(_pipeline(tmp_path, export), [f"eval.gate={gate}", 'train.overrides=["eval.gate=null"]'])
    assert mine.train.overrides == ["eval.gate=null"]  # the train section's own choice wins
    none = load_pipeline(_pipeline(tmp_path, export), ["eval.gate=null"])
    assert not any(o.startswith("eval.gate") for o in none.train.overrides)
