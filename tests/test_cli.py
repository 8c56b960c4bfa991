"""The CLI as a user runs it: a real subprocess, real files, exit codes and messages."""

import os
import re
import subprocess
import sys


def test_help_imports_neither_torch_nor_transformers(tmp_path):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "assay", "--help"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "ASSAY_HOME": str(tmp_path)})
    assert proc.returncode == 0 and "curate" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers", "sentence_transformers", "polars")}


def test_domain_errors_are_one_line_and_nonzero(tmp_path, assay):
    missing = assay("curate", str(tmp_path / "nope.json"), home=tmp_path, check=False)
    assert missing.returncode != 0 and "nope.json: no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "notes.json"
    bad.write_text('[{"id": "a", "content": "fine note with words"},\n {"id": "b", "content": }]')
    proc = assay("curate", str(bad), home=tmp_path, check=False)
    assert proc.returncode == 2 and "notes.json" in proc.stderr and "Traceback" not in proc.stderr
    cfg = assay("curate", str(bad), "dedupe.near.threshold=3", "clean.bogus=1", home=tmp_path, check=False)
    assert cfg.returncode == 2 and "dedupe.near.threshold" in cfg.stderr and "clean.bogus: unknown key" in cfg.stderr
    unknown = assay("datasets", "show", "nothing", home=tmp_path, check=False)
    assert unknown.returncode == 1 and "unknown dataset 'nothing'" in unknown.stderr
    debug = assay("--debug", "datasets", "show", "nothing", home=tmp_path, check=False)
    assert "Traceback" in debug.stderr


def _summary_text(width: int, terminal: bool, spend: float = 0.0) -> str:
    import io

    from rich.console import Console

    from assay.cli_run import show_summary
    from assay.runner import REVIEW_OFF, PipelineRun, Row
    from assay.stage import Manifest

    def manifest(stage: str, output: str, verdict: str | None = None) -> Manifest:
        return Manifest(stage=stage, fingerprint="f", inputs=[], config_hash="c", code_version="v", output=output,
                        rows_in=236, rows_out=27, spend_usd=spend, verdict=verdict)

    run = PipelineRun([Row("train", "ran", 150, manifest("train", "model:notes-student@v1.2.0"),
                           "input changed, code changed"),
                       Row("review", "skipped", why=REVIEW_OFF),
                       Row("eval", "ran", 106, manifest("eval", "report:x", "NO-SHIP"), "first run")])
    out = io.StringIO()
    show_summary(Console(file=out, width=width, force_terminal=terminal, color_system=None), run, None)
    return out.getvalue()


def test_pipeline_summary_keeps_versions_and_verdicts_whole_at_80_columns():
    """An 80-column terminal wraps only `why`; the spend column goes when nothing was spent."""
    narrow = _summary_text(80, terminal=True)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert re.search(r"^ ?train +ran +150 s +236>27 +notes-student@v1\.2\.0 +input changed,", narrow, re.M), narrow
    assert "spend" not in narrow and "NO-SHIP" in narrow
    assert "spend" in _summary_text(80, terminal=True, spend=0.42)  # money spent is always shown
    # a log or a pipe (not a terminal) gets the table at 120 columns: every row on one line, spend included
    piped = _summary_text(80, terminal=False)
    assert re.search(r"^ ?train +ran +150 s +236>27 +\$0\.00 +notes-student@v1\.2\.0 +input changed, code changed *$",
                     piped, re.M), piped


def test_models_list_reads_at_80_columns(tmp_path):
    """Versions, datasets and figures stay whole in an 80-column terminal (they folded into one-letter columns)."""
    from assay.project import Project
    from assay.registry import register

    metrics = {"train_loss": 1.5, "steps": 40, "best_step": 30, "vs_base": "better", "validation_rouge_l": 25.31,
               "base_validation_rouge_l": 17.12, "gate_rules_passed": 1, "gate_rules_checked": 2,
               "gate": "ship gate default.yaml on 40 validation notes: 1 of 2 rule(s) pass: " + "x" * 200}
    register(Project(tmp_path), "notes-student", lambda folder, version, parent: None, recipe="sft",
             base_model="smollm2-135m-instruct", architecture="llama", dataset="notes@v12", dataset_hash="h",
             teachers=["local"], metrics=metrics, config={}, wall_time_s=600.0, device="cpu", cost_usd=0.0)
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "assay", "models", "list"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    table = [ln for ln in lines if ": /" not in ln and "@v1.0.0:" not in ln]  # paths may run on
    assert all(len(ln) <= 80 for ln in table), "\n".join(table)
    header = next(ln for ln in lines if ln.split()[:2] == ["model", "parent"]).split()
    assert header == ["model", "parent", "recipe", "dataset", "created", "eval", "verdict"]
    row = next(ln for ln in lines if ln.lstrip().startswith("notes-student@v1.0.0 ")).split()
    assert row[:5] == ["notes-student@v1.0.0", "-", "sft", "notes@v12", row[4]] and row[4].startswith("20")
    said = " ".join(" ".join(lines).split())
    assert "not evaluated" in said
    assert ("notes-student@v1.0.0: better than base on validation: ROUGE-L 25.3 vs 17.1; gate 1/2 rules on "
            "validation; card ") in said
    assert "smollm2-135m-instruct" in " ".join(ln.split()[0] for ln in lines if ln.strip())
