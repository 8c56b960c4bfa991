"""lm-evaluation-harness over our own examples: its scores join the same comparison as `assay eval`'s.

    suite examples ──▶ <run>/harness/<model>/examples.jsonl + <task>.yaml (dataset_path: json, local data_files)
        ──▶ lm_eval.simple_evaluate(model="hf", pretrained=<base folder>, peft=<adapter>, apply_chat_template)
        ──▶ lm-eval's own generations, scored per example by evals.metrics (process_results below)

Offline: the data are local JSONL files and the metrics are ours (lm-eval's built-in `rouge` goes through
`evaluate.load`, which needs the Hub). The prompt is the student's (`student_messages` in the model's chat
template), so lm-eval asks what `assay eval` asks. To re-run a task by hand:
`lm_eval --model hf --model_args pretrained=...,peft=... --include_path <folder> --tasks <task> --apply_chat_template`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from assay.errors import ConfigError, ModelUnavailableError
from assay.evals.metrics import METRICS, Item, get_metric
from assay.evals.suite import Example, SuiteConfig

PREFIX = "harness:"  # how lm-eval's scores are named in results.json beside ours
TASKS = ("summarize", "qa")  # free-text tasks: the reply is the value the metrics compare


@dataclass
class HarnessRun:
    scores: dict[str, float | None]  # our metric name -> lm-eval's aggregate (the mean over examples)
    generations: list[str]  # lm-eval's own outputs, in example order
    per_example: list[dict[str, float]]  # what process_results gave each example, in example order
    prompts: list[str]  # the prompts lm-eval sent, chat template applied
    folder: Path  # task YAML, data, lm-eval's results and samples


def harness_metrics(suite: SuiteConfig) -> list[str]:
    """The suite's metrics lm-eval can compute: per-example, from the reply and the reference alone."""
    return [m for m in suite.metrics if not METRICS[m].needs and METRICS[m].corpus is None]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval's per-example hook (`process_results: !function evals.harness.process_results`)."""
    item = Item(results[0].strip() or None, doc["reference"])
    found = {}
    for name in doc["metrics"]:
        value = get_metric(name).per_example(item)
        found[name] = float("nan") if value is None else value
    return found


def model_args(model) -> dict[str, str]:
    """lm-eval's `hf` model_args for a version folder (base + `peft=` adapter, or a full fine-tune) or a
    base model (catalogue name or folder)."""
    from assay.models import CATALOGUE, model_path

    if isinstance(model, (str, Path)) and not Path(model).is_dir():
        if str(model) not in CATALOGUE:
            raise ModelUnavailableError(f"lm-eval runs local models only; {model!r} is neither a catalogue name "
                                        f"({', '.join(CATALOGUE)}) nor a folder")
        return {"pretrained": str(model_path(str(model)))}
    folder = Path(model)
    adapter, full = folder / "adapter", folder / "model"
    if (adapter / "adapter_config.json").is_file():
        from assay.training.export.recipe import base_model_of

        base = base_model_of(folder)
        args = {"pretrained": str(model_path(base)) if base in CATALOGUE else base, "peft": str(adapter)}
        if (adapter / "tokenizer_config.json").is_file():  # the tokenizer training saved with the adapter
            args["tokenizer"] = str(adapter)
        return args
    if (full / "config.json").is_file():
        return {"pretrained": str(full)}
    if (folder / "config.json").is_file():  # a plain Hugging Face folder
        return {"pretrained": str(folder)}
    raise ModelUnavailableError(f"{folder} holds no adapter/, model/ or config.json: not a model lm-eval can load")


def write_task(suite: SuiteConfig, examples: list[Example], instruction: str, folder: Path) -> str:
    """The task YAML and its JSONL data in `folder`; returns the task name."""
    from assay.evals.predict import student_messages

    if suite.task not in TASKS:
        raise ConfigError(f"suite {suite.name}", [f"harness: lm-eval runs free-text tasks ({', '.join(TASKS)}); "
                                                  f"{suite.task} needs the task's parser, use the suite's own metrics"])
    names = harness_metrics(suite)
    if not names:
        raise ConfigError(f"suite {suite.name}", ["harness: none of the suite's metrics can be computed from a reply "
                                                  "and a reference alone (e.g. rougeL, token_f1)"])
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "examples.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for ex in examples:
            messages = student_messages(suite, ex, instruction)
            assert len(messages) == 1 and messages[0]["role"] == "user", "lm-eval sends one user turn"
            out.write(json.dumps({"id": ex.id, "prompt": messages[0]["content"], "reference": ex.reference_text,
                                  "metrics": names}, ensure_ascii=False) + "\n")
    task = f"assay_{suite.name}_v{suite.version}".replace("-", "_").replace(".", "_")
    gen = suite.generation
    config = {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / ".datasets")},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{reference}}",
        # until: the tokenizer's end-of-turn token, which lm-eval adds itself; greedy unless the suite samples
        "generation_kwargs": {"until": [], "max_gen_toks": gen.max_new_tokens, "do_sample": gen.temperature > 0,
                              "temperature": gen.temperature},
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": METRICS[m].higher_is_better}
                        for m in names],
        "metadata": {"version": suite.version, "suite_key": suite.key},
    }
    text = (f"# written by assay (evals/harness.py) for suite {suite.key}\n" + yaml.safe_dump(config, sort_keys=False)
            + "process_results: !function evals.harness.process_results\n")
    (folder / f"{task}.yaml").write_text(text, encoding="utf-8")
    return task


def run_tasks(suite: SuiteConfig, model, examples: list[Example], *, instruction: str, folder: Path,
              cache_key: str | None = None, cache_dir: Path | None = None) -> HarnessRun:
    """One lm-eval run of the suite's task on `model`; `cache_key` + `cache_dir` reuse its earlier generations."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    task = write_task(suite, examples, instruction, folder)
    gen = suite.generation
    args = {**model_args(model), "dtype": "float32", "device": "cpu", "batch_size": gen.batch_size}
    use_cache = None
    if cache_key and cache_dir:  # lm-eval's own response cache, one file per model identity
        cache_dir.mkdir(parents=True, exist_ok=True)
        use_cache = str(cache_dir / hashlib.sha256(cache_key.encode()).hexdigest()[:16])
    out = lm_eval.simple_evaluate(
        model="hf", model_args=args, tasks=[task], task_manager=TaskManager(include_path=str(folder),
                                                                            include_defaults=False),
        apply_chat_template=True, log_samples=True, bootstrap_iters=0, use_cache=use_cache,
        random_seed=gen.seed, numpy_random_seed=gen.seed, torch_random_seed=gen.seed, fewshot_random_seed=gen.seed)
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    names = harness_metrics(suite)
    found = out["results"][task]
    scores = {m: _number(found.get(f"{m},none")) for m in names}
    generations = [s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
                   for s in samples]
    per_example = [{m: s[m] for m in names} for s in samples]
    prompts = [s["arguments"][0][0] for s in samples]  # (context, generation kwargs) of its one request
    (folder / "results.json").write_text(json.dumps({k: v for k, v in out.items() if k != "samples"},
                                                    default=str, indent=1), encoding="utf-8")
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, default=str, ensure_ascii=False) + "\n")
    assert [s["doc"]["id"] for s in samples] == [ex.id for ex in examples], "lm-eval returned other examples"
    return HarnessRun(scores, generations, per_example, prompts, folder)


def run_harness(suite: SuiteConfig, model, examples: list[Example], *, instruction: str | None = None,
                folder: Path | None = None) -> dict[str, float | None]:
    """lm-eval's scores of `model` (a version folder or a base model) on the suite's examples; the prompt's
    instruction defaults to the task's student instruction, the task folder to a temporary one."""
    if instruction is None:
        from assay.curation.synth.tasks import Prompt, get_task
        from assay.evals.predict import QA_INSTRUCTION

        instruction = QA_INSTRUCTION if suite.task == "qa" else get_task(suite.task).student_instruction(Prompt())
    if folder is not None:
        return run_tasks(suite, model, examples, instruction=instruction, folder=folder).scores
    import tempfile

    with tempfile.TemporaryDirectory(prefix="assay-harness-") as tmp:
        return run_tasks(suite, model, examples, instruction=instruction, folder=Path(tmp)).scores


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)  # NaN: no example could be scored


# ---------------------------------------------------------------- joining `assay eval`'s comparison

def add_to_results(results: dict, suite: SuiteConfig, contestants: list, examples: list[Example], instruction: str,
                   *, project, progress: Callable[[str, int | None], Callable[[int], None]]) -> None:
    """lm-eval's scores as `harness:<metric>` rows of results.json: scores, missing, and the paired bootstrap
    against each baseline lm-eval also ran, over lm-eval's own generations."""
    from assay.evals import compare

    folder = project.reports / results["run_id"] / "harness"
    items: dict[str, list[Item]] = {}
    for c in contestants:
        if c.kind in ("teacher", "rule"):
            continue
        advance = progress(f"lm-eval {c.label}", None)
        run = run_tasks(suite, c.folder if c.folder is not None else c.base, examples, instruction=instruction,
                        folder=folder / _safe(c.key), cache_key=f"{c.cache_key}|{suite.key}",
                        cache_dir=project.state / "lm_eval_cache")
        advance(len(examples))
        results["scores"].setdefault(c.key, {}).update({PREFIX + m: v for m, v in run.scores.items()})
        items[c.key] = [Item(g.strip() or None, ex.reference) for g, ex in zip(run.generations, examples)]
    names = harness_metrics(suite)
    for c in contestants:
        if c.key not in items:
            results["missing"].setdefault(c.key, {}).update(
                {PREFIX + m: "lm-eval runs local models only, not a teacher or rule" for m in names})
    for m in names:
        metric = get_metric(m)
        results["metrics"].append({**metric.info(), "name": PREFIX + m, "label": f"{metric.label} (lm-eval)",
                                   "description": f"{metric.description}; on lm-eval's own generations"})
        if metric.higher_is_better is None or "candidate" not in items:
            continue
        for key in items:
            if key != "candidate":
                delta = compare.paired_bootstrap(metric, items["candidate"], items[key], baseline_key=key).as_dict()
                results["comparisons"].append({**delta, "metric": PREFIX + m})


def _safe(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
