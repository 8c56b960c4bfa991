"""The CLI as a user runs it: a real subprocess, real files, exit codes and messages."""

import os
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
