"""The `assay` command line. Heavy imports happen inside the commands, so `assay --help` stays instant."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from assay import cli_eval, cli_run
from assay.errors import AssayError, ConfigError, InputError, file_problem

app = typer.Typer(help="Turn note exports into small, shippable language models, with evidence.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
datasets_app = typer.Typer(help="Inspect dataset versions.", no_args_is_help=True)
models_app = typer.Typer(help="The embedded model catalogue.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
app.add_typer(__import__("assay.cli_review", fromlist=["review_app"]).review_app, name="review")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    if debug:
        os.environ["ASSAY_DEBUG"] = "1"


@app.command()
def curate(
    export: Path = typer.Argument(..., help="A note export: .json, .jsonl, .csv, .enex, "
                                            "or a folder of Markdown files."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="A curate YAML (see datasets/sample/curate.yaml)."),
    name: str = typer.Option("notes", "--name", "-n", help="Dataset name; each run writes its next version."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                      help="Quarantine bad records with a reason instead of stopping."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. dedupe.near.threshold=0.6"),
) -> None:
    """Ingest, clean, deduplicate, balance and split an export into a new dataset version (reused when unchanged)."""
    from assay.runner import CurateSection

    if not export.exists():
        raise AssayError(f"{export}: no such file or folder")
    extra = ["ingest.skip_invalid=true"] if skip_invalid else []
    section = CurateSection(source=str(export), name=name, config=str(config) if config else None,
                            overrides=(overrides or []) + extra)
    _one_stage("curate", section, f"file:{export}")


def _one_stage(name: str, section, source: str):
    """A CLI verb as one stage of the pipeline: reused when its inputs, config and code are unchanged."""
    from assay.cli_run import show_stage
    from assay.display import progress_tracker
    from assay.project import Project
    from assay.runner import run_stage
    from assay.stage import Context

    project = Project.current()
    with progress_tracker(console) as track:
        row = run_stage(name, section, [source], Context(project, track=track))
    show_stage(console, project, row, always=True)
    return row


@app.command()
def synth(
    dataset: str = typer.Argument(..., help="NAME or NAME@VERSION of a curated dataset."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A synth YAML."),
    task: Optional[str] = typer.Option(None, help="summarize, classify, extract or qa."),
    teachers: Optional[str] = typer.Option(None, help="Comma-separated teacher specs, "
                                                      "e.g. local,rule:lead,anthropic:claude-haiku-4-5"),
    select: Optional[str] = typer.Option(None, help="consensus, judge or rules."),
    judge: Optional[str] = typer.Option(None, help="Teacher spec that scores candidates (with --select judge)."),
    fill_gaps: bool = typer.Option(False, "--fill-gaps",
                                   help="Write outputs and new notes for the cells curation found thin."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Stop before spending more than this many USD."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the cost estimate; call nothing, write nothing."),
    allow_cloud_pii: bool = typer.Option(False, "--allow-cloud-pii", help="Send notes to remote teachers unredacted."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. limit=20 limits.openai.rpm=60"),
) -> None:
    """Label a dataset's notes with several teachers, keep the best output, and fill coverage gaps."""
    from assay.config import load_config
    from assay.curation.synth.config import SynthConfig
    from assay.curation.synth.run import synth as run_synth
    from assay.display import progress_tracker, show_synth_run
    from assay.project import Project
    from assay.store import DatasetStore

    flags = {"task": task, "teachers": teachers, "select": select, "judge": judge, "budget_usd": budget}
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    extra += [f"{k}=true" for k, on in (("fill_gaps", fill_gaps), ("dry_run", dry_run),
                                        ("allow_cloud_pii", allow_cloud_pii)) if on]
    if not dry_run:  # a real run is a stage: an unchanged rerun reuses its version
        from assay.runner import SynthSection

        _one_stage("synth", SynthSection(config=str(config) if config else None, overrides=extra + (overrides or [])),
                   f"dataset:{dataset}")
        return
    cfg = load_config(SynthConfig, config, extra + (overrides or []))
    project = Project.current()
    with progress_tracker(console) as track:
        result = run_synth(dataset, cfg, store=DatasetStore(project.datasets), project=project, track=track)
    show_synth_run(console, result)


@app.command()
def train(
    config: Path = typer.Argument(..., help="A training YAML under training/configs/."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, "
                                                     "e.g. train.max_steps=50 data.dataset=notes@v3"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of the interrupted run."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party progress bars and warnings."),
) -> None:
    """LoRA fine-tuning or distillation of a student; registers the model with its lineage."""
    from assay import training
    from assay.display import show_model_version
    from assay.project import Project
    from assay.runlog import run_log
    from assay.training.common import is_main_process

    # library output (dataset maps, FutureWarnings, the trainer's metric dicts) goes to the run log, as in
    # `assay run`; "[assay train]" lines still reach the terminal
    with run_log(Project.current(), verbose=verbose) as log_path:
        version = training.run(config, overrides or [], resume=resume)
    if is_main_process():  # under accelerate launch / torchrun every process gets here; one reports
        show_model_version(console, version)
        console.print(f"log: {log_path}", highlight=False)


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="NAME@VERSION of a trained model (or NAME for its latest, or a folder)."),
    format: str = typer.Option(..., "--format", "-f", help="merged, int8, onnx or gguf."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="An export YAML (tolerances, int8 and gguf settings)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. int8.tolerance.ppl_increase=0.05"),
) -> None:
    """Export a model for on-device use, with its size and parity figures in the model card."""
    from assay.training.export import export_model, summary_lines

    result = export_model(model, format, config=config, overrides=overrides or [],
                          log=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False))
    for line in summary_lines(result):
        console.print(line, highlight=False)


@datasets_app.command("list")
def datasets_list() -> None:
    """Every dataset and its versions."""
    from assay.display import show_dataset_list
    from assay.project import Project
    from assay.store import DatasetStore

    show_dataset_list(console, DatasetStore(Project.current().datasets))


@datasets_app.command("show")
def datasets_show(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    clusters: int = typer.Option(10, help="How many duplicate clusters to list (0 for none)."),
    rejects: int = typer.Option(3, help="Example rejects to show per reason (0 for none)."),
) -> None:
    """A version's manifest, per-step table, coverage and gaps, splits, duplicate clusters and rejects."""
    from assay.display import show_version
    from assay.project import Project
    from assay.store import DatasetStore

    show_version(console, DatasetStore(Project.current().datasets).get(ref), clusters=clusters, rejects=rejects)


@datasets_app.command("diff")
def datasets_diff(a: str, b: str, examples: int = typer.Option(5, help="Example rows per kind of change.")) -> None:
    """Rows added, removed and changed between two versions (NAME@VERSION each)."""
    from assay.display import show_diff
    from assay.project import Project
    from assay.store import DatasetStore

    store = DatasetStore(Project.current().datasets)
    show_diff(console, store.get(a), store.get(b), examples=examples)


@models_app.command("list")
def models_list() -> None:
    """Catalogue models (cached or not) and the trained models in this project's registry."""
    from assay.display import show_catalogue, show_trained
    from assay.evals.lineage import verdicts
    from assay.models import list_models
    from assay.project import Project
    from assay.registry import list_models as registered

    show_catalogue(console, list_models())
    project = Project.current()
    trained = [r | {"verdicts": [f"{v['suite_key'].split(':')[0]}: {v['decision']}"
                                 for v in verdicts(project, r["name"], r["version"])]}
               for r in registered(project)]
    show_trained(console, trained)


@models_app.command("pull")
def models_pull(name: str) -> None:
    """Fetch and convert a catalogue model into the local cache (once)."""
    from assay.models import pull

    path = pull(name)
    console.print(f"[green]ready[/green] {name} -> {path}")


@app.command()
def init(
    folder: Path = typer.Argument(Path("."), help="Where the pipeline goes: the folder of your export."),
    export: Optional[Path] = typer.Option(None, "--export",
                                          help="Your export (default: the one export file in FOLDER)."),
    force: bool = typer.Option(False, "--force", help="Overwrite starter files already there."),
) -> None:
    """Write a starter pipeline.yaml and the configs it names next to your export, with comments on what to change."""
    from assay.init import init as write_starter

    written, source = write_starter(folder, export, force=force)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"the pipeline reads {source}; run it with: assay run {written[0]}")


app.command("eval")(cli_eval.eval_cmd)
app.command("report")(cli_eval.report_cmd)
app.command("run")(cli_run.run_cmd)
app.command("demo")(cli_run.demo_cmd)

def run() -> None:
    """Entry point: usage and domain errors become one clear line and a non-zero exit (tracebacks with --debug).
    Errors are printed with soft_wrap, so a long message stays one line that the terminal wraps, not rich."""
    from assay.display import safe

    usage, other, exits, aborts, help_only = _click_errors()
    try:
        code = app(standalone_mode=False)
    except exits as exc:
        sys.exit(exc.exit_code)
    except help_only as exc:  # `assay` or `assay datasets` alone: the help is the answer
        exc.show()
        sys.exit(exc.exit_code)
    except usage as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())  # typer's own wording, on one line
        err_console.print(f"[bold red]error:[/bold red] {safe(message)}{safe(where)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except other as exc:
        err_console.print(f"[bold red]error:[/bold red] {safe(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except aborts:
        err_console.print("[yellow]aborted[/yellow]")
        sys.exit(1)
    except AssayError as exc:
        if os.environ.get("ASSAY_DEBUG"):
            raise
        # a config's problems are one per line; anything else is one line, whatever the data held
        text = safe(str(exc), newlines=isinstance(exc, ConfigError))
        err_console.print(f"[bold red]error:[/bold red] {text}", highlight=False, soft_wrap=True)
        if isinstance(exc, InputError) and "curate" in sys.argv and "--skip-invalid" not in sys.argv:
            err_console.print("hint: --skip-invalid quarantines bad records with their reason and goes on")
        sys.exit(exc.exit_code)
    except OSError as exc:  # a read-only project, a name too long, a full disk: the file and what to do
        problem = file_problem(exc)
        if problem is None or os.environ.get("ASSAY_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/bold red] {safe(problem)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_errors() -> tuple[tuple[type, ...], ...]:
    """The exception classes of the click that typer runs on: (usage, other, exit, abort, no-args help).
    typer 0.29 vendors its own click (typer._click), whose errors are not click's; older typer used click."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["UsageError"]))
        except ImportError:
            continue

    def found(attr: str, *extra: type) -> tuple[type, ...]:
        return tuple(dict.fromkeys([*(getattr(m, attr) for m in modules if hasattr(m, attr)), *extra]))

    return (found("UsageError"), found("ClickException"), found("Exit", typer.Exit), found("Abort", typer.Abort),
            found("NoArgsIsHelpError"))
