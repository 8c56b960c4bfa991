"""Every pipeline stage as `run(inputs, cfg, ctx) -> Outcome`, plus what its fingerprint hashes.

A `Stage` names the stages whose outputs it reads (`needs`), how to build its typed config from the
pipeline's section (`configure`, which also says what to hash), and the function that does the work.
The CLI verbs and `assay run` call these through `assay.runner`; nothing else chains stages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from assay.errors import AssayError
from assay.stage import Context, Input, Outcome, digest, file_hash, split_ref


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]  # upstream stages whose outputs are this one's inputs (first found wins)
    configure: Callable[[Any, list[str], Context], tuple[Any, Any]]  # (section, inputs) -> (typed config, to hash)
    run: Callable[[list[str], Any, Context], Outcome]
    always_run: bool = False  # its real input lives elsewhere (Argilla answers): never reused by fingerprint
    check: Callable[[Any], list[str]] | None = None  # problems of its section known before any input exists


def _parsed(load: Callable[[], Any]) -> list[str]:
    """The problems a config loader reports (none when it loads)."""
    from assay.errors import ConfigError

    try:
        load()
    except ConfigError as exc:
        return [str(exc)]
    return []


def _curate_check(section) -> list[str]:
    from assay.config import load_config
    from assay.curation.config import CurateConfig

    return _parsed(lambda: load_config(CurateConfig, section.config, section.overrides))


def _synth_check(section) -> list[str]:
    from assay.config import load_config
    from assay.curation.synth.config import SynthConfig

    return _parsed(lambda: load_config(SynthConfig, section.config, section.overrides))


def _train_check(section) -> list[str]:
    from assay import training
    from assay.errors import ConfigError

    try:
        _, problems = training.checked(section.config, list(section.overrides))
    except ConfigError as exc:
        return [str(exc)]
    return [f"{section.config}: {p}" for p in problems]


def _eval_check(section) -> list[str]:
    from assay.evals.gate import load_gate
    from assay.evals.suite import load_suite

    return _parsed(lambda: load_suite(section.suite, section.overrides)) + \
        (_parsed(lambda: load_gate(section.gate)) if section.gate else [])


def input_of(ref: str, ctx: Context) -> Input:
    """An input reference with the hash of its content."""
    kind, rest = split_ref(ref)
    if kind == "file":
        return Input(ref=ref, hash=file_hash(rest))
    if kind == "dataset":
        from assay.store import DatasetStore

        version = DatasetStore(ctx.project.datasets).get(rest)
        return Input(ref=f"dataset:{version.ref}", hash=version.manifest["content_hash"])
    if kind == "model":
        from assay import registry

        m = registry.get(ctx.project, rest)
        return Input(ref=f"model:{m.ref}", hash=digest([m.ref, m.created_at, m.dataset_hash]))
    if kind in ("report", "results"):
        return Input(ref=ref, hash=file_hash(Path(rest) / "results.json"))
    return Input(ref=ref, hash=digest(ref))


def _ref(ref: str) -> str:
    return split_ref(ref)[1]


# ---------------------------------------------------------------- curate

def _curate_cfg(section, inputs: list[str], ctx: Context):
    from assay.config import load_config
    from assay.curation.config import CurateConfig
    from assay.curation.review.duplicates import load_decisions

    cfg = load_config(CurateConfig, section.config, section.overrides)
    reviews = load_decisions(ctx.project)  # reviewers' same-note answers change what dedupe keeps
    hashed = [cfg.model_dump(mode="json"), section.name,
              None if reviews is None else digest(reviews.sort(reviews.columns).write_ndjson())]
    return (cfg, section.name, reviews), hashed


def _curate(inputs: list[str], cfg, ctx: Context) -> Outcome:
    from assay.curation.pipeline import curate
    from assay.store import DatasetStore

    curate_cfg, name, reviews = cfg
    export = _ref(inputs[0])
    if not Path(export).exists():
        raise AssayError(f"{export}: no such file or folder")
    run = curate(export, curate_cfg, name=name, store=DatasetStore(ctx.project.datasets), track=ctx.track,
                 duplicate_reviews=reviews, stage={"fingerprint": ctx.fingerprint})
    m = run.version.manifest
    return Outcome(f"dataset:{run.version.ref}", rows_in=m.get("rows_in"), rows_out=m["rows"])


# ---------------------------------------------------------------- synth

def _synth_cfg(section, inputs: list[str], ctx: Context):
    from assay.config import load_config
    from assay.curation.synth.config import SynthConfig

    cfg = load_config(SynthConfig, section.config, section.overrides)
    return cfg, cfg.model_dump(mode="json")


def _synth(inputs: list[str], cfg, ctx: Context) -> Outcome:
    from assay.curation.synth.run import synth
    from assay.store import DatasetStore

    run = synth(_ref(inputs[0]), cfg, store=DatasetStore(ctx.project.datasets), project=ctx.project,
                track=ctx.track, stage={"fingerprint": ctx.fingerprint})
    if run.version is None:  # dry_run: the estimate is all there is
        return Outcome(None, notes=[f"dry run: {run.estimate}"])
    m = run.version.manifest
    parent = DatasetStore(ctx.project.datasets).get(_ref(inputs[0]))
    return Outcome(f"dataset:{run.version.ref}", rows_in=parent.manifest["rows"], rows_out=m["rows"],
                   spend_usd=m["spend"]["total_usd"],
                   notes=[f"{m['labeled']} labeled, {m['no_valid_output']} without a valid output, "
                          f"{m['new_calls']} teacher call(s), {m['cache_hits']} from the cache"])


# ---------------------------------------------------------------- review

def _review_cfg(section, inputs: list[str], ctx: Context):
    return section, section.model_dump(mode="json")


def _review(inputs: list[str], cfg, ctx: Context) -> Outcome:
    """push: candidates go to Argilla and training goes on with them; wait: push, wait until every record
    is answered, pull; pull: push what is new, then train on the answers given so far."""
    from assay.curation.review.client import connect, one_line_errors
    from assay.curation.review.pull import pull
    from assay.curation.review.push import PushOptions, push
    from assay.curation.review.server import running
    from assay.store import DatasetStore

    if not (os.environ.get("ARGILLA_API_URL") or running(ctx.project)):
        raise AssayError(f"review.mode={cfg.mode} needs an Argilla server: start one with `assay review serve` "
                         "(or set ARGILLA_API_URL and ARGILLA_API_KEY), or set review.mode=skip")
    store = DatasetStore(ctx.project.datasets)
    ref = _ref(inputs[0])
    client = connect(ctx.project)
    with one_line_errors(client):
        pushed = push(store, ref, client, PushOptions(workspace=cfg.workspace))
        note = f"{pushed['added']} record(s) pushed to {pushed['dataset']!r} ({pushed['url']})"
        if cfg.mode == "push":
            return Outcome(inputs[0], rows_in=pushed["total"], rows_out=pushed["total"], notes=[note])
        if cfg.mode == "wait":
            _wait_for_answers(store, ref, client, cfg, ctx, pushed["url"])
        result = pull(store, ref, client)
    out = result.version.ref if result.version else (result.same_as or ref)
    return Outcome(f"dataset:{out}", rows_in=pushed["total"], rows_out=result.reviewed,
                   notes=[note, f"{result.reviewed} reviewed row(s) pulled into {out}"])


def _wait_for_answers(store, ref: str, client, cfg, ctx: Context, url: str) -> None:
    """Poll Argilla until every record is completed; after cfg.wait_minutes, stop with where it stands."""
    import time

    from assay.curation.review.pull import progress

    deadline = time.monotonic() + cfg.wait_minutes * 60
    state = progress(store, ref, client)
    ctx.log(f"[assay review] waiting for answers at {url}: {state['completed']}/{state['total']} record(s) completed")
    advance, shown = ctx.track("records answered in Argilla", state["total"]), 0
    while True:
        advance(state["completed"] - shown)
        shown = state["completed"]
        if state["total"] and state["completed"] >= state["total"]:
            return
        if time.monotonic() >= deadline:
            raise AssayError(f"review.mode=wait: {state['completed']}/{state['total']} record(s) of "
                             f"{state['dataset']!r} completed after {cfg.wait_minutes:g} min; run the same command "
                             "to wait again (nothing is pushed twice), or set review.mode=pull to train on the "
                             "answers so far")
        time.sleep(min(cfg.poll_seconds, max(0.0, deadline - time.monotonic())))
        state = progress(store, ref, client)


# ---------------------------------------------------------------- train

def _train_cfg(section, inputs: list[str], ctx: Context):
    """The recipe's resolved config, trained on the input dataset (validated before anything loads)."""
    from assay import training
    cfg = training.load(section.config, list(section.overrides) + [f"data.dataset={_ref(inputs[0])}"],
                        project=ctx.project)
    hashed = cfg.model_dump(mode="json")
    hashed["data"].pop("dataset")  # the input, hashed with its content: a new dataset is "input changed"
    return cfg, hashed


def _train(inputs: list[str], cfg, ctx: Context) -> Outcome:
    """Trains, or continues the run a kill interrupted (its checkpoints are keyed by config and data)."""
    import json

    from assay.training.config import DistillRunConfig

    if isinstance(cfg, DistillRunConfig):
        from assay.training.distill import train
    else:
        from assay.training.sft import train
    model = train(cfg, project=ctx.project, resume=True)
    info = json.loads((model.path / "run.json").read_text(encoding="utf-8"))
    data = info.get("data", {})
    from assay.store import DatasetStore

    rows = DatasetStore(ctx.project.datasets).get(_ref(inputs[0])).manifest["rows"]
    used = data.get("train_rows", 0) + data.get("validation_rows", 0)
    return Outcome(f"model:{model.ref}", rows_in=rows, rows_out=used, spend_usd=model.cost_usd,
                   notes=[f"{used} of the dataset's {rows} rows are labeled train/validation rows: "
                          f"{data.get('train_rows')} trained on, {data.get('validation_rows')} for validation "
                          f"({model.wall_time_s:.0f} s)"])


# ---------------------------------------------------------------- export

def _export_cfg(section, inputs: list[str], ctx: Context):
    return section, [section.formats, file_hash(section.config) if section.config else None, section.overrides]


def _export(inputs: list[str], cfg, ctx: Context) -> Outcome:
    from assay.training.export import export_model

    paths, notes = [], []
    for fmt in cfg.formats:
        result = export_model(_ref(inputs[0]), fmt, project=ctx.project, config=cfg.config,
                              overrides=cfg.overrides, log=ctx.log)
        paths.append(str(result.path))
        notes.append(f"{fmt}: {result.status} ({result.size_bytes / 1e6:.0f} MB)")
    return Outcome(f"export:{paths[-1]}" if paths else None, notes=notes)


# ---------------------------------------------------------------- eval and report

def _eval_cfg(section, inputs: list[str], ctx: Context):
    from assay.evals.gate import load_gate
    from assay.evals.suite import load_suite

    suite = load_suite(section.suite, section.overrides)
    gate = load_gate(section.gate) if section.gate else None
    against = section.against if section.against is not None else suite.against
    # the whole resolved suite (metrics, headline, judge, harness, on-device settings...), not only what keys its
    # predictions: a changed metric or gate is a new eval run
    return (suite, gate, against), [suite.model_dump(mode="json"),
                                    None if gate is None else gate.model_dump(mode="json"), against]


def _eval(inputs: list[str], cfg, ctx: Context) -> Outcome:
    from assay.evals.run import evaluate

    suite, gate, against = cfg
    run = evaluate(suite, _ref(inputs[0]), against=against, gate=gate, project=ctx.project, track=ctx.track)
    spend = sum(line["spend_usd"] for line in run.results["lineage"].get("eval_teacher_calls", {}).values())
    return Outcome(f"results:{run.folder}", rows_in=len(run.results["examples"]), verdict=run.verdict,
                   spend_usd=spend, notes=[run.results["verdict"].get("summary", "")])


def _report_cfg(section, inputs: list[str], ctx: Context):
    return section, {}


def _report(inputs: list[str], cfg, ctx: Context) -> Outcome:
    """The HTML report of the eval's results (self-contained; open index.html)."""
    from assay.evals.report import write_report
    from assay.evals.results import read

    folder = Path(_ref(inputs[0]))  # the eval stage's own run folder (its id covers config, baselines and gate)
    results = read(folder / "results.json")  # checked: a damaged file is one line naming it
    page = write_report(results, folder)
    return Outcome(f"report:{folder}", rows_in=len(results["examples"]), notes=[f"report: {page}"])


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("curate", (), _curate_cfg, _curate, check=_curate_check),
    Stage("synth", ("curate",), _synth_cfg, _synth, check=_synth_check),
    Stage("review", ("synth",), _review_cfg, _review, always_run=True),
    Stage("train", ("review", "synth", "curate"), _train_cfg, _train, check=_train_check),
    Stage("export", ("train",), _export_cfg, _export),
    Stage("eval", ("train",), _eval_cfg, _eval, check=_eval_check),
    Stage("report", ("eval",), _report_cfg, _report),
)}
ORDER = list(STAGES)


@lru_cache(maxsize=None)
def code_of(name: str) -> str:
    """The code version of one stage: the installed release plus a digest of the source its functions run
    (assay/codeversion.py), so an edit reruns only the stages whose code it touches."""
    from importlib.metadata import PackageNotFoundError, version

    from assay.codeversion import version_of

    try:
        release = version("assay")
    except PackageNotFoundError:
        release = "0+unknown"
    stage = STAGES[name]
    return version_of([f for f in (stage.configure, stage.run, stage.check) if f is not None], release)
