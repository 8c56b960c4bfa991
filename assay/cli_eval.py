"""`assay eval` and `assay report`: thin wrappers over evals.run and evals.report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def eval_cmd(
    suite: str = typer.Argument(..., help="A suite YAML (evals/suites/summarize.yaml) or a shipped suite's name."),
    model: str = typer.Option(..., "--model", "-m", help="NAME@VERSION of a trained model (NAME: its latest)."),
    against: Optional[str] = typer.Option(None, "--against", help="Baselines, comma-separated: previous, base, "
                                          "rule:lead, teacher:local, openai:gpt-4o-mini ... (default: the suite's)."),
    gate: Optional[Path] = typer.Option(None, "--gate", help="Ship rules (evals/gates/default.yaml): exit 0 for "
                                        "SHIP, 4 for NO-SHIP."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides of the suite, e.g. data.limit=10"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show third-party progress bars and warnings."),
) -> None:
    """Evaluate a model against its baselines on a suite; writes reports/<model>-<version>-<suite>/index.html."""
    import sys

    from assay.display import progress_tracker
    from assay.evals.gate import EXIT_NO_SHIP, NO_SHIP, load_gate
    from assay.evals.report import write_report
    from assay.evals.run import evaluate
    from assay.evals.suite import load_suite
    from assay.project import Project
    from assay.runlog import run_log

    cfg = load_suite(suite, overrides or [])
    rules = load_gate(gate) if gate else None
    baselines = [a.strip() for a in against.split(",") if a.strip()] if against is not None else None
    term = Console(file=sys.stdout)  # bound now: inside run_log sys.stdout is the log (as in `assay run`)
    with run_log(Project.current(), verbose=verbose) as log_path, progress_tracker(term) as track:
        run = evaluate(cfg, model, against=baselines, gate=rules, track=track)
        write_report(run.results, run.folder)
    show_eval(run.results, run.folder, term)
    term.print(f"log: {log_path}", highlight=False)
    if run.verdict == NO_SHIP:
        raise typer.Exit(EXIT_NO_SHIP)


def report_cmd(
    runs: Optional[list[str]] = typer.Argument(None, help="An eval run id (reports/<id>) or its folder; "
                                                          "two with --compare."),
    compare: bool = typer.Option(False, "--compare", help="Compare two runs of one suite: --compare RUN_A RUN_B."),
) -> None:
    """Rebuild a run's HTML report from its stored results, or compare two runs side by side."""
    from assay.errors import AssayError
    from assay.evals.report import compare_html, write_report
    from assay.evals.run import compare_folder, load_results
    from assay.project import Project

    project = Project.current()
    runs = runs or []
    if compare:
        if len(runs) != 2:
            raise AssayError(f"--compare takes exactly two runs (got {len(runs)}): assay report --compare RUN_A RUN_B")
        (a, _), (b, _) = load_results(project, runs[0]), load_results(project, runs[1])
        html = compare_html(a, b)  # refused before anything is written when the runs cannot be compared
        out = compare_folder(project, a["run_id"], b["run_id"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.html").write_text(html, encoding="utf-8")
        console.print(f"report: {out / 'index.html'}", highlight=False, soft_wrap=True)  # one line, to copy
        return
    if len(runs) != 1:
        raise AssayError("name one run (assay report RUN), or two with --compare (assay report --compare RUN_A RUN_B)")
    results, folder = load_results(project, runs[0])
    path = write_report(results, folder)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)


def show_eval(results: dict, folder: Path, console: Console = console) -> None:
    """The headline table, the verdict and where the report is (each value through `safe`: a teacher
    contestant's label is its spec, whose URL may carry credentials)."""
    from assay.display import safe

    models = results["models"]
    table = Table(title=safe(f"{results['models'][0]['label']} on {results['suite']['name']} "
                             f"v{results['suite']['version']}: {results['suite']['data']}"))
    table.add_column("metric")
    for m in models:
        table.add_column(safe(m["label"]), justify="right")
    for info in results["metrics"]:
        row = [info["label"]]
        for m in models:
            v = results["scores"][m["key"]].get(info["name"])
            row.append("n/a" if v is None else f"{v * info['scale']:.2f}")
        table.add_row(*row)
    console.print(table)
    head = results["suite"]["headline"]
    scale = next(i["scale"] for i in results["metrics"] if i["name"] == head)
    for c in results["comparisons"]:
        if c["metric"] != head or c["ci_low"] is None:
            continue
        verdict = c.get("verdict", "n/a")  # optional in results.json (evals/results.py: Comparison)
        colour = {"better": "green", "worse": "red"}.get(verdict, "yellow")
        label = next(m["label"] for m in models if m["key"] == c["baseline"])
        console.print(f"[{colour}]{head} vs {safe(label)}: {c['delta'] * scale:+.2f} "
                      f"(95% CI {c['ci_low'] * scale:+.2f} to {c['ci_high'] * scale:+.2f}): {verdict}[/{colour}]")
    made = results.get("predictions", {})
    console.print("predictions: " + ", ".join(
        f"{safe(m['label'])} {made[m['key']].get('generated', made[m['key']].get('calls', 0))} new, "
        f"{made[m['key']]['reused']} cached" for m in models if m["key"] in made), highlight=False)
    for warning in results["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {safe(warning)}")
    verdict = results["verdict"]
    colour = {"SHIP": "bold green", "NO-SHIP": "bold red"}.get(verdict["decision"], "bold")
    console.print(f"[{colour}]{verdict['decision']}[/{colour}] {safe(verdict['summary'])}")
    console.print(f"report: {folder / 'index.html'}", highlight=False)
