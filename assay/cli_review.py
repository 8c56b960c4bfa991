"""`assay review ...`: human review in Argilla (serve, push, pull, status). Heavy imports stay inside commands."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

review_app = typer.Typer(help="Human review in Argilla: serve, push candidates, pull answers, progress.",
                         no_args_is_help=True)
console = Console()


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False)


@review_app.command("serve")
def serve(port: int = typer.Option(6900, "--port", "-p", help="Port of the Argilla server (API and UI)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes it to the network."),
          stop: bool = typer.Option(False, "--stop", help="Stop the embedded server of this project.")) -> None:
    """Run an embedded Argilla (SQLite + Redis, no Docker) in the foreground until Ctrl-C."""
    from assay.curation.review import server
    from assay.project import Project

    project = Project.current()
    if stop:
        _say("stopped the embedded Argilla" if server.stop(project) else "no embedded Argilla is running")
        return
    server.serve(project, host=host, port=port, log=_say)


@review_app.command("push")
def push(dataset: str = typer.Argument(..., help="NAME or NAME@VERSION of a dataset made by `assay synth`."),
         task: Optional[str] = typer.Option(None, help="The task to review (default: the version's task)."),
         workspace: str = typer.Option("default", help="Argilla workspace."),
         only: str = typer.Option("all", help="all, low-agreement, synthetic or duplicates."),
         min_submitted: int = typer.Option(1, "--min-submitted", help="Answers a record needs to count as done."),
         low_agreement: float = typer.Option(0.5, help="With --only low-agreement: push rows below this agreement."),
         argilla_url: Optional[str] = typer.Option(None, "--argilla-url", help="Overrides ARGILLA_API_URL.")) -> None:
    """Send a dataset version's rows, with each teacher's candidate as a suggestion, to Argilla."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.push import PushOptions
    from assay.curation.review.push import push as run_push
    from assay.project import Project
    from assay.store import DatasetStore

    client = _client(argilla_url)
    with one_line_errors(client):
        result = run_push(DatasetStore(Project.current().datasets), dataset, client,
                          PushOptions(task=task, workspace=workspace, only=only, min_submitted=min_submitted,
                                      low_agreement=low_agreement))
    _say(f"pushed {result['added']} new record(s) to Argilla dataset {result['dataset']!r} "
         f"({result['already']} already there, {result['total']} selected); {result['url']}")


@review_app.command("pull")
def pull(dataset: str = typer.Argument(..., help="NAME (its newest pushed version) or NAME@VERSION that was pushed."),
         task: Optional[str] = typer.Option(None, help="The task that was pushed (default: the version's task)."),
         text_rule: str = typer.Option("majority", help="How several answers to a text question resolve: "
                                                        "majority or longest."),
         ignore_discarded: bool = typer.Option(False, "--ignore-discarded",
                                               help="Leave records every reviewer discarded as pushed (by "
                                                    "default they count as rejected and training skips them)."),
         argilla_url: Optional[str] = typer.Option(None, "--argilla-url", help="Overrides ARGILLA_API_URL.")) -> None:
    """Fetch submitted answers into a new dataset version (reviewers, decisions, corrected outputs, agreement)."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.pull import pull as run_pull
    from assay.project import Project
    from assay.store import DatasetStore

    client = _client(argilla_url)
    with one_line_errors(client):
        result = run_pull(DatasetStore(Project.current().datasets), dataset, client, task=task,
                          text_rule=text_rule, ignore_discarded=ignore_discarded)
    if result.version is None:
        _say(f"nothing new: {result.reviewed} reviewed row(s), already in {result.same_as}" if result.same_as
             else "no submitted answers yet")
        return
    _say(f"wrote {result.version.ref}: {result.reviewed} reviewed row(s) "
         f"({', '.join(f'{n} {k}' for k, n in sorted(result.decisions.items())) or 'none'}) from "
         f"{len(result.annotators)} annotator(s)")
    for question, figure in sorted(result.agreement.items()):
        _say(f"  agreement {question}: {figure['metric']} = {figure['value']} over {figure['items']} item(s)")


@review_app.command("push-eval")
def push_eval(run: str = typer.Argument(..., help="An eval run id (reports/<run>) or its folder."),
              against: str = typer.Option("base", help="The baseline to compare with: a model key of the run "
                                                       "(base, previous, rule:lead, teacher:...)."),
              workspace: str = typer.Option("default", help="Argilla workspace."),
              min_submitted: int = typer.Option(1, "--min-submitted", help="Answers a record needs to count as done."),
              argilla_url: Optional[str] = typer.Option(None, "--argilla-url",
                                                        help="Overrides ARGILLA_API_URL.")) -> None:
    """Send an eval run's examples as blind A/B preference questions: candidate vs a baseline."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.human_eval import push_eval as run_push
    from assay.project import Project
    from assay.runlog import run_log

    project = Project.current()
    client = _client(argilla_url)
    # the SDK's batch-size notice and its "Sending records..." bar go to the log, as in `assay run`
    with run_log(project) as log_path, one_line_errors(client):
        result = run_push(project, run, client, against=against, workspace=workspace, min_submitted=min_submitted)
    _say(f"pushed {result['added']} new record(s) to Argilla dataset {result['dataset']!r} "
         f"({result['already']} already there, {result['total']} to compare); {result['url']}")
    if result["identical"]:
        _say(f"not sent: {result['identical']} example(s) whose two outputs are identical (they count as ties)")
    if result["skipped"]:
        _say(f"not sent: {result['skipped']} example(s) without both outputs (not compared)")
    _say(f"which side is the candidate is kept in {result['side_file']}, not in Argilla")
    _say(f"log: {log_path}")


@review_app.command("pull-eval")
def pull_eval(run: str = typer.Argument(..., help="An eval run id (reports/<run>) or its folder."),
              against: str = typer.Option("base", help="The baseline it was pushed against."),
              argilla_url: Optional[str] = typer.Option(None, "--argilla-url",
                                                        help="Overrides ARGILLA_API_URL.")) -> None:
    """Fetch the preferences: a human win rate with a 95% CI in the run's results.json and report."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.human_eval import pull_eval as run_pull
    from assay.project import Project

    client = _client(argilla_url)
    with one_line_errors(client):
        human = run_pull(Project.current(), run, client, against=against)
    if not human["answered"]:
        _say(f"no submitted answers yet in {human['argilla_dataset']!r}")
        return
    for line in human_lines(human):
        _say(line)
    for user, counts in human["annotators"].items():
        _say(f"  {user}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


def human_lines(h: dict) -> list[str]:
    """results["human"] said as counted: the people's answers, the automatic ties, then the rate and its base."""
    identical = (f"; {h['identical']} example(s) with identical outputs were not sent and count as ties"
                 if h["identical"] else "")
    return [f"{h['responses']} blind answer(s) from {len(h['annotators'])} annotator(s): the candidate preferred "
            f"in {h['wins']}, {h['baseline_label']} in {h['losses']}, {h['ties']} tie(s){identical}",
            f"human win rate vs {h['baseline_label']} with ties as half: {h['win_rate']:.1%} (95% CI "
            f"{h['ci_low']:.1%} to {h['ci_high']:.1%}) over {h['n']} of {h['examples']} example(s) "
            f"({h['answered']} answered, {h['identical']} identical)"]


@review_app.command("pull-duplicates")
def pull_duplicates(dataset: str = typer.Argument(..., help="NAME@VERSION whose duplicates were pushed."),
                    argilla_url: Optional[str] = typer.Option(None, "--argilla-url",
                                                              help="Overrides ARGILLA_API_URL.")) -> None:
    """Fetch "same note?" answers into the project state; the next `assay curate` follows them."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.duplicates import pull_duplicates as run_pull
    from assay.project import Project
    from assay.store import DatasetStore

    project = Project.current()
    client = _client(argilla_url)
    with one_line_errors(client):
        result = run_pull(DatasetStore(project.datasets), dataset, client, project)
    decided = ", ".join(f"{n} {k}" for k, n in result["decisions"].items()) or "none"
    _say(f"{result['answered']} of {result['pairs']} pair(s) answered in {result['dataset']!r} ({decided}) from "
         f"{len(result['annotators'])} annotator(s); the next `assay curate` follows them")


@review_app.command("status")
def status(dataset: str = typer.Argument(..., help="NAME (its newest pushed version) or NAME@VERSION that was pushed."),
           task: Optional[str] = typer.Option(None, help="The task that was pushed (default: the version's task)."),
           argilla_url: Optional[str] = typer.Option(None, "--argilla-url", help="Overrides ARGILLA_API_URL.")) -> None:
    """Progress per annotator and per question."""
    from rich.table import Table

    from assay.curation.review.client import one_line_errors
    from assay.curation.review.pull import progress
    from assay.project import Project
    from assay.store import DatasetStore

    client = _client(argilla_url)
    with one_line_errors(client):
        report = progress(DatasetStore(Project.current().datasets), dataset, client, task=task)
    _say(f"{report['dataset']}: {report['completed']}/{report['total']} record(s) completed "
         f"(min_submitted={report['min_submitted']})")
    table = Table("annotator", "submitted", "discarded", "draft", *report["questions"])
    for name, row in sorted(report["annotators"].items()):
        table.add_row(name, *(str(row[k]) for k in ("submitted", "discarded", "draft")),
                      *(str(row["questions"].get(q, 0)) for q in report["questions"]))
    console.print(table)


users_app = typer.Typer(help="Reviewers' accounts on the Argilla server.", no_args_is_help=True)
review_app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(name: str = typer.Argument(..., help="The reviewer's username."),
              role: str = typer.Option("annotator", help="annotator (answers records) or admin (also manages "
                                                         "datasets)."),
              workspace: str = typer.Option("default", help="Argilla workspace the reviewer joins."),
              argilla_url: Optional[str] = typer.Option(None, "--argilla-url",
                                                        help="Overrides ARGILLA_API_URL.")) -> None:
    """Create a reviewer with a generated password (shown once) in a workspace."""
    from assay.curation.review.client import one_line_errors
    from assay.curation.review.users import add_user

    client = _client(argilla_url)
    with one_line_errors(client):
        user = add_user(client, name, role=role, workspace=workspace)
    _say(f"added {user['role']} {user['username']!r} to workspace {user['workspace']!r} with password "
         f"{user['password']!r} (shown once: pass it on to them); they sign in at {str(client.api_url).rstrip('/')}")


def _client(argilla_url: str | None):
    import os

    from assay.curation.review.client import connect

    if argilla_url:
        os.environ["ARGILLA_API_URL"] = argilla_url
    return connect()
