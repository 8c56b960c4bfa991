"""`assay run pipeline.yaml`: the stages in order, each reused when its fingerprint is unchanged.

A killed or failed run resumes with the same command: finished stages are found by fingerprint and
reused, and the train stage continues from its last checkpoint. `--from`/`--until` run part of the
pipeline (stages before `--from` must already have an output), `--dry-run` says what would run and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from assay import shipped
from assay.errors import AssayError, ConfigError
from assay.stage import Context, Manifest, find, fingerprint, history, publish
from assay.stages import ORDER, STAGES, code_of, input_of


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: str | None = None
    overrides: list[str] = Field(default_factory=list)


class CurateSection(_Section):
    source: str  # the note export: a file or a folder of Markdown files
    name: str = "notes"  # the dataset name; each new curation is its next version


class SynthSection(_Section):
    enabled: bool = True


class ReviewSection(BaseModel):
    """skip; push (and train on the teachers' outputs); wait (push, wait until every record is answered,
    pull); pull (push what is new, then train on the answers given so far)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["skip", "push", "wait", "pull"] = "skip"
    workspace: str = "default"
    wait_minutes: float = Field(60.0, gt=0)  # wait: give up (the same command waits again) after this long
    poll_seconds: float = Field(30.0, gt=0)


class TrainSection(_Section):
    config: str = "training/configs/sft-smollm2.yaml"


class ExportSection(_Section):
    formats: list[Literal["merged", "int8", "onnx", "gguf"]] = Field(default_factory=list)


class EvalSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: str = "summarize-test"
    gate: str | None = "evals/gates/default.yaml"
    against: list[str] | None = None  # None: the suite's own list
    overrides: list[str] = Field(default_factory=list)


class ReportSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class PipelineConfig(BaseModel):
    """pipeline.yaml: one section per stage; paths are relative to the file (or to the repo, for shipped ones)."""

    model_config = ConfigDict(extra="forbid")
    curate: CurateSection
    synth: SynthSection = Field(default_factory=SynthSection)
    review: ReviewSection = Field(default_factory=ReviewSection)
    train: TrainSection = Field(default_factory=TrainSection)
    export: ExportSection = Field(default_factory=ExportSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    report: ReportSection = Field(default_factory=ReportSection)


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    from assay.config import load_config

    path = Path(path)
    cfg = load_config(PipelineConfig, path, overrides)
    here = path.resolve().parent

    def where(p: str | None) -> str | None:  # next to the file, else a shipped config of that name
        if p is None:
            return p
        found = shipped.resolve(p, here)
        return str(found if shipped.exists(found) else here / p)

    cfg.curate.source = where(cfg.curate.source)
    for section in (cfg.curate, cfg.synth, cfg.train, cfg.export):
        section.config = where(section.config)
    cfg.eval.gate = where(cfg.eval.gate)
    if cfg.eval.suite.endswith((".yaml", ".yml")):
        cfg.eval.suite = where(cfg.eval.suite)
    # training keeps the checkpoint that passes the most of the rules the eval will judge it by (its
    # validation rows stand in for the suite); a train override of eval.gate says otherwise
    if cfg.eval.gate and not any(o.split("=", 1)[0].strip() == "eval.gate" for o in cfg.train.overrides):
        cfg.train.overrides = [*cfg.train.overrides, f"eval.gate={cfg.eval.gate}"]
    return cfg


REVIEW_OFF = "review.mode is skip"


def _skip_reason(name: str, cfg: PipelineConfig) -> str | None:
    """Why a stage is off in this pipeline (None: it runs)."""
    if name == "synth" and not cfg.synth.enabled:
        return "synth.enabled is false"
    if name == "review" and cfg.review.mode == "skip":
        return REVIEW_OFF
    if name == "export" and not cfg.export.formats:
        return "export.formats is empty"
    if name == "report" and not cfg.report.enabled:
        return "report.enabled is false"
    return None


@dataclass
class Row:
    """One line of the summary table."""

    stage: str
    status: str  # ran, reused, skipped, would run, would reuse, failed
    seconds: float = 0.0
    manifest: Manifest | None = None
    why: str = ""


@dataclass
class PipelineRun:
    rows: list[Row] = field(default_factory=list)

    def output(self, stage: str) -> str | None:
        for row in self.rows:
            if row.stage == stage and row.manifest is not None:
                return row.manifest.output
        return None

    @property
    def verdict(self) -> str | None:
        """The verdict of this run's own eval stage (run or reused), never one read back from a folder later."""
        return next((r.manifest.verdict for r in self.rows if r.stage == "eval" and r.manifest), None)


def stages_between(start: str | None, until: str | None) -> list[str]:
    for given in (start, until):
        if given is not None and given not in STAGES:
            raise ConfigError("--from/--until", [f"unknown stage {given!r}; stages: {', '.join(ORDER)}"])
    first = ORDER.index(start) if start else 0
    last = ORDER.index(until) if until else len(ORDER) - 1
    if first > last:
        raise ConfigError("--from/--until", [f"--from {start} comes after --until {until}"])
    return ORDER[first:last + 1]


def run_pipeline(cfg: PipelineConfig, ctx: Context, *, start: str | None = None, until: str | None = None,
                 only: set[str] | None = None, dry_run: bool = False, force: bool = False,
                 on_stage=None, into: PipelineRun | None = None) -> PipelineRun:
    """Run (or, with dry_run, plan) the stages; `only` limits the optional ones to those named.

    `on_stage(name, row)` is called as each stage starts (row None) and ends, for the display; rows go
    into `into` as they finish, so a caller still has them when a stage fails (its row says "failed").
    """
    wanted = stages_between(start, until)
    before = ORDER[:ORDER.index(wanted[0])]
    _check_configs(cfg, [n for n in wanted if not _skip_reason(n, cfg)])
    outputs: dict[str, str] = {}
    run = into if into is not None else PipelineRun()
    pending = False  # an earlier stage would run (dry run): later inputs are not known yet
    skipped: set[str] = set()
    for name in ORDER[:ORDER.index(wanted[-1]) + 1]:
        stage = STAGES[name]
        off = _skip_reason(name, cfg) or ("not asked for (--steps)" if only is not None and name not in only
                                          and name in ("review", "export", "report") else None)
        if off:
            run.rows.append(Row(name, "skipped", why=off))
            skipped.add(name)
            continue
        upstream = next((n for n in stage.needs if n not in skipped), None)  # a skipped stage passes its input on
        source = ([f"file:{cfg.curate.source}"] if name == "curate"
                  else [outputs[upstream]] if upstream in outputs else [])
        if name != "curate" and not source:
            if pending:
                run.rows.append(Row(name, "would run", why="an earlier stage will run first"))
                continue
            raise AssayError(f"stage {name} needs the output of {' or '.join(stage.needs)}, which did not run")
        if on_stage:
            on_stage(name, None)
        started = time.time()
        try:
            row = run_stage(name, getattr(cfg, name), source, ctx, dry_run=dry_run,
                            force=force and name not in before, reuse_only=name in before)
        except _Missing:
            raise AssayError(f"--from {wanted[0]}: stage {name} has no output for these inputs and config yet; "
                             f"run without --from (or --from {name})") from None
        except BaseException as exc:
            run.rows.append(Row(name, "failed", time.time() - started, why=f"{type(exc).__name__}: {exc}"[:300]))
            raise
        pending = pending or row.status == "would run"
        if row.manifest is not None and row.manifest.output:
            outputs[name] = row.manifest.output
        run.rows.append(row)
        if on_stage:
            on_stage(name, row)
    return run


def _check_configs(cfg: PipelineConfig, names: list[str]) -> None:
    """Every config the stages to run name, read before the first one starts: a typo in the training
    config stops the run now, not after curation and an hour of teacher calls."""
    problems = [p for name in names if STAGES[name].check for p in STAGES[name].check(getattr(cfg, name))]
    if problems:
        raise ConfigError("pipeline", problems)


class _Missing(Exception):
    pass


def run_stage(name: str, section, source: list[str], ctx: Context, *, dry_run: bool = False, force: bool = False,
              reuse_only: bool = False) -> Row:
    """One stage through the contract: reuse the output of an unchanged fingerprint, else run and publish."""
    stage = STAGES[name]
    started = time.time()
    typed, hashed = stage.configure(section, source, ctx)
    inputs = [input_of(ref, ctx) for ref in source]
    fp, config_hash = fingerprint(name, inputs, hashed, code_of(name))
    found, problem = (None, None) if (stage.always_run or force) else find(ctx, fp)
    if found is not None:
        return Row(name, "would reuse" if dry_run else "reused", time.time() - started, found,
                   why="unchanged")
    if reuse_only:
        raise _Missing(name)
    why = problem or _why_run(ctx, name, inputs, config_hash, stage.always_run)
    if force:
        why = f"--force; {why}"
    if dry_run:
        return Row(name, "would run", why=why)
    outcome = stage.run(source, typed, replace(ctx, fingerprint=fp))
    manifest = publish(ctx, Manifest(
        stage=name, fingerprint=fp, inputs=inputs, config_hash=config_hash, code_version=code_of(name),
        output=outcome.output, rows_in=outcome.rows_in, rows_out=outcome.rows_out, spend_usd=outcome.spend_usd,
        verdict=outcome.verdict, seconds=round(time.time() - started, 1), notes=outcome.notes))
    return Row(name, "ran", manifest.seconds, manifest, why=why)


def _why_run(ctx: Context, name: str, inputs, config_hash: str, always: bool) -> str:
    """What changed since this stage's last recorded run."""
    if always:
        return "its input is the reviewers' answers in Argilla"
    earlier = history(ctx.project, name)
    if not earlier:
        return "first run"
    last = earlier[-1]
    changed = []
    if [(i.ref, i.hash) for i in last.inputs] != [(i.ref, i.hash) for i in inputs]:
        changed.append("input changed")
    if last.config_hash != config_hash:
        changed.append("config changed")
    if last.code_version != code_of(name):
        changed.append("code changed")  # both versions are in the manifests
    return ", ".join(changed) or "the earlier output is gone"
