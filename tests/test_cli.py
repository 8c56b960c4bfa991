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

    run = PipelineRun([Row("train", "ran", 150, manifest("train", "model:notes-student@v1.2.0"), "input changed, code changed"),
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
