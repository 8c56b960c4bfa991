"""Rich tables and progress bars for the CLI; library code never prints."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from assay.redact import mask_urls

# C0 and C1 control characters (tab and newline aside), the bidi overrides that reorder what a terminal shows,
# and lone surrogates (undecodable bytes in a file name or argument), which no terminal encoding can write
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROL}]")
_UNSAFE_OR_NEWLINE = re.compile(f"[{_CONTROL}\n]")


def safe(value: object, *, newlines: bool = False) -> str:
    """User data (note text, ids, categories, file names, error messages) ready for rich: markup shows as
    written instead of being interpreted, control characters show as escapes instead of reaching the
    terminal (an ESC sequence could clear or rewrite the screen), and URLs lose their credentials (a teacher
    spec or ARGILLA_API_URL in an error message). Masked here, before rich wraps a long URL over two lines."""
    pattern = _UNSAFE if newlines else _UNSAFE_OR_NEWLINE
    text = pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), mask_urls(str(value)))
    return escape(text)


class RateColumn(ProgressColumn):
    """Items per second (notes, examples, requests) since the task started. An average, not rich's recent
    speed: work that lands in batches (8 predictions at once) would show a burst of millions per second."""

    def render(self, task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        speed = task.completed / elapsed if elapsed and task.completed else None
        return Text("" if speed is None else f"{speed:.2f}/s" if speed < 10 else f"{speed:.0f}/s", style="cyan")


@contextmanager
def progress_tracker(console: Console) -> Iterator[Callable[[str, int | None], Callable[[int], None]]]:
    """Yields track(description, total) -> advance(n); each call adds a bar (a spinner when total is None)."""
    columns = [SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        def track(description: str, total: int | None) -> Callable[[int], None]:
            for earlier in progress.tasks:  # a spinner (no known total) ends when the next piece of work starts
                if earlier.total is None:
                    progress.update(earlier.id, total=earlier.completed)
            task = progress.add_task(mask_urls(description), total=total)  # "predict teacher:<spec>"
            return lambda advance=1: progress.advance(task, advance)
        yield track
        for task in progress.tasks:
            if not task.finished:
                progress.update(task.id, total=task.completed)


def show_curate_run(console: Console, version) -> None:
    m = version.manifest
    table = Table(title=f"{version.ref}  ({m['rows']} rows from {m.get('rows_in', '?')} records)")
    for col in ("step", "in", "kept", "dropped", "dropped by reason"):
        table.add_column(col, justify="right" if col in ("in", "kept", "dropped") else "left")
    for step in m.get("steps", []):
        reasons = ", ".join(f"{r}={n}" for r, n in step["dropped"].items()) or "-"
        table.add_row(safe(step["step"]), str(step["in"]), str(step["kept"]), str(sum(step["dropped"].values())),
                      safe(reasons))
    console.print(table)
    gaps = m.get("gaps", [])
    if gaps:
        console.print(f"[bold]{len(gaps)} coverage gap(s)[/bold] (for synthetic generation): "
                      + safe(", ".join(f"{g['cell']} needs {g['missing']}" for g in gaps)))
    if m.get("possible_duplicates"):
        console.print(f"[bold]{m['possible_duplicates']} possible duplicate pair(s)[/bold] kept for review "
                      f"(assay datasets show {safe(version.ref)})")
    for entry in m.get("length_contract") or []:
        if entry["outside"]:  # curation.contract: references the student would learn the wrong length from
            from assay.curation.contract import describe

            console.print(f"[bold yellow]{safe(describe(entry))}[/bold yellow] (listed in "
                          f"{safe(version.path / 'length_contract.parquet')})")
    splits = m.get("splits", {})
    console.print("splits: " + ", ".join(f"{k}={splits.get(k, 0)}" for k in ("train", "validation", "test")))
    console.print(f"written to {safe(version.path)}")


def show_synth_run(console: Console, run) -> None:
    if run.version is None:  # a dry run: the estimate is all there is
        table = Table(title="dry run: estimated cost (nothing was called or written)")
        for col in ("teacher", "requests", "cached", "to send", "input tokens", "max output tokens", "USD"):
            table.add_column(col)
        lines = {**run.estimate.get("teachers", {}), "total": run.estimate.get("total", {})}
        for spec, line in lines.items():
            cost = f"{line.get('cost_usd', 0):.4f}" if line.get("cost_known", True) else "unknown price"
            table.add_row(safe(spec), *(str(line.get(k, "")) for k in ("requests", "cached", "to_send", "input_tokens",
                                                                   "max_output_tokens")), cost)
        console.print(table)
        return
    m = run.manifest
    table = Table(title=f"{run.version.ref}: task {m['task']}, {m['labeled']} labeled, "
                        f"{m['no_valid_output']} without a valid output")
    for col in ("teacher", "requests", "cache hits", "calls", "failed", "tokens in/out", "USD"):
        table.add_column(col)
    for spec, line in m["calls"].items():
        cost = f"{line['cost_usd']:.4f}" if line["cost_known"] else "unknown price"
        table.add_row(safe(spec), str(line["requests"]), str(line["cache_hits"]), str(line["calls"]),
                      str(line["failed"]), f"{line['input_tokens']}/{line['output_tokens']}", cost)
    console.print(table)
    if m.get("failures"):
        console.print("failed candidates: " + safe(", ".join(f"{r}={n}" for r, n in m["failures"].items())))
    egress = m.get("egress", {})
    console.print(f"left the machine: {egress.get('rows_left_machine', 0)} rows "
                  f"({egress.get('rows_redacted', 0)} redacted, {egress.get('rows_unredacted', 0)} unredacted)")
    for line in m.get("gap_fill") or []:
        console.print(f"gap {safe(line['cell'])}: missing {line['missing']}, asked {line['requested']}, "
                      f"kept {line['synthetic_kept']} new notes, still missing {line['still_missing']}")
    console.print(f"written to {safe(run.version.path)}")


def show_dataset_list(console: Console, store) -> None:
    table = Table(title=f"datasets in {safe(store.root)}")
    for col in ("name", "version", "rows", "step", "parents", "created", "content hash"):
        table.add_column(col)
    for name in store.names():
        for v in store.versions(name):
            m = v.manifest
            cells = (name, m["version"], m["rows"], m["step"], ", ".join(m.get("parents", [])) or "-",
                     m["created_at"], m["content_hash"][:19])
            table.add_row(*map(safe, cells))
    console.print(table)


def show_version(console: Console, version, *, clusters: int = 10, rejects: int = 3) -> None:
    show_curate_run(console, version) if version.manifest.get("steps") else console.print(safe(version.ref))
    m = version.manifest
    if m.get("coverage"):
        cov = Table(title="coverage (after balance)")
        for col in ("cell", "rows", "target", "missing"):
            cov.add_column(col)
        for c in m["coverage"]:
            cov.add_row(safe(c["cell"]), str(c["rows"]), str(c["target"]), str(c["missing"]) if c["missing"] else "")
        console.print(cov)
    table = version.table("clusters")
    if clusters and table is not None and table.height:
        _show_clusters(console, table, version.table("rejects"), clusters)
    possible = version.table("possible_duplicates")
    if clusters and possible is not None and possible.height:
        _show_possible(console, possible, clusters)
    reject_table = version.table("rejects")
    if rejects and reject_table is not None and reject_table.height:
        _show_rejects(console, reject_table, rejects)


def _show_possible(console: Console, pairs, limit: int) -> None:
    t = Table(title=f"{pairs.height} possible duplicate pair(s), both kept; first {min(limit, pairs.height)}")
    for col in ("note_id_a", "note_id_b", "cosine", "word overlap", "text_a", "text_b"):
        t.add_column(col, overflow="fold")
    for row in pairs.head(limit).iter_rows(named=True):
        t.add_row(safe(row["note_id_a"]), safe(row["note_id_b"]), f"{row['cosine']:.2f}",
                  f"{row['word_overlap']:.2f}", safe((row["text_a"] or "")[:60]), safe((row["text_b"] or "")[:60]))
    console.print(t)


def _show_clusters(console: Console, clusters, rejects, limit: int) -> None:
    import polars as pl

    ids = clusters["cluster_id"].unique(maintain_order=True).to_list()
    console.print(f"[bold]{len(ids)} duplicate cluster(s)[/bold], first {min(limit, len(ids))}:")
    texts = {}
    if rejects is not None:
        texts = dict(zip(rejects["note_id"], rejects["text"]))
    for cid in ids[:limit]:
        members = clusters.filter(pl.col("cluster_id") == cid)
        t = Table(title=safe(f"cluster {cid} ({members['kind'][0]})"), show_header=True)
        for col in ("note_id", "kept", "similarity", "why", "text"):
            t.add_column(col, overflow="fold")
        for row in members.iter_rows(named=True):
            text = (texts.get(row["note_id"]) or "")[:80]
            t.add_row(safe(row["note_id"]), "kept" if row["kept"] else "dropped", f"{row['similarity']:.2f}",
                      safe(row["why"]) if row["kept"] else "", safe(text))
        console.print(t)


def _show_rejects(console: Console, rejects, per_reason: int) -> None:
    import polars as pl

    family = rejects.with_columns(pl.col("reason").str.split(":").list.first().alias("family"))
    t = Table(title="rejects (examples per reason)")
    for col in ("step", "reason", "note_id", "where", "text"):
        t.add_column(col, overflow="fold")
    for fam in family["family"].unique(maintain_order=True):
        for row in family.filter(pl.col("family") == fam).head(per_reason).iter_rows(named=True):
            where = f"{row.get('source_file') or ''}:{row.get('source_line') or ''}"
            text = (row["text"] or "")[:70].replace("\n", " ")
            t.add_row(*map(safe, (row["step"], row["reason"], row["note_id"], where, text)))
    console.print(t)


def show_diff(console: Console, a, b, *, examples: int = 5) -> None:
    import polars as pl

    da, db = a.data(), b.data()
    key = ["note_id", "task"]
    cols = [c for c in ("text", "output", "split") if c in da.columns and c in db.columns]
    joined = da.select(*key, *cols).join(db.select(*key, *cols), on=key, how="full", suffix="_b", nulls_equal=True,
                                         coalesce=True)
    added = joined.filter(pl.col("text").is_null() & pl.col("text_b").is_not_null())
    removed = joined.filter(pl.col("text_b").is_null() & pl.col("text").is_not_null())
    changed = joined.filter(pl.col("text").is_not_null() & pl.col("text_b").is_not_null()
                            & pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_b")) for c in cols]))
    console.print(f"{safe(a.ref)} ({da.height} rows) -> {safe(b.ref)} ({db.height} rows): "
                  f"[green]+{added.height} added[/green], [red]-{removed.height} removed[/red], "
                  f"[yellow]~{changed.height} changed[/yellow]")
    for label, frame, col in (("added", added, "text_b"), ("removed", removed, "text"), ("changed", changed, "text_b")):
        for row in frame.head(examples).iter_rows(named=True):
            console.print(f"  {label:8} {safe(row['note_id'])}: {safe(repr((row[col] or '')[:80]))}")
    ma, mb = a.manifest.get("dropped", {}), b.manifest.get("dropped", {})
    if ma or mb:
        console.print("dropped per reason: " + safe(", ".join(
            f"{r} {ma.get(r, 0)}->{mb.get(r, 0)}" for r in sorted(set(ma) | set(mb)))))
    if a.manifest.get("config") != b.manifest.get("config"):
        changed = _dict_diff(a.manifest.get("config", {}), b.manifest.get("config", {}))
        console.print("config differs: " + safe(json.dumps(changed)))


def _dict_diff(x: dict, y: dict, prefix: str = "") -> dict:
    out = {}
    for k in sorted(set(x) | set(y)):
        vx, vy = x.get(k), y.get(k)
        if isinstance(vx, dict) and isinstance(vy, dict):
            out.update(_dict_diff(vx, vy, f"{prefix}{k}."))
        elif vx != vy:
            out[f"{prefix}{k}"] = [vx, vy]
    return out


def show_model_version(console: Console, model) -> None:
    metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in model.metrics.items()
                        if k not in ("verdict", "gate"))
    console.print(f"[green]registered[/green] {safe(model.ref)} (parent {safe(model.parent or '-')}): base "
                  f"{safe(model.base_model)}, data {safe(model.dataset)}, {model.wall_time_s:.0f} s on "
                  f"{safe(model.device)}", highlight=False)
    console.print(f"metrics: {safe(metrics)}", highlight=False)
    if model.metrics.get("verdict"):  # training.versus: the student against the base, red when worse
        colour = {"better": "green", "worse": "bold red"}.get(model.metrics.get("vs_base"), "yellow")
        console.print(f"[{colour}]{safe(model.metrics['verdict'])}[/{colour}]", highlight=False)
    if model.metrics.get("gate"):  # training.gatecheck: a likely NO-SHIP is red before any `assay eval`
        every = model.metrics.get("gate_rules_passed") == model.metrics.get("gate_rules_checked")
        colour = "green" if every else "bold red"
        console.print(f"[{colour}]{safe(model.metrics['gate'])}[/{colour}]", highlight=False)
    console.print(f"written to {safe(model.path)}")


# `assay models list`: names and versions never fold (a one-letter column is unreadable); the long things
# (paths, the metrics, the card) are one line each under the table, so it reads at 80 columns
def show_catalogue(console: Console, rows: list[dict]) -> None:
    table = Table(title="model catalogue", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("cached", no_wrap=True, justify="right")
    table.add_column("source", overflow="fold")
    for row in rows:
        cached = f"{row['size_mb']:.0f} MB" if row["cached"] and row["size_mb"] is not None else (
            "yes" if row["cached"] else "no")
        table.add_row(safe(row["name"]), safe(row["kind"]), cached, safe(row["source"]))
    console.print(table)
    for row in rows:
        if row["cached"] and row["path"]:
            console.print(f"  {safe(row['name'])}: {safe(row['path'])}", highlight=False, soft_wrap=True)


def show_trained(console: Console, rows: list[dict]) -> None:
    if not rows:
        console.print("trained models (registry): none")
        return
    table = Table(title="trained models (registry)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("model", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    table.add_column("recipe", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("eval verdict", overflow="fold")
    for row in rows:
        table.add_row(safe(f"{row['name']}@{row['version']}"), safe((row["parent"] or "-").split("@")[-1]),
                      safe(row["recipe"]), safe(row["dataset"]), safe(row["created_at"][:10]),
                      safe(", ".join(row["verdicts"]) or "not evaluated"))
    console.print(table)
    for row in rows:  # the run's own figures: against the base and the ship gate on validation (training)
        metrics = row["metrics"]
        versus = {"better": "better than", "worse": "worse than"}.get(metrics.get("vs_base"),
                                                                      "not distinguishable from")
        said = [f"{versus} base on validation: ROUGE-L {metrics['validation_rouge_l']:.1f} vs "
                f"{metrics['base_validation_rouge_l']:.1f}" if "vs_base" in metrics else "",
                f"gate {metrics['gate_rules_passed']}/{metrics['gate_rules_checked']} rules on validation"
                if "gate_rules_checked" in metrics else ""]
        said = [s for s in said if s]
        console.print(f"  {safe(row['name'])}@{safe(row['version'])}: "
                      + ("; ".join(safe(s) for s in said) + "; " if said else "")
                      + f"card {safe(Path(row['path']) / 'README.md')}", highlight=False)
