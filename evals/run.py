"""`assay eval`: a suite x a candidate and its baselines -> results.json (+ the HTML report) -> a verdict.

    suite examples ──▶ predictions per contestant (cached) ──▶ items ──▶ metrics per contestant
        ──▶ paired bootstrap vs each baseline ──▶ regressions ──▶ gate ──▶ lineage, training, trend
        ──▶ reports/<model>-<version>-<suite>/results.json + index.html, the verdict on the registry and card
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from assay.errors import AssayError, ConfigError, InputError, NotFoundError
from assay.evals import compare, lineage
from assay.evals.gate import GateConfig, RunShape, evaluate_gate, preflight
from assay.evals.metrics import Item, get_metric
from assay.evals.ondevice import export_folders
from assay.evals.predict import QA_INSTRUCTION, Contestant, Prediction, PredictionCache, predict_model, predict_teacher
from assay.evals.results import MAX_RUN_ID, run_id_problem
from assay.evals.results import read as read_results
from assay.evals.suite import Example, SuiteConfig, load_examples, training_instruction
from assay.project import Project
from assay.redact import mask_urls, mask_urls_in
from assay.store import DatasetStore

Track = Callable[[str, int | None], Callable[[int], None]]


@dataclass
class EvalRun:
    results: dict
    folder: Path

    @property
    def verdict(self) -> str:
        return self.results["verdict"]["decision"]


def evaluate(suite: SuiteConfig, model_ref: str, *, against: list[str] | None = None, gate: GateConfig | None = None,
             project: Project | None = None, track: Track | None = None) -> EvalRun:
    from assay import registry

    project = project or Project.current()
    track = track or (lambda _d, _t: (lambda _n=1: None))
    store = DatasetStore(project.datasets)
    _refuse_twins(against if against is not None else suite.against)
    candidate = registry.get(project, model_ref)
    contestants, warnings = _contestants(project, candidate, against if against is not None else suite.against)
    exports = tuple(f.name for f in export_folders(Path(candidate.path))) if suite.ondevice.measure else None
    preflight(gate, RunShape(tuple(suite.metrics) + (tuple(f"harness:{m}" for m in suite.metrics) if suite.harness
                                                     else ()),
                             tuple(c.key for c in contestants if c.kind != "candidate"), candidate.parent is not None,
                             exports))

    dataset_ref = _dataset_for(suite, candidate)
    examples, where = load_examples(suite, store=store, dataset_ref=dataset_ref)
    train_version = _version_or_none(store, candidate.dataset)
    instruction = (QA_INSTRUCTION if suite.task == "qa" else
                   suite.prompt.instruction if suite.prompt.instruction != "from_training" else
                   training_instruction(suite.task, train_version) or _task_instruction(suite, train_version))
    labels = _labels(suite, train_version)
    privacy = recorded_synth(train_version)  # how synthesis sent these notes out: the eval sends them the same way
    warnings += lineage.contamination(examples, train_version)

    cache = PredictionCache(project.db())
    predictions: dict[str, list[Prediction]] = {}
    spend: dict[str, dict] = {}
    started = time.time()
    for c in contestants:
        advance = track(f"predict {c.label}", len(examples))
        if c.kind in ("teacher", "rule"):
            predictions[c.key], spend[c.key] = predict_teacher(
                c, suite, examples, instruction, project=project, privacy=privacy, labels=labels,
                budget_usd=suite.judge.budget_usd, progress=advance)
        else:
            predictions[c.key] = predict_model(c, suite, examples, instruction, cache=cache, labels=labels,
                                               progress=advance)

    # an example a contestant gave no answer for (its teacher unreachable) is missing for it, never scored as wrong
    answered = {c.key: [not p.failed for p in predictions[c.key]] for c in contestants}
    unanswered = {c.key: _unanswered(predictions[c.key]) for c in contestants}
    warnings += [f"{c.label} gave no answer for {unanswered[c.key]['count']} of {len(examples)} examples "
                 f"({', '.join(f'{n} {why}' for why, n in unanswered[c.key]['reasons'].items())}): "
                 "its figures are over "
                 "the examples it answered, and its comparisons over the examples both answered."
                 for c in contestants if unanswered[c.key]["count"]]
    items = _items(suite, examples, contestants, predictions, track)
    metric_names = suite.metrics
    scores, missing = {}, {}
    for c in contestants:
        scores[c.key] = {}
        kept = [item for item, ok in zip(items[c.key], answered[c.key]) if ok]
        for name in metric_names:
            value = get_metric(name).score(kept) if kept else None
            scores[c.key][name] = value
            if value is None:
                missing.setdefault(c.key, {})[name] = (_why_missing(name, c, reference_teacher(contestants)) if kept
                                                       else "it answered no example")

    baselines = [c for c in contestants if c.kind != "candidate"]
    both = {b.key: [x and y for x, y in zip(answered["candidate"], answered[b.key])] for b in baselines}
    comparisons = [compare.paired_bootstrap(get_metric(m), items["candidate"], items[b.key], baseline_key=b.key,
                                            answered=both[b.key]).as_dict()
                   for b in baselines for m in metric_names if get_metric(m).higher_is_better is not None]
    head = get_metric(suite.headline)
    ids = [ex.id for ex in examples]
    regressions = {b.key: compare.regressions(head, items["candidate"], items[b.key], ids, both[b.key])
                   for b in baselines}

    measured = None
    if suite.ondevice.measure:  # latency, memory and size of each export of the candidate (evals/ondevice.py)
        from assay.evals.ondevice import measure_candidate
        measured = measure_candidate(candidate, suite, examples, instruction, progress=track)
    judged = None
    if suite.judge.teacher:  # pairwise preference by a judge teacher, cached and budgeted (evals/judge.py)
        from assay.evals.judge import judge_run
        judged, spend[f"judge:{suite.judge.teacher}"] = judge_run(suite, examples, contestants, predictions,
                                                                  instruction, project=project, privacy=privacy,
                                                                  progress=track)

    results = {
        "schema": 1,
        "run_id": run_id(candidate.name, candidate.version, suite.name,
                         identity(suite, contestants, gate)),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "version": suite.version, "task": suite.task, "headline": suite.headline,
                  "key": suite.key, "data": where, "instruction": instruction, "config": suite.model_dump(mode="json")},
        "candidate": "candidate",
        "previous_version": candidate.parent,
        "models": [{"key": c.key, "label": c.label, "kind": c.kind} for c in contestants],
        "metrics": [get_metric(m).info() for m in metric_names],
        "scores": scores,
        "missing": missing,
        "unanswered": unanswered,
        "comparisons": comparisons,
        "details": _details(suite, contestants, items),
        "examples": _examples_json(suite, examples, contestants, predictions, items, metric_names),
        "regressions": regressions,
        "training": lineage.training(candidate),
        "ondevice": lineage.ondevice(candidate, measured),
        "ondevice_measured": measured is not None,
        "lineage": lineage.lineage(store, candidate, spend),
        "warnings": warnings,
        "human": None,
        "judge": judged,
        "gate": None if gate is None else gate.model_dump(mode="json"),
        "eval_seconds": round(time.time() - started, 1),
        "predictions": {c.key: ({"generated": cache.generated.get(c.cache_key, 0),
                                 "reused": len(examples) - cache.generated.get(c.cache_key, 0)}
                                if c.key not in spend
                                else {"calls": spend[c.key]["calls"], "reused": spend[c.key]["cached"]})
                        for c in contestants},
    }
    if suite.harness:  # lm-evaluation-harness on the same examples: `harness:<metric>` rows (evals/harness.py)
        from assay.evals.harness import add_to_results
        add_to_results(results, suite, contestants, examples, instruction, project=project, progress=track)
    results["trend"] = lineage.trend(project, candidate, suite, scores["candidate"].get(suite.headline),
                                     scores.get("previous", {}).get(suite.headline))
    results["verdict"] = evaluate_gate(gate, results)
    folder = save(project, results)
    lineage.record_verdict(project, candidate, results, folder)
    return EvalRun(results, folder)


def identity(suite: SuiteConfig, contestants: list[Contestant], gate: GateConfig | None) -> str:
    """What makes a run this run: the resolved suite (metrics, headline, data, judge...), the exact weights and
    teachers compared, and the gate. Two runs share a folder only when all of these are the same."""
    payload = json.dumps([suite.model_dump(mode="json"), [(c.key, c.cache_key) for c in contestants],
                          None if gate is None else gate.model_dump(mode="json")], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:8]


def run_id(name: str, version: str, suite: str, digest: str) -> str:
    return f"{name}-{version}-{suite}-{digest}"


def _unanswered(predictions: list[Prediction]) -> dict:
    reasons = Counter((p.reason or "no answer").removeprefix("teacher_error:") for p in predictions if p.failed)
    return {"count": sum(reasons.values()), "of": len(predictions), "reasons": dict(reasons.most_common())}


def save(project: Project, results: dict) -> Path:
    """results.json into reports/<run>/, written to a temp file and renamed; teacher specs (contestant keys,
    the judge, the suite config) written with their URLs' credentials masked. The page (index.html) is the
    report's: `assay eval` and the pipeline's report stage render it, so a template edit reruns only that."""
    folder = run_folder(project, results["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".results.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(mask_urls_in(results), ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, folder / "results.json")
    return folder


def run_folder(project: Project, run: str) -> Path:
    """reports/<run>: a run id names one folder inside reports/, never a path that leads out of it."""
    problem = run_id_problem(run)
    if problem:
        raise InputError(f"run id refused: {problem}", field="run_id", value=run)
    return project.reports / run


def load_results(project: Project, run: str) -> tuple[dict, Path]:
    """A stored run by folder path, by id (reports/<id>), or by the id without its digest when one run matches;
    its results.json checked against the schema."""
    for folder in (Path(run), None if run_id_problem(run) else project.reports / run):
        if folder is not None and _is_file(folder / "results.json"):
            return read_results(folder / "results.json"), folder
    known = sorted(p.parent.name for p in project.reports.glob("*/results.json")) if project.reports.is_dir() else []
    matches = [k for k in known if re.fullmatch(re.escape(run) + r"-[0-9a-f]{8}", k)]
    if len(matches) > 1:
        raise AssayError(f"{len(matches)} eval runs of {run} (other configs, baselines or gates); name one: "
                         + ", ".join(matches))
    if not matches:
        raise NotFoundError("eval run", run, known)
    return read_results(project.reports / matches[0] / "results.json"), project.reports / matches[0]


def compare_folder(project: Project, a: str, b: str) -> Path:
    """reports/compare-A-vs-B; two long run ids keep their start and a digest of the whole, since a folder
    name stops at 255 bytes."""
    name = f"compare-{a}-vs-{b}"
    if len(name.encode("utf-8")) > MAX_RUN_ID:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
        name = name.encode("utf-8")[: MAX_RUN_ID - 13].decode("utf-8", "ignore") + "-" + digest
    return run_folder(project, name)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system names no file
        return False


# ---------------------------------------------------------------- who is compared

def _contestants(project: Project, candidate, against: list[str]) -> tuple[list[Contestant], list[str]]:
    from assay import registry

    found = [Contestant("candidate", candidate.ref, "candidate", f"{candidate.ref}@{candidate.created_at}",
                        folder=candidate.path)]
    warnings = []
    for name in dict.fromkeys(against):
        if name == "previous":
            if candidate.parent is None:
                warnings.append(f"{candidate.ref} has no previous version; nothing to compare it with as 'previous'.")
                continue
            parent = registry.get(project, candidate.parent)
            found.append(Contestant("previous", parent.ref, "previous", f"{parent.ref}@{parent.created_at}",
                                    folder=parent.path))
        elif name == "base":
            found.append(Contestant("base", f"{candidate.base_model} (base, zero-shot)", "base",
                                    f"base:{candidate.base_model}", base=candidate.base_model))
        else:
            spec = name.removeprefix("teacher:")
            provider = spec.split(":", 1)[0]
            from assay.curation.synth.registry import PROVIDERS as TEACHERS

            if provider not in TEACHERS:
                raise NotFoundError("baseline", name, ["previous", "base", *[f"{p}:<model>" for p in TEACHERS]])
            kind = "rule" if provider == "rule" else "teacher"
            found.append(Contestant(spec if kind == "rule" else f"teacher:{spec}", spec, kind, f"teacher:{spec}",
                                    spec=spec))
    return found, warnings


def _refuse_twins(against: list[str]) -> None:
    """Results are keyed by the masked spec: two baselines that differ only in credentials would overwrite."""
    shown = [mask_urls(a) for a in dict.fromkeys(against)]
    twins = sorted({a for a in shown if shown.count(a) > 1})
    if twins:
        raise ConfigError("--against", [f"{t}: two baselines differ only in their credentials" for t in twins])


def _dataset_for(suite: SuiteConfig, candidate) -> str | None:
    """Split suites read the candidate's own dataset version when the suite names that dataset unpinned,
    so 'test' is the test split the candidate's training never saw."""
    wanted = suite.data.dataset
    if wanted and "@" not in wanted and candidate.dataset.split("@")[0] == wanted:
        return candidate.dataset
    return wanted


def _version_or_none(store: DatasetStore, ref: str):
    try:
        return store.get(ref)
    except AssayError:
        return None


def _task_instruction(suite: SuiteConfig, version) -> str:
    from assay.curation.synth.tasks import Prompt, get_task

    return get_task(suite.task).student_instruction(Prompt(labels=_labels(suite, version)))


def _labels(suite: SuiteConfig, version):
    """The classify labels the candidate was taught: the labels config of the synthesis that labeled its
    dataset (followed through review and later versions), resolved by LabelsConfig.resolve as synthesis did."""
    if suite.task != "classify":
        return None
    import polars as pl

    return recorded_synth(version).labels.resolve(version.data() if version is not None else pl.DataFrame())


def recorded_synth(version, depth: int = 32):
    """The labels and privacy settings (allow_cloud_pii, phone_regions) of the synthesis nearest in a version's
    lineage (followed through review and later versions), as a SynthConfig; the defaults when none labeled it."""
    from assay.curation.synth.config import SynthConfig

    store = DatasetStore(version.path.parent.parent) if version is not None else None
    while version is not None and depth > 0:
        manifest = version.manifest
        config = manifest.get("config") or {}
        if manifest.get("step") == "synth":
            return SynthConfig.model_validate({k: config[k] for k in ("labels", "allow_cloud_pii", "phone_regions")
                                               if k in config})
        parents = manifest.get("parents") or []
        version = _version_or_none(store, parents[0]) if parents else None
        depth -= 1
    return SynthConfig()


def _why_missing(metric: str, c: Contestant, teacher: str | None) -> str:
    needs = get_metric(metric).needs
    if "logprobs" in needs and c.kind in ("teacher", "rule"):
        return ("a rule gives no token probabilities" if c.kind == "rule"
                else "teacher replies come without token probabilities")
    if "teacher" in needs:
        return ("this is the teacher the others are compared with" if c.key == teacher
                else "no teacher in this comparison (add --against teacher:SPEC)")
    return "no example could be scored"


def reference_teacher(contestants: list[Contestant]) -> str | None:
    """The output `embed_sim_teacher` compares with: the first model teacher, else the first rule."""
    return (next((c.key for c in contestants if c.kind == "teacher"), None)
            or next((c.key for c in contestants if c.kind == "rule"), None))


# ---------------------------------------------------------------- items, embeddings

def _items(suite: SuiteConfig, examples: list[Example], contestants: list[Contestant],
           predictions: dict[str, list[Prediction]], track: Track) -> dict[str, list[Item]]:
    teacher = reference_teacher(contestants)
    items = {}
    for c in contestants:
        items[c.key] = [Item(p.text, ex.reference, p.value,
                             {"label_field": suite.prompt.label_field, "nll": p.nll, "tokens": p.tokens})
                        for ex, p in zip(examples, predictions[c.key])]
    if any("embeddings" in get_metric(m).needs for m in suite.metrics):
        texts = {ex.reference_text for ex in examples}
        texts |= {p.text for preds in predictions.values() for p in preds if p.text}
        advance = track("embed outputs", len(texts))
        vectors = _embed(sorted(texts), advance)
        for c in contestants:
            for k, (ex, item) in enumerate(zip(examples, items[c.key])):
                item.extras["emb_prediction"] = vectors.get(item.prediction)
                item.extras["emb_reference"] = vectors.get(ex.reference_text)
                if teacher and c.key != teacher:
                    item.extras["emb_teacher"] = vectors.get(predictions[teacher][k].text)
    return items


def _embed(texts: list[str], advance: Callable[[int], None]) -> dict[str, list[float]]:
    from assay.models import load_embedder

    model = load_embedder()
    found = {}
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        vecs = model.encode(chunk, normalize_embeddings=True, convert_to_numpy=True)
        found.update({t: v.tolist() for t, v in zip(chunk, vecs)})
        advance(len(chunk))
    return found


def _details(suite: SuiteConfig, contestants: list[Contestant], items: dict[str, list[Item]]) -> dict:
    if suite.task != "classify":
        return {}
    from assay.evals.metrics import confusion, per_class

    return {c.key: {"confusion": confusion(items[c.key]), "per_class": per_class(items[c.key])} for c in contestants}


def _examples_json(suite: SuiteConfig, examples: list[Example], contestants: list[Contestant],
                   predictions: dict[str, list[Prediction]], items: dict[str, list[Item]], names: list[str]) -> list:
    from assay.evals.metrics import words

    scored = [m for m in names if get_metric(m).corpus is None or m in ("field_f1", "field_precision", "field_recall")]
    rows = []
    for k, ex in enumerate(examples):
        rows.append({
            "id": ex.id, "note_id": ex.note_id, "title": ex.title, "text": ex.text, "reference": ex.reference_text,
            "question": ex.question, "category": ex.category, "words": words(ex.text),
            "predictions": {c.key: predictions[c.key][k].text for c in contestants},
            "failures": {c.key: predictions[c.key][k].reason for c in contestants if predictions[c.key][k].reason},
            "scores": {c.key: {m: _round(get_metric(m).per_example(items[c.key][k])) for m in scored}
                       for c in contestants},
        })
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
