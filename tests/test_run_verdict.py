"""`assay run` reads its own verdict and reuses only what is still what it wrote, from the CLI: an eval of the same
model and suite with another gate does not change the pipeline's verdict, a changed metric reruns the eval, a
truncated dataset version is made again, and two runs of one project never run at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assay.project import Project
from assay.store import DatasetStore

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample"
SMALL = ['synth.overrides=["limit=16", "teachers=[rule:lead]", "fill_gaps=false"]',
         'train.overrides=["train.max_steps=4", "train.save_steps=2", "eval.every_steps=2", '
         '"eval.generate_examples=1", "eval.max_new_tokens=8"]',
         'eval.against=[rule:lead]']
EVAL = ["data.limit=4", "generation.max_new_tokens=8", "ondevice.measure=false"]


@pytest.fixture
def pipeline(tmp_path):
    notes = json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))
    export = tmp_path / "export" / "notes.json"
    export.parent.mkdir()
    export.write_text(json.dumps(notes), encoding="utf-8")
    text = (SAMPLE / "pipeline.yaml").read_text(encoding="utf-8").replace("source: notes.json", f"source: {export}")
    path = tmp_path / "pipeline.yaml"
    path.write_text(text.replace("config: curate.yaml", f"config: {SAMPLE / 'curate.yaml'}")
                    .replace("config: synth.yaml", f"config: {SAMPLE / 'synth.yaml'}"), encoding="utf-8")
    return path


def gate_file(folder: Path, name: str, *rules: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps({"rules": list(rules)}), encoding="utf-8")
    return path


def start(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ASSAY_HOME": str(home), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "assay", *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run(home: Path, *args: str) -> tuple[int, str]:
    proc = start(home, *args)
    out, _ = proc.communicate(timeout=1200)
    assert "Traceback" not in out, out
    return proc.returncode, out


def stage_rows(home: Path) -> dict[str, dict]:
    latest = max((home / ".assay" / "logs").glob("run-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return {r["stage"]: r for r in json.loads(latest.read_text(encoding="utf-8"))["stages"]}


@pytest.mark.slow
def test_the_pipeline_verdict_is_its_own_and_reuse_checks_what_it_reuses(tmp_path, pipeline, assay_cache):
    home = tmp_path / "home"
    strict = gate_file(tmp_path, "strict", {"metric": "length_ok", "at_least": 1.01})  # nothing passes: NO-SHIP
    lax = gate_file(tmp_path, "lax", {"metric": "length_ok", "at_least": 0.0})
    args = ["run", str(pipeline), *SMALL, f"eval.gate={strict}", f"eval.overrides={json.dumps(EVAL)}"]

    code, out = run(home, *args)
    assert code == 4 and "verdict: NO-SHIP" in out, out

    # the same model and suite evaluated by hand with another gate and fewer examples: SHIP, in its own folder
    code, out = run(home, "eval", "summarize-test", "--model", "notes-student@v1.0.0", "--against", "rule:lead",
                    "--gate", str(lax), "data.limit=3", "generation.max_new_tokens=8", "ondevice.measure=false")
    assert code == 0 and "SHIP" in out, out

    code, out = run(home, *args)
    rows = stage_rows(home)
    assert (rows["eval"]["status"], rows["eval"]["verdict"]) == ("reused", "NO-SHIP"), rows["eval"]
    assert code == 4 and "verdict: NO-SHIP" in out, out  # not the SHIP of the later eval by hand

    # a changed metric list is a new eval run (it was "reused unchanged" with the old metrics)
    more = ["run", str(pipeline), *SMALL, f"eval.gate={strict}",
            f"eval.overrides={json.dumps([*EVAL, 'metrics=[rougeL, length_ok, words]'])}"]
    code, out = run(home, *more)
    rows = stage_rows(home)
    assert code == 4 and (rows["train"]["status"], rows["eval"]["status"]) == ("reused", "ran"), rows
    assert rows["eval"]["why"] == "config changed"

    # a truncated dataset version is not reused as unchanged: curation makes it again, training is not fooled
    curated = DatasetStore(home / "datasets").get("notes@v1").path / "data.parquet"
    curated.write_bytes(curated.read_bytes()[:100])
    code, out = run(home, "run", str(pipeline), *SMALL, "--until", "curate")
    rows = stage_rows(home)
    assert code == 0 and rows["curate"]["status"] == "ran", out
    assert "notes@v1 changed since it was written" in rows["curate"]["why"]


def test_a_second_run_of_one_project_waits_for_the_first(tmp_path, pipeline):
    home = tmp_path / "home"
    args = ["run", str(pipeline), 'synth.overrides=["limit=4", "teachers=[rule:lead]", "fill_gaps=false"]',
            "--until", "synth"]
    lines: list[str] = []
    with Project(home).lock():  # another run holds the project
        proc = start(home, *args)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.time() + 60
        while time.time() < deadline and not any("waiting for it to finish" in line for line in lines):
            time.sleep(0.2)
        assert any("another assay run holds this project (pid" in line for line in lines), lines
        time.sleep(1)
        assert proc.poll() is None and not (home / "datasets" / "notes").exists()  # it waited, wrote nothing
    assert proc.wait(timeout=300) == 0, "".join(lines)
    reader.join(5)

    # two at once with a changed config: one runs synth, the other waits and then reuses what it wrote
    again = [a.replace("limit=4", "limit=5") for a in args]
    first, second = start(home, *again), start(home, *again)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    versions = [v.ref for v in DatasetStore(home / "datasets").versions("notes")]
    assert versions == ["notes@v1", "notes@v2", "notes@v3"]  # not a v4 identical to v3


def test_a_report_seal_allows_peoples_answers_but_not_another_verdict(tmp_path):
    from assay.stage import Manifest, changed_since_published, seal

    project = Project(tmp_path / "home")
    folder = tmp_path / "home" / "reports" / "run-1"
    folder.mkdir(parents=True)
    results = {"run_id": "run-1", "verdict": {"decision": "NO-SHIP"}, "human": None}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    ref = f"report:{folder}"
    manifest = Manifest(stage="eval", fingerprint="f", inputs=[], config_hash="c", code_version="v", output=ref,
                        output_seal=seal(project, ref))
    assert changed_since_published(project, manifest) is None
    (folder / "index.html").write_text("<p>re-rendered</p>", encoding="utf-8")  # the report stage's own file
    (folder / "results.json").write_text(json.dumps({**results, "human": {"wins": 3}}, indent=1), encoding="utf-8")
    assert changed_since_published(project, manifest) is None  # `assay review pull-eval` added answers
    (folder / "results.json").write_text(json.dumps({**results, "verdict": {"decision": "SHIP"}}), encoding="utf-8")
    assert "changed since it was written" in changed_since_published(project, manifest)
    (folder / "results.json").write_text("{", encoding="utf-8")
    assert "changed since it was written" in changed_since_published(project, manifest)
