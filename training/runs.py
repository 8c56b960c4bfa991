"""A run's life outside the trainer: its work folder, checkpoints for --resume, and the finished version.

Work lives in models/<name>/.runs/<key>/ where the key hashes the resolved config and the dataset's
content, so `--resume` finds the run that the same command started, and a changed config never
resumes from a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assay import registry
from assay.project import Project
from assay.store import Version
from assay.training.common import (
    cut_log,
    from_main_process,
    is_main_process,
    library_versions,
    read_log,
    wait_for_everyone,
)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
SENTENCES = ("verdict", "gate")  # metrics that are sentences: said in words on the card, not in its table


@dataclass
class RunDir:
    path: Path

    @property
    def log(self) -> Path:
        return self.path / "training_log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def last_checkpoint(self) -> Path | None:
        if not self.checkpoints.is_dir():
            return None
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir()
                 if (m := CHECKPOINT_RE.match(p.name)) and _complete(p)]
        return max(found)[1] if found else None


def _complete(checkpoint: Path) -> bool:
    # trainer_state.json is the last file a checkpoint gets; a kill while writing it leaves it unreadable
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def run_dir(project: Project, cfg, dataset: Version) -> RunDir:
    """The run folder of this config and dataset content (nothing is created)."""
    resolved = cfg.model_dump(mode="json")
    key = hashlib.sha256(json.dumps([resolved, dataset.manifest["content_hash"]], sort_keys=True).encode()
                         ).hexdigest()[:12]
    return RunDir(project.models / cfg.output.name / ".runs" / key)


def open_run(run: RunDir, cfg, *, resume: bool) -> tuple[Path | None, str]:
    """The checkpoint to resume from (or None) and a line saying what happened; a fresh run starts empty.

    With several processes every one reads the folder before the main process changes it, and none
    goes on before it has.
    """
    checkpoint = run.last_checkpoint()
    wait_for_everyone()
    if resume and checkpoint is not None:
        step = int(CHECKPOINT_RE.match(checkpoint.name).group(1))
        if is_main_process():
            cut_log(run.log, step)  # steps logged after the checkpoint will be trained (and logged) again
        wait_for_everyone()
        return checkpoint, f"resuming from {checkpoint.name}"
    note = ("no checkpoint of this config and dataset to resume from: starting at step 0" if resume
            else f"an interrupted run reached {checkpoint.name}; pass --resume to continue it. Starting over"
            if checkpoint else "")
    if is_main_process():
        if run.path.exists():
            shutil.rmtree(run.path)
        run.checkpoints.mkdir(parents=True)
        (run.path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
                                              encoding="utf-8")
    wait_for_everyone()
    return None, note


def teachers_of(df) -> list[str]:
    """Distinct non-null values of the data's `teacher` column (the lineage a card must name)."""
    if "teacher" not in df.columns:
        return []
    return sorted(t for t in df["teacher"].unique().to_list() if t)


def finish(project: Project, run: RunDir, cfg, *, save, recipe: str, base_model: str, architecture: str,
           dataset: Version, teachers: list[str], metrics: dict[str, Any], data_stats: dict[str, Any],
           wall_time_s: float, device: str, extra_card: list[str] | None = None) -> registry.ModelVersion:
    """Assemble the version folder (weights via `save(folder)`, log, config, card) and register it."""
    cost = round(wall_time_s / 3600 * cfg.output.hourly_rate_usd, 4)
    resolved = cfg.model_dump(mode="json")

    def fill(folder: Path, version: str, parent: str | None) -> None:
        save(folder)
        if run.log.exists():
            shutil.copy2(run.log, folder / "training_log.jsonl")
        (folder / "config.yaml").write_text(
            f"# resolved config of {cfg.output.name}@{version}; rerun: assay train {folder / 'config.yaml'}\n"
            + yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
        info = {
            "name": cfg.output.name, "version": version, "parent": parent, "recipe": recipe,
            "base_model": base_model, "architecture": architecture,
            "dataset": dataset.ref, "dataset_hash": dataset.manifest["content_hash"], "teachers": teachers,
            "metrics": metrics, "data": data_stats, "wall_time_s": round(wall_time_s, 1), "device": device,
            "hourly_rate_usd": cfg.output.hourly_rate_usd, "cost_usd": cost, "libraries": library_versions(),
            "seed": cfg.train.seed, "review": review_coverage(dataset.manifest),
        }
        (folder / "run.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        (folder / "README.md").write_text(_card(info, extra_card or []), encoding="utf-8")

    wait_for_everyone()  # every process has finished training before the main one writes
    ref = None
    if is_main_process():
        version = registry.register(
            project, cfg.output.name, fill, recipe=recipe, base_model=base_model, architecture=architecture,
            dataset=dataset.ref, dataset_hash=dataset.manifest["content_hash"], teachers=teachers,
            metrics=metrics, config=resolved, wall_time_s=wall_time_s, device=device, cost_usd=cost)
        ref = version.ref
        shutil.rmtree(run.path, ignore_errors=True)  # checkpoints are only for --resume
        try:
            run.path.parent.rmdir()  # .runs/, when no other run of this name is in flight
        except OSError:
            pass
    return registry.get(project, from_main_process(ref))


def _card(info: dict[str, Any], extra: list[str]) -> str:
    metrics = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in info["metrics"].items()
                         if k not in SENTENCES) or "| (none) | |"
    verdict = info["metrics"].get("verdict")
    against = ([f"**Against the base model: {verdict}** (greedy answers, ROUGE-L from evals.metrics, paired "
                "bootstrap; `assay eval` compares on a held-out test suite)", ""] if verdict else
               ["Against the base model: not measured (no validation rows, or eval.generate_examples: 0)", ""])
    gate = info["metrics"].get("gate")
    if gate:  # training.gatecheck: the kept checkpoint against the ship rules, before any `assay eval`
        against += [f"**{gate[0].upper()}{gate[1:]}** (the checkpoint kept is the one passing the most of these "
                    "rules, then the best ROUGE-L; `assay eval --gate` decides on the held-out suite)", ""]
    data = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in info["data"].items())
    teachers = ", ".join(info["teachers"]) or "none recorded (human or export labels)"
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    lines = [
        f"# {info['name']} {info['version']}",
        "",
        f"- recipe: {info['recipe']}",
        f"- base model: {info['base_model']} ({info['architecture']})",
        f"- dataset: {info['dataset']} (content {info['dataset_hash']})",
        f"- teachers in the training data: {teachers}",
        f"- human review: {review_line(info.get('review'))}",
        f"- parent version: {info['parent'] or 'none'}",
        f"- trained on: {info['device']}, wall time {info['wall_time_s']:.0f} s, "
        f"estimated cost ${info['cost_usd']:.4f} at ${info['hourly_rate_usd']}/h",
        f"- seed: {info['seed']}; libraries: {libs}",
        *extra,
        "",
        "## Metrics",
        "",
        *against,
        "| metric | value |",
        "| --- | --- |",
        metrics,
        "",
        "## Training data",
        "",
        "| count | value |",
        "| --- | --- |",
        data,
        "",
        "Files: `config.yaml` (resolved config), `training_log.jsonl` (every logged step), `run.json`.",
        "",
    ]
    return "\n".join(lines)


def review_coverage(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What people reviewed in the dataset a model is trained on (None: a version no review pulled into)."""
    review, coverage = manifest.get("review"), manifest.get("review_coverage")
    if not review or not coverage:
        return None
    return {"task": review.get("task"), "rows": coverage["rows"], "reviewed": coverage["reviewed"],
            "decisions": review.get("decisions", {}), "annotators": sorted(review.get("annotators", {})),
            "agreement": {q: a.get("value") for q, a in review.get("agreement", {}).items()},
            "argilla_dataset": review.get("argilla_dataset")}


def review_line(review: dict[str, Any] | None) -> str:
    if not review:
        return "none (the outputs are the teachers' or the export's, as selected)"
    decisions = ", ".join(f"{k} {v}" for k, v in review["decisions"].items()) or "no decisions"
    alpha = ", ".join(f"{q} {'n/a' if v is None else f'{v:.2f}'}" for q, v in review["agreement"].items())
    return (f"{review['reviewed']} of {review['rows']} {review['task']} rows answered in Argilla "
            f"({decisions}) by {len(review['annotators'])} annotator(s) in {review['argilla_dataset']!r}; "
            f"agreement (Krippendorff's alpha): {alpha or 'n/a'}")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def loss_curve(run: RunDir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_log(run.log) if "loss" in r]
