"""The run's honest figures and its memory budget, against real runs of SmolLM2-135M-Instruct.

- the student is compared with the base model on the validation rows by the shared metric, with a
  paired CI, and a worse student is said to be worse (in red) while `assay train` still exits 0;
- `train.batch_size: auto` takes fewer rows under a smaller budget, and the run stays under it
  (peak RSS of the training process, measured in its own process);
- the quality benchmark's data is the real ACLSum release from its PyPI wheel, with its provenance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SFT_YAML = REPO / "training" / "configs" / "sft-smollm2.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_training import TINY, write_notes  # noqa: E402  (the same tiny runs and sample-note data)


def test_the_verdict_says_plainly_when_the_student_is_worse():
    from assay.training.versus import compare

    references = ["The team moved the launch to May after the audit found two blocking bugs.",
                  "Lentil dal for four in 35 minutes; it freezes well without the spinach.",
                  "Renew the passport before the June trip; the form needs two photos."]
    base = ["The launch moved to May because an audit found two blocking bugs.",
            "A 35 minute lentil dal for four that freezes well without spinach.",
            "Renew the passport before June; bring two photos for the form."]
    student = ["Meeting notes.", "Recipe.", "Travel."]
    found = compare(base, student, references)
    assert found["vs_base"] == "worse" and found["vs_base_rows"] == 3
    assert found["vs_base_ci_high"] < 0 and found["validation_rouge_l"] < found["base_validation_rouge_l"]
    assert found["verdict"].startswith("worse than the base model on 3 validation notes: ROUGE-L "
                                       f"{found['validation_rouge_l']:.1f} vs {found['base_validation_rouge_l']:.1f}")
    assert compare(student, base, references)["vs_base"] == "better"
    assert compare(base, base, references)["vs_base"] == "unclear"


def test_batch_size_auto_refuses_an_explicit_accumulation(tmp_path, assay_cache):
    from assay import training
    from assay.project import Project

    write_notes(tmp_path)
    with pytest.raises(ConfigError, match="gradient_accumulation: batch_size auto chooses it"):
        training.load(SFT_YAML, ["train.gradient_accumulation=2"], project=Project(tmp_path))
    with pytest.raises(ConfigError, match="auto measures activations without gradient checkpointing"):
        training.load(SFT_YAML, ["model.gradient_checkpointing=true"], project=Project(tmp_path))
    cfg = training.load(SFT_YAML, ["train.batch_size=2", "train.gradient_accumulation=2"], project=Project(tmp_path))
    assert cfg.train.batch_size == 2


@pytest.mark.slow
def test_assay_train_exits_0_and_prints_a_worse_student_in_red(tmp_path, assay_cache):
    """A learning rate that wrecks the adapter: every validation answer gets worse, so the CI is below zero."""
    write_notes(tmp_path)
    cmd = [sys.executable, "-m", "assay", "train", str(SFT_YAML),
           *[o for o in TINY if not o.startswith(("train.learning_rate", "eval.generate_examples",
                                                 "eval.max_new_tokens", "train.max_steps"))],
           "train.learning_rate=3.0", "train.max_steps=2", "eval.generate_examples=2", "eval.max_new_tokens=24"]
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "PYTHONPATH": str(REPO), "FORCE_COLOR": "1",
           "COLUMNS": "300"}
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if "the base model on 2 validation notes" in ln)
    assert "worse than the base model on 2 validation notes: ROUGE-L" in line
    assert "\x1b[1;31m" in line  # bold red
    card = (tmp_path / "models" / "tiny" / "v1.0.0" / "README.md").read_text(encoding="utf-8")
    assert "**Against the base model: worse than the base model on 2 validation notes" in card


def _train_in_child(tmp_path: Path, overrides: list[str]) -> dict:
    """A training run in its own process: its metrics and its peak RSS (ru_maxrss of that process)."""
    script = (
        "import json, resource, sys\n"
        "from pathlib import Path\n"
        "import training\n"
        "from assay.project import Project\n"
        f"v = training.run({str(SFT_YAML)!r}, json.loads(sys.argv[1]), project=Project(Path({str(tmp_path)!r})))\n"
        "print('RESULT ' + json.dumps({'metrics': v.metrics,"
        " 'peak_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(overrides)], env=env, capture_output=True,
                          text=True, timeout=1200)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, done.stderr[-3000:]
    return json.loads(line[7:])


@pytest.mark.slow
def test_batch_size_auto_fits_the_budget_and_the_run_stays_under_it(tmp_path, assay_cache):
    from assay.training.memory import RESERVE_BYTES

    write_notes(tmp_path)
    # one optimizer step of 4 rows: its first micro-batch already reaches the peak of a longer run
    shared = ["data.max_seq_length=512", "data.min_train_examples=4", "train.max_steps=1", "train.rows_per_step=4",
              "train.save_steps=1000", "eval.every_steps=1000", "eval.generate_examples=0", "eval.gate=null",
              "eval.best_metric=loss"]
    roomy = _train_in_child(tmp_path, shared + ["train.memory_gb=16", "output.name=roomy"])
    m = roomy["metrics"]
    assert (m["micro_batch"], m["gradient_accumulation"]) == (4, 1)
    assert roomy["peak_gb"] <= m["estimated_peak_gb"]  # the estimate holds where it has room
    # a budget with room for one and a half rows: one row at a time, four accumulated
    tight = m["memory_fixed_gb"] + RESERVE_BYTES / 2**30 + 1.5 * m["memory_per_row_mb"] / 1024
    small = _train_in_child(tmp_path, shared + [f"train.memory_gb={tight:.2f}", "output.name=small"])
    s = small["metrics"]
    assert (s["micro_batch"], s["gradient_accumulation"]) == (1, 4)
    assert small["peak_gb"] <= tight, (small["peak_gb"], tight)


def test_quality_benchmark_reads_aclsum_from_its_wheel(assay_cache):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_quality

    papers, where = bench_quality.aclsum_papers()
    assert {k: len(v) for k, v in papers.items()} == {"train": 100, "val": 50, "test": 100}
    assert "aclsum==0.1.2" in where and "licence MIT" in where
    assert not {p["id"] for p in papers["test"]} & {p["id"] for p in papers["train"] + papers["val"]}
    one = papers["test"][0]
    assert " ," not in one["abstract"] and "( " not in one["abstract"]  # the tokenized text is joined back
    sets, provenance = bench_quality.load_sets()
    assert len(sets["aspect"]["pool"]) == 300 and len(sets["paper"]["test"]) == 100
    assert all(r["output"] and r["input"] for s in sets.values() for part in s.values() for r in part)
