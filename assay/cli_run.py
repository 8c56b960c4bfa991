"""`assay run pipeline.yaml` and `assay demo`: the stages of assay.stages, chained by assay.runner.

Each stage gets a header, progress bars and its own summary; third-party output goes to the run log
(`--verbose` shows it); a table at the end says what ran, what was reused and why, and the verdict.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

TITLES = {"curate": "curate the export", "synth": "teachers label the notes and fill coverage gaps",
          "review": "human review in Argilla", "train": "fine-tune the student", "export": "export for on-device use",
          "eval": "evaluate against the baselines", "report": "the ship report"}


def run_cmd(
    pipeline: Path = typer.Argument(..., help="A pipeline YAML (see datasets/sample/pipeline.yaml)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. train.overrides=[train.max_steps=4]"),
    start: Optional[str] = typer.Option(None, "--from", help="First stage to run; earlier ones must have run."),
    until: Optional[str] = typer.Option(None, "--until", help="Last stage to run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would run and why; run nothing."),
    force: bool = typer.Option(False, "--force", help="Run the stages even when nothing changed."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party progress bars and warnings."),
) -> None:
    ("Run the whole pipeline: curate -> synth -> review -> train -> export -> eval -> report, "
     "reusing unchanged stages.")
    from assay.evals.gate import EXIT_NO_SHIP, NO_SHIP
    from assay.runner import load_pipeline

    if not pipeline.is_file():
        from assay.errors import AssayError

        raise AssayError(f"{pipeline}: no such pipeline file")
    run = execute(load_pipeline(pipeline, overrides or []), start=start, until=until, dry_run=dry_run,
                  force=force, verbose=verbose)
    if run.verdict == NO_SHIP:
        raise typer.Exit(EXIT_NO_SHIP)


def demo_cmd(
    steps: Optional[str] = typer.Option(None, help="Stages to run, comma-separated (default: all); the stages "
                                        "they need run too."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party progress bars and warnings."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides of datasets/sample/pipeline.yaml."),
) -> None:
    """The pipeline on the shipped sample export with the embedded defaults, ending with the ship report."""
    from assay.runner import ORDER, load_pipeline

    only = None
    until = None
    if steps:
        only = {s.strip() for s in steps.split(",") if s.strip()}
        unknown = sorted(only - set(ORDER))
        if unknown:
            from assay.errors import ConfigError

            raise ConfigError("--steps", [f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(ORDER)}"])
        until = max(only, key=ORDER.index)
    from assay.shipped import folder

    execute(load_pipeline(folder("datasets/sample") / "pipeline.yaml", overrides or []), until=until, only=only,
            verbose=verbose)


def execute(cfg, *, start=None, until=None, only=None, dry_run=False, force=False, verbose=False):
    """Run the pipeline with the display: returns the PipelineRun."""
    from assay.display import progress_tracker
    from assay.project import Project
    from assay.runlog import run_log
    from assay.runner import PipelineRun, run_pipeline
    from assay.stage import Context

    term = Console(file=sys.stdout)  # bound now: inside run_log sys.stdout is the log
    project = Project.current()
    stack = ExitStack()
    current = {}

    def track(description, total):
        return current["track"](description, total)

    def on_stage(name, row):
        if row is None:
            if not dry_run:
                term.rule(f"{name}: {TITLES[name]}")
                current["track"] = stack.enter_context(progress_tracker(term))
            return
        stack.close()
        if not dry_run:
            show_stage(term, project, row)

    run, log_path = PipelineRun(), None
    lock = ExitStack()
    if not dry_run:  # two runs of one project at once would write the same versions twice: the second waits
        lock.enter_context(project.lock(on_wait=lambda line: term.print(line, style="yellow", markup=False)))
    try:
        with lock, run_log(project, verbose=verbose) as log_path:
            ctx = Context(project, track=track, log=lambda line: print(line))
            try:
                run_pipeline(cfg, ctx, start=start, until=until, only=only, dry_run=dry_run, force=force,
                             on_stage=on_stage, into=run)
            finally:
                stack.close()
    finally:  # a failed or interrupted run still says what finished, and the same command resumes it
        show_summary(term, run, only)
        if log_path is not None:
            _write_summary(log_path.with_suffix(".json"), run)
            term.print(f"log: {log_path}", highlight=False)
    return run


def _write_summary(path: Path, run) -> None:
    """The summary table as JSON beside the log (what ran, what was reused and why), written then renamed."""
    import json
    import os

    from assay.redact import mask_urls_in

    rows = [{"stage": r.stage, "status": r.status, "seconds": round(r.seconds, 1), "why": r.why,
             **({k: getattr(r.manifest, k) for k in ("output", "rows_in", "rows_out", "spend_usd", "verdict")}
                if r.manifest else {})} for r in run.rows]
    tmp = path.with_name(f".{path.name}.tmp")
    summary = mask_urls_in({"stages": rows, "verdict": run.verdict})  # a failed stage's why quotes its error
    tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def show_stage(term: Console, project, row, always: bool = False) -> None:
    """The one summary a stage prints when it ends (a reused stage says so; `always`: its summary too)."""
    from assay.display import safe, show_curate_run, show_model_version, show_synth_run
    from assay.stage import split_ref

    m = row.manifest
    if row.status == "reused":
        term.print(f"[green]reused[/green] {safe(m.output)}: {safe(row.why)}, nothing to do", highlight=False)
        if not always:
            return
    kind, ref = split_ref(m.output or ":")
    if row.stage == "curate":
        from assay.store import DatasetStore

        show_curate_run(term, DatasetStore(project.datasets).get(ref))
    elif row.stage == "synth" and kind == "dataset":
        from assay.curation.synth.run import SynthRun
        from assay.store import DatasetStore

        version = DatasetStore(project.datasets).get(ref)
        show_synth_run(term, SynthRun(version, {}, version.manifest))
    elif row.stage == "train":
        from assay import registry

        show_model_version(term, registry.get(project, ref))
    elif row.stage == "eval":
        from assay.cli_eval import show_eval
        from assay.evals.run import load_results

        show_eval(*load_results(project, ref), console=term)
    if row.status == "ran":
        for note in m.notes:
            term.print(safe(note), highlight=False)


def show_summary(term: Console, run, only) -> None:
    from assay.display import safe
    from assay.runner import REVIEW_OFF

    if not term.is_terminal:  # a log or CI: rich would fold the table at 80 columns
        term.width = max(term.width, 120)
    # no vertical rules, and only `why` wraps: on an 80-column terminal the version and verdict stay whole;
    # there the spend column goes when nothing was spent
    spent = any(r.manifest and r.manifest.spend_usd for r in run.rows)
    cols = [c for c in ("stage", "status", "time", "rows in>out", "spend", "output / verdict", "why")
            if c != "spend" or spent or term.width >= 100]
    table = Table(title="pipeline", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in cols:
        table.add_column(col, justify="right" if col in ("time", "rows in>out", "spend") else "left",
                         no_wrap=col != "why", ratio=1 if col == "why" else None, overflow="fold")
    for row in run.rows:
        m = row.manifest
        why = row.why
        if only is not None and row.stage not in only and row.status in ("ran", "reused"):
            why = f"needed by a stage asked for; {why}"
        rows = "" if not m else ">".join(_n(n) for n in (m.rows_in, m.rows_out) if n is not None)
        cells = {"stage": row.stage, "status": row.status,
                 "time": f"{row.seconds:.0f} s" if row.status in ("ran", "reused") else "", "rows in>out": rows,
                 "spend": f"${m.spend_usd:.2f}" if m else "",
                 "output / verdict": safe((m.verdict or m.output.partition(":")[2] if m.output else "") if m else ""),
                 "why": safe(why)}
        table.add_row(*(cells[c] for c in cols))
    term.print(table)
    if any(r.stage == "review" and r.status == "skipped" and r.why == REVIEW_OFF for r in run.rows):
        term.print("review: off (review.mode is skip). To review the teachers' candidates in Argilla: "
                   "`assay review serve`, then the same command with review.mode=wait", highlight=False, markup=False)
    if run.verdict:
        report = run.output("report") or run.output("eval")
        colour = "green" if run.verdict == "SHIP" else "bold red"
        term.print(f"verdict: [{colour}]{run.verdict}[/{colour}]   report: {safe(report.partition(':')[2])}/index.html",
                   highlight=False)


def _n(value) -> str:
    return "" if value is None else str(value)
