"""Training keeps the checkpoint the ship gate would pass: the gate's rules on the validation answers.

Unit tests of training.gatecheck on real gate files and real metric functions (no model), a config
test, and one real run (slow) where the gate, not ROUGE-L, decides which checkpoint is kept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assay.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SFT_YAML = REPO / "training" / "configs" / "sft-smollm2.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_training import TINY, write_notes  # noqa: E402  (the same tiny runs and sample-note data)

REFERENCES = ["The team moved the launch to May after the audit found two blocking bugs in checkout.",
              "Lentil dal for four in 35 minutes; it freezes well if you leave out the spinach.",
              "Renew the passport before the June trip, and bring two photos for the form.",
              "Call the plumber about the leaking kitchen tap before the guests arrive on Friday."]
# the base model's habit: a preamble and a wander, many sentences
BASE = [f"Here is a summary of the note. {r} It is an important note. It has several points. Thanks."
        for r in REFERENCES]
# close to the references, but going on for a third and fourth sentence
WORDY = [f"{r} This is noted for later. More may follow soon." for r in REFERENCES]


def test_the_default_gate_is_checked_on_validation_where_it_can_be_and_says_what_it_cannot():
    from assay.training import gatecheck

    gate = gatecheck.load("evals/gates/default.yaml")  # shipped, found from any working folder
    assert Path(gate.path) == REPO / "evals" / "gates" / "default.yaml"
    assert [r.describe() for r in gate.rules] == ["rougeL better than base", "length_ok >= 0.8"]
    assert [rule for rule, _ in gate.unchecked] == [
        "rougeL vs previous: CI lower bound of the improvement >= -0.01"]
    assert "no previous model answers the validation rows" in gate.unchecked[0][1]


def test_rules_mean_what_they_mean_in_assay_eval(tmp_path):
    from assay.training import gatecheck

    gate = gatecheck.load("evals/gates/default.yaml")
    wordy = {c.rule: c for c in gate.check(WORDY, BASE, REFERENCES)}
    assert wordy["rougeL better than base"].passed
    assert not wordy["length_ok >= 0.8"].passed  # four sentences each: none has the asked length
    assert wordy["length_ok >= 0.8"].actual == "0.00, needs at least 80.00"
    exact = {c.rule: c for c in gate.check(REFERENCES, BASE, REFERENCES)}
    assert all(c.passed for c in exact.values()), exact
    # without the base's answers a comparison fails: never passed on missing evidence
    assert not {c.rule: c for c in gate.check(REFERENCES, None, REFERENCES)}["rougeL better than base"].passed
    # the other comparisons and bounds of evals/gate.py
    other = tmp_path / "gate.yaml"
    other.write_text("rules:\n"
                     "  - {metric: rougeL, against: base, ci_low_at_least: 0.05}\n"
                     "  - {metric: repetition, against: base, must: not_worse}\n"
                     "  - {metric: repetition, at_most: 0.01}\n"
                     "  - {metric: embed_sim, at_least: 0.5}\n"
                     "  - {metric: latency_p95_ms, at_most: 200}\n"
                     "  - {metric: rougeL, against: rule:lead, must: better}\n", encoding="utf-8")
    gate = gatecheck.load(str(other))
    assert [why.split(",")[0].split(":")[0] for _, why in gate.unchecked] == [
        "needs embeddings", "an on-device figure", "no rule"]
    found = {c.rule: c.passed for c in gate.check(REFERENCES, BASE, REFERENCES)}
    assert found == {"rougeL vs base: CI lower bound of the improvement >= 0.05": True,
                     "repetition not worse than base": True, "repetition <= 0.01": True}
    looping = ["the tap the tap the tap the tap leaks the tap the tap"] * len(REFERENCES)
    found = {c.rule: c.passed for c in gate.check(looping, BASE, REFERENCES)}
    assert found == {"rougeL vs base: CI lower bound of the improvement >= 0.05": False,
                     "repetition not worse than base": False, "repetition <= 0.01": False}


def test_a_checkpoint_passing_more_rules_outranks_a_better_rouge():
    from assay.training import gatecheck

    gate = gatecheck.load("evals/gates/default.yaml")
    wordy, exact = gate.check(WORDY, BASE, REFERENCES), gate.check(REFERENCES, BASE, REFERENCES)
    assert gatecheck.rank(exact, 0.30) > gatecheck.rank(wordy, 0.90)
    assert gatecheck.rank(exact, 0.31) > gatecheck.rank(exact, 0.30)  # then the headline among equals
    line = gatecheck.summary(wordy, gate, len(REFERENCES))
    assert line.startswith("ship gate default.yaml on 4 validation notes: 1 of 2 rule(s) pass: passes rougeL "
                           "better than base (+")
    assert "FAILS length_ok >= 0.8 (0.00, needs at least 80.00)" in line
    assert "not checked in training: rougeL vs previous" in line


def test_a_gate_needs_generated_answers_and_an_existing_file(tmp_path, assay_cache):
    from assay import training
    from assay.project import Project

    write_notes(tmp_path)
    with pytest.raises(ConfigError) as info:
        training.load(SFT_YAML, ["eval.generate_examples=0", "eval.best_metric=loss"], project=Project(tmp_path))
    assert "eval.gate: its rules are checked on generated answers" in str(info.value)
    with pytest.raises(ConfigError) as info:
        training.load(SFT_YAML, ["eval.gate=gates/nope.yaml"], project=Project(tmp_path))
    assert "eval.gate: gates/nope.yaml: no such gate file" in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {metric: rougeL, must: better}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="eval.gate: .*compare with a baseline: set against"):
        training.load(SFT_YAML, [f"eval.gate={bad}"], project=Project(tmp_path))
    assert training.load(SFT_YAML, [], project=Project(tmp_path)).eval.gate == "evals/gates/default.yaml"


@pytest.mark.slow
def test_the_kept_checkpoint_is_the_gates_choice_not_the_best_rouge(tmp_path, assay_cache):
    """Two runs of the same tiny recipe (deterministic): the first keeps its best-ROUGE step; a gate whose
    rule that step fails makes the second (`assay train` as a user runs it) keep the other one, and the
    terminal, card and metrics say which rules pass; library output stays in the run log."""
    from assay import registry, training
    from assay.project import Project
    from assay.training.common import read_log

    write_notes(tmp_path)
    project = Project(tmp_path)
    tiny = [o for o in TINY
            if not o.startswith(("eval.generate_examples", "eval.max_new_tokens", "train.learning_rate"))]
    tiny += ["eval.generate_examples=2", "eval.max_new_tokens=24", "eval.best_metric=rouge_l",
             "train.learning_rate=3e-3"]
    first = training.run(SFT_YAML, tiny + ["eval.gate=null", "output.name=by-rouge"], project=project)
    rouge = {r["step"]: r["eval_rouge_l"] for r in read_log(first.path / "training_log.jsonl")
             if "eval_rouge_l" in r}
    assert len(rouge) == 2 and len(set(rouge.values())) == 2, rouge  # two evaluations to choose between
    best, other = sorted(rouge, key=rouge.get, reverse=True)
    assert first.metrics["best_step"] == best and "gate" not in first.metrics
    # a rule only the lower-ROUGE checkpoint passes
    gate = tmp_path / "gate.yaml"
    cut = round((rouge[best] + rouge[other]) / 2, 6)
    gate.write_text(f"rules:\n  - {{metric: rougeL, at_most: {cut}}}\n  - {{metric: rougeL, against: previous, "
                    "must: not_worse}\n", encoding="utf-8")
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "PYTHONPATH": str(REPO), "COLUMNS": "300",
           "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "assay", "train", str(SFT_YAML), *tiny, f"eval.gate={gate}",
                           "output.name=by-gate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    second = registry.get(project, "by-gate@v1.0.0")
    assert second.metrics["best_step"] == other
    assert second.metrics["gate_rules_passed"] == 1 and second.metrics["gate_rules_checked"] == 1
    log = read_log(second.path / "training_log.jsonl")
    checks = {r["step"]: r["eval_gate"] for r in log if "eval_gate" in r}
    assert [c["passed"] for c in checks[other]] == [True] and [c["passed"] for c in checks[best]] == [False]
    said = f"ship gate gate.yaml on 2 validation notes: 1 of 1 rule(s) pass: passes rougeL <= {cut:g}"
    terminal = " ".join(done.stdout.split())  # rich wraps long lines at word boundaries
    assert said in terminal and "not checked in training: rougeL not worse than previous" in terminal
    card = (second.path / "README.md").read_text(encoding="utf-8")
    assert f"**S{said[1:]}" in card and "not checked in training: rougeL not worse than previous" in card
    info = json.loads((second.path / "run.json").read_text(encoding="utf-8"))
    assert info["metrics"]["gate"] == second.metrics["gate"]
    # `assay train` run directly: datasets' map bars, FutureWarnings and the trainer's dicts go to the run log
    noise = re.compile(r"Warning|it/s\]|examples/s|\{'loss'")
    assert not noise.search(done.stdout + done.stderr), done.stdout + done.stderr
    run_log = Path(re.search(r"^log: (\S+)$", done.stdout, re.M).group(1))
    assert run_log.parent == tmp_path / ".assay" / "logs" and noise.search(run_log.read_text(encoding="utf-8"))
