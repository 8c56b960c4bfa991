"""A verdict that cannot be wrong by accident, from the CLI as a user meets it: a gate rule that cannot be
evaluated stops the eval before any prediction, an unreachable baseline is missing (never a free win), and
two evals of one model and suite with other gates or settings keep their own folders and verdicts."""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_student import register_student  # noqa: E402

from assay.project import Project  # noqa: E402

pytestmark = pytest.mark.slow
CHEAP = ["data.limit=3", "generation.max_new_tokens=8", "ondevice.measure=false", "metrics=[rougeL,length_ok]"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, assay_cache):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("verdict")
        register_student(Project(root))
    finally:
        torch.set_num_threads(threads)
    return root


def gate(tmp_path: Path, *rules: dict) -> str:
    path = tmp_path / "gate.yaml"
    path.write_text(json.dumps({"rules": list(rules)}), encoding="utf-8")  # JSON is YAML
    return str(path)


def predictions_made(home: Path) -> int:
    with sqlite3.connect(home / ".assay" / "state.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return (conn.execute("SELECT COUNT(*) FROM eval_predictions").fetchone()[0]
                if "eval_predictions" in tables else 0)


def test_a_rule_that_cannot_be_evaluated_stops_the_eval_before_any_prediction(home, tmp_path, assay):
    before = predictions_made(home)
    typo = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "base",
                 "--gate", gate(tmp_path, {"metric": "rougeL", "against": "baes", "must": "better"}), *CHEAP,
                 home=home, check=False)
    assert typo.returncode == 2 and "Traceback" not in typo.stderr, typo.stderr
    assert "rules[1] (rougeL better than baes) cannot be evaluated: baes is not a baseline of this run" in typo.stderr
    left_out = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "rule:lead",
                     "--gate", gate(tmp_path, {"metric": "rougeL", "against": "base", "must": "better"}), *CHEAP,
                     home=home, check=False)
    assert left_out.returncode == 2 and "base is not a baseline of this run (baselines: rule:lead" in left_out.stderr
    unknown = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "rule:lead",
                    "--gate", gate(tmp_path, {"metric": "rouge2", "at_least": 0.1}), *CHEAP, home=home, check=False)
    assert unknown.returncode == 2 and "rouge2 is not a metric of this suite (rougeL, length_ok are)" in unknown.stderr
    assert predictions_made(home) == before and "met all" not in typo.stdout + left_out.stdout + unknown.stdout


def test_an_unreachable_teacher_is_missing_not_a_free_win(home, tmp_path, assay):
    with socket.socket() as s:  # a port nothing listens on: every call is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = f"openai-compatible:gone@http://127.0.0.1:{port}/v1"
    rules = gate(tmp_path, {"metric": "rougeL", "against": f"teacher:{spec}", "must": "better"},
                 {"metric": "length_ok", "at_least": 0.0})
    proc = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", f"rule:lead,{spec}",
                 "--gate", rules, *CHEAP, home=home, check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # NO-SHIP, not SHIP
    folder = next(p for p in (home / "reports").iterdir() if (p / "results.json").is_file()
                  and f"teacher:{spec}" in (p / "results.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    key = f"teacher:{spec}"
    assert results["unanswered"][key]["count"] == 3 and results["unanswered"]["rule:lead"]["count"] == 0
    assert results["scores"][key]["rougeL"] is None  # missing, never 0.00
    cmp = next(c for c in results["comparisons"] if c["baseline"] == key and c["metric"] == "rougeL")
    assert (cmp["n"], cmp["missing"], cmp["verdict"]) == (0, 3, "n/a")
    rule = results["verdict"]["rules"][0]
    assert rule["passed"] is False and "gave no answer for 3 of 3 examples" in rule["explain"]
    assert "NO-SHIP" in proc.stdout and "gave no answer for 3 of 3" in proc.stdout


def test_two_evals_of_one_model_and_suite_keep_their_own_verdicts(home, tmp_path, assay):
    strict = gate(tmp_path, {"metric": "length_ok", "at_least": 1.01})  # no model can pass: NO-SHIP
    first = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "rule:lead", "--gate", strict,
                  *CHEAP, home=home, check=False)
    assert first.returncode == 4
    lax_dir = tmp_path / "lax"
    lax_dir.mkdir()
    lax = gate(lax_dir, {"metric": "length_ok", "at_least": 0.0})
    second = assay("eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "rule:lead", "--gate", lax,
                   *CHEAP[:-1], "metrics=[rougeL,length_ok,words]", home=home, check=False)
    assert second.returncode == 0
    verdicts = {}
    for results_file in (home / "reports").glob("notes-student-v1.0.0-summarize-*/results.json"):
        results = json.loads(results_file.read_text())
        verdicts[results["run_id"]] = (results["verdict"]["decision"], [r["rule"] for r in results["verdict"]["rules"]])
    assert ("NO-SHIP", ["length_ok >= 1.01"]) in verdicts.values() and ("SHIP", ["length_ok >= 0"]) in verdicts.values()
    # `assay report` without the digest is ambiguous now and says so, naming the runs
    ambiguous = assay("report", "notes-student-v1.0.0-summarize", home=home, check=False)
    assert ambiguous.returncode != 0 and "eval runs of notes-student-v1.0.0-summarize" in ambiguous.stderr
    for run_id in verdicts:
        assert run_id in ambiguous.stderr
