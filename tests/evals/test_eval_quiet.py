"""`assay eval` run directly keeps library output (weight-loading bars, FutureWarnings) in the run log, as
`assay run` does: the terminal gets assay's own table, verdict and the log's path."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assay.project import Project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_student import register_student  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"Warning|it/s\]|Loading|%\|")


@pytest.mark.slow
def test_assay_eval_sends_library_output_to_the_run_log(tmp_path, assay_cache):
    version = register_student(Project(tmp_path))
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "COLUMNS": "200", "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "default"}  # every warning shown once, as a user's terminal would
    proc = subprocess.run([sys.executable, "-m", "assay", "eval", "summarize", "--model", version.ref,
                           "--against", "base", "data.limit=2", "generation.max_new_tokens=8"],
                          env=env, capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert proc.returncode in (0, 4), proc.stderr[-3000:]
    assert not NOISE.search(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    log = Path(re.search(r"^log: (\S+)$", proc.stdout, re.M).group(1))
    assert log.parent == tmp_path / ".assay" / "logs" and NOISE.search(log.read_text(encoding="utf-8"))
    assert "ROUGE-L" in proc.stdout and re.search(r"^NO GATE No ship rules were given", proc.stdout, re.M)
