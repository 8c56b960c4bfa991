"""lm-evaluation-harness against the real SmolLM2-135M-Instruct and a real LoRA adapter (peft=), offline, on
our own examples, scored by our ROUGE; its scores join `assay eval`'s comparison as `harness:<metric>` rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tiny_student import BASE, register_student

from assay.errors import ConfigError, ModelUnavailableError
from assay.evals.harness import PREFIX, harness_metrics, model_args, run_harness, write_task
from assay.evals.metrics import rouge
from assay.evals.suite import load_examples, load_suite
from assay.project import Project
from assay.store import DatasetStore

SMALL = ["data.limit=4", "generation.max_new_tokens=12", "generation.batch_size=4",
         "metrics=[rougeL,rouge1,words]", "harness=true", "ondevice.measure=false"]
INSTRUCTION = "Summarize this note in one or two sentences."


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core box two threads spin against each other (measured 6x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def project(tmp_path_factory, assay_cache) -> Project:
    project = Project(tmp_path_factory.mktemp("harness-proj"))
    register_student(project)
    return project


def examples_of(suite, project):
    return load_examples(suite, store=DatasetStore(project.datasets))[0]


# ---------------------------------------------------------------- no model: the task folder and model_args

def test_task_yaml_points_at_local_data_and_our_metric(tmp_path, assay_cache):
    suite = load_suite("summarize", SMALL)
    examples = examples_of(suite, Project(tmp_path))
    task = write_task(suite, examples, INSTRUCTION, tmp_path / "task")
    text = (tmp_path / "task" / f"{task}.yaml").read_text(encoding="utf-8")
    assert "process_results: !function evals.harness.process_results" in text
    config = yaml.safe_load(text.replace("!function", ""))
    assert config["dataset_path"] == "json" and config["test_split"] == "test"
    data = Path(config["dataset_kwargs"]["data_files"]["test"])
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [ex.id for ex in examples] and rows[0]["reference"] == examples[0].reference
    assert rows[0]["prompt"].startswith(INSTRUCTION + "\n\n" + examples[0].title)
    assert [m["metric"] for m in config["metric_list"]] == harness_metrics(suite) == ["rougeL", "rouge1", "words"]
    assert "rouge" not in {m["metric"] for m in config["metric_list"]}  # lm-eval's own rouge needs the Hub
    assert config["generation_kwargs"]["max_gen_toks"] == 12 and config["generation_kwargs"]["do_sample"] is False


def test_harness_refuses_what_it_cannot_run(tmp_path, project):
    with pytest.raises(ConfigError, match="harness: lm-eval runs the free-text tasks"):
        load_suite("classify", ["harness=true"])
    with pytest.raises(ModelUnavailableError, match="lm-eval runs local models only"):
        model_args("openai:gpt-4o-mini")
    folder = project.models / "notes-student" / "v1.0.0"
    args = model_args(folder)
    assert args["peft"] == str(folder / "adapter") and Path(args["pretrained"]).name == BASE
    assert model_args(BASE) == {"pretrained": args["pretrained"]}


# ---------------------------------------------------------------- real runs

def test_harness_scores_join_the_eval_and_equal_our_rouge_on_its_generations(project, caplog):
    from transformers import AutoTokenizer

    from assay.evals.predict import student_messages
    from assay.evals.run import evaluate
    from assay.training.data import render_prompt

    suite = load_suite("summarize", SMALL + [f"prompt.instruction={INSTRUCTION}"])
    run = evaluate(suite, "notes-student@v1.0.0", against=["base", "rule:lead"], project=project)
    results, examples = run.results, examples_of(suite, project)
    folder = project.reports / results["run_id"] / "harness"
    tok = AutoTokenizer.from_pretrained(project.models / "notes-student" / "v1.0.0" / "adapter")
    generations = {}
    for key in ("candidate", "base"):
        samples = [json.loads(line) for line in (folder / key / "samples.jsonl").read_text().splitlines()]
        assert [s["doc"]["id"] for s in samples] == [ex.id for ex in examples]
        generations[key] = [s["filtered_resps"][0] for s in samples]
        ours = [rouge(g.strip(), ex.reference) for g, ex in zip(generations[key], examples)]
        for sample, mine in zip(samples, ours):  # lm-eval's per-example value is our ROUGE of its own output
            assert (sample["rougeL"] == pytest.approx(mine["rougeL"])
                    and sample["rouge1"] == pytest.approx(mine["rouge1"]))
        mean = sum(m["rougeL"] for m in ours) / len(ours)
        assert results["scores"][key][PREFIX + "rougeL"] == pytest.approx(mean)
        # lm-eval asked exactly what `assay eval` asks: the student's message in the chat template
        assert [s["arguments"][0][0] for s in samples] == \
            [render_prompt(tok, student_messages(suite, ex, INSTRUCTION)) for ex in examples]
        lm_config = next(iter(json.loads((folder / key / "results.json").read_text())["configs"].values()))
        assert [m["metric"] for m in lm_config["metric_list"]] == ["rougeL", "rouge1", "words"]
    model_arg_text = json.dumps(json.loads((folder / "candidate" / "results.json").read_text())["config"])
    assert "peft" in model_arg_text and "adapter" in model_arg_text  # the adapter went in through peft=
    assert generations["candidate"] != generations["base"]  # ... and changed what the model says
    assert all(len(g.split()) <= 12 for g in generations["base"])  # max_gen_toks held (12 tokens, fewer words)

    names = {m["name"] for m in results["metrics"]}
    assert {PREFIX + "rougeL", PREFIX + "rouge1", PREFIX + "words"} <= names
    cmp = next(c for c in results["comparisons"] if c["metric"] == PREFIX + "rougeL" and c["baseline"] == "base")
    assert cmp["n"] == 4 and cmp["ci_low"] <= cmp["delta"] <= cmp["ci_high"]
    assert cmp["candidate_value"] == pytest.approx(results["scores"]["candidate"][PREFIX + "rougeL"])
    assert not any(c["metric"] == PREFIX + "words" for c in results["comparisons"])  # no better direction
    assert PREFIX + "rougeL" not in results["scores"]["rule:lead"]
    assert "local models only" in results["missing"]["rule:lead"][PREFIX + "rougeL"]
    stored = json.loads((project.reports / results["run_id"] / "results.json").read_text())
    assert stored["scores"]["candidate"][PREFIX + "rougeL"] == results["scores"]["candidate"][PREFIX + "rougeL"]

    # the plain entry point (temporary task folder, the task's own instruction) gives lm-eval's same numbers
    direct = run_harness(suite, BASE, examples)
    assert direct == {m: results["scores"]["base"][PREFIX + m] for m in ("rougeL", "rouge1", "words")}

    caplog.set_level("INFO", logger="lm_eval")
    again = evaluate(suite, "notes-student@v1.0.0", against=["base", "rule:lead"], project=project).results
    hits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Cached requests")]
    assert hits == ["Cached requests: 4, Requests remaining: 0"] * 2  # lm-eval generated nothing the second time
    assert again["scores"]["candidate"] == results["scores"]["candidate"]
