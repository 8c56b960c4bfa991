"""`assay review push`: a dataset version's labeled rows as an Argilla dataset, teachers' candidates as suggestions.

One Argilla dataset per (version, task), named `<name>-<version>-<task>`. A record's id derives from the
row (task + note id), and only ids the server does not hold yet are sent, in bulk, least agreement first,
so a push that is repeated, or rerun after a crash, adds every record exactly once.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any

import polars as pl

from assay.curation.review.client import find_dataset, shown_url
from assay.curation.review.safe import agent_names, field_text
from assay.errors import InputError
from assay.store import DatasetStore, Version

ONLY = ("all", "low-agreement", "synthetic", "duplicates")
TEXT_TASKS = {"summarize": "Summary", "extract": "Extraction (JSON)", "qa": "Questions and answers (JSON)"}
CLASSIFY_KEYS = ("category", "importance", "context")
BATCH = 500  # records per bulk request (the server accepts up to 500 per upsert)


def _category_key(task: str) -> str:
    """The metadata property holding the export's category: Argilla wants setting names unique, and a
    classify dataset already has a `category` question."""
    return "note_category" if task == "classify" else "category"


@dataclass(frozen=True)
class PushOptions:
    task: str | None = None
    workspace: str = "default"
    only: str = "all"
    min_submitted: int = 1
    low_agreement: float = 0.5


def dataset_name(version: Version, task: str) -> str:
    return f"{version.manifest['name']}-{version.manifest['version']}-{task}"


def record_id(task: str, note_id: str) -> str:
    """Stable across pushes: the same row always gets the same Argilla record id."""
    return f"{task}-{hashlib.sha256(note_id.encode()).hexdigest()[:20]}"


def review_rows(version: Version, task: str) -> pl.DataFrame:
    """The rows of `task` that have an output to review, least agreement first (no agreement counts as least)."""
    df = version.data()
    if "task" not in df.columns or df.filter(pl.col("task") == task).is_empty():
        tasks = sorted(t for t in df["task"].unique().to_list() if t) if "task" in df.columns else []
        raise InputError(f"{version.ref} has no rows for task {task!r} (tasks: {', '.join(tasks) or 'none'}); "
                         "label it first with `assay synth`", file=str(version.path), field="task", value=task)
    rows = df.filter((pl.col("task") == task) & pl.col("output").is_not_null())
    if "agreement" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("agreement"))
    return rows.sort(["agreement", "note_id"], nulls_last=False)


def push(store: DatasetStore, ref: str, client, opts: PushOptions) -> dict:
    if opts.only not in ONLY:
        raise InputError(f"--only must be one of {', '.join(ONLY)}", field="only", value=opts.only)
    version = store.get(ref)
    if opts.only == "duplicates":
        from assay.curation.review.duplicates import push_duplicates

        return push_duplicates(version, client, opts.workspace, opts.min_submitted)
    task = opts.task or version.manifest.get("task")
    if not task:
        raise InputError(f"{version.ref} names no task; pass --task", file=str(version.path), field="task")
    rows = task_rows = review_rows(version, task)
    if opts.only == "low-agreement":
        rows = rows.filter(pl.col("agreement").is_null() | (pl.col("agreement") < opts.low_agreement))
    elif opts.only == "synthetic":
        rows = rows.filter(pl.col("synthetic").fill_null(False))
    teachers = list(version.manifest.get("teachers") or [])
    candidates = _candidates(version, task)
    name = dataset_name(version, task)
    labels = _label_sets(version, task_rows) if task == "classify" else {}
    settings = _settings(task, teachers, rows, candidates, opts, labels)
    dataset = ensure_dataset(client, name, opts.workspace, settings)
    stored = {r.id for r in dataset.records(batch_size=1000, with_suggestions=False, with_responses=False)}
    # a server killed between its database commit and its search-index write holds records the UI cannot
    # find; sending every record again (an upsert by id) indexes them, and still adds none twice
    repair = dataset.progress().get("total", 0) != len(stored)
    selected = rows["teacher"].drop_nulls().to_list() if "teacher" in rows.columns else []
    agents = agent_names(list(dict.fromkeys(teachers + selected)))
    records = [_record(row, task, teachers, candidates.get(row["note_id"], {}), agents)
               for row in rows.iter_rows(named=True) if repair or record_id(task, row["note_id"]) not in stored]
    log_records(dataset, records)
    added = sum(r.id not in stored for r in records)
    return {"dataset": name, "added": added, "already": rows.height - added, "total": rows.height,
            "url": f"{shown_url(client)}/dataset/{dataset.id}/annotation-mode"}


def _candidates(version: Version, task: str) -> dict[str, dict[str, dict]]:
    """note id -> teacher -> its candidate row (output, score, chosen), from the synth `candidates` table."""
    table = version.table("candidates")
    out: dict[str, dict[str, dict]] = {}
    if table is None:
        return out
    for row in table.filter(pl.col("task") == task).iter_rows(named=True):
        out.setdefault(row["note_id"], {})[row["teacher"]] = row
    return out


def _settings(task: str, teachers: list[str], rows: pl.DataFrame, candidates: dict, opts: PushOptions,
              labels: dict[str, set[str]]):
    import argilla as rg

    questions: list[Any] = []
    if task == "classify":
        values = _classify_labels(rows, candidates, labels)
        questions += [rg.LabelQuestion(name=key, title=key.capitalize(), labels=values[key])
                      for key in CLASSIFY_KEYS]
    else:
        title = TEXT_TASKS.get(task, "Output")
        # use_markdown off: the UI sets the suggested text as text (v-text), where markdown would render it
        questions.append(rg.TextQuestion(name="output", title=f"{title}: edit the suggestion if it needs it",
                                         required=True, use_markdown=False))
    for n, teacher in enumerate(teachers, 1):
        questions.append(rg.TextQuestion(name=f"candidate_{n}", title=f"Candidate from {teacher} (for reference)",
                                         required=False, use_markdown=False))
    questions += [rg.RatingQuestion(name="quality", title="How good is the final output?", values=[1, 2, 3, 4, 5],
                                    required=False),
                  rg.TextQuestion(name="comment", title="Comment (optional)", required=False, use_markdown=False)]
    return rg.Settings(
        guidelines=("Each record is a note and the output the teachers agreed on best. Fix the output if it is "
                    "wrong, then submit; discard a record whose note should not be trained on. Records come "
                    "least agreement first: the top ones are where the teachers disagreed."),
        # use_markdown off and values escaped: notes and teachers' text show as text (curation/review/safe.py)
        fields=[rg.TextField(name="note", title="Note", use_markdown=False),
                rg.TextField(name="instruction", title="Instruction", use_markdown=False),
                rg.TextField(name="guide", title="What the teachers said", use_markdown=False, required=False)],
        questions=questions,
        metadata=[rg.TermsMetadataProperty(name=_category_key(task), title="Category (from the export)"),
                  rg.TermsMetadataProperty(name="source"),
                  rg.TermsMetadataProperty(name="synthetic"), rg.FloatMetadataProperty(name="agreement"),
                  rg.TermsMetadataProperty(name="teacher")],
        distribution=rg.TaskDistribution(min_submitted=opts.min_submitted),
    )


def _label_sets(version: Version, rows: pl.DataFrame) -> dict[str, set[str]]:
    """The label sets the synth run that made this version asked for (its config in the manifest; the
    defaults otherwise), resolved as synth resolves them: no configured categories means the notes' own."""
    from assay.curation.synth.config import LabelsConfig

    sets = LabelsConfig.model_validate((version.manifest.get("config") or {}).get("labels") or {}).resolve(rows)
    return {"category": set(sets.categories), "importance": set(sets.importance), "context": set(sets.context)}


def _classify_labels(rows: pl.DataFrame, candidates: dict, labels: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every label a reviewer may need: the label sets plus any value a teacher gave. Argilla refuses a label
    question with fewer than two options, so a key with one known value also gets "other"."""
    values = {k: set(v) for k, v in labels.items()}
    outputs = rows["output"].to_list() + [c["output"] for per in candidates.values() for c in per.values()
                                          if c.get("output")]
    for text in outputs:
        parsed = _json_obj(text)
        for key in CLASSIFY_KEYS:
            if parsed.get(key) is not None:
                values[key].add(str(parsed[key]))
    return {k: sorted(v | ({"other"} if len(v) < 2 else set())) for k, v in values.items()}


def _json_obj(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def ensure_dataset(client, name: str, workspace: str, settings):
    """The Argilla dataset `name`, created with `settings` when missing."""
    import argilla as rg

    dataset = find_dataset(client, name, workspace)
    if dataset is not None and dataset._model.status != "ready":
        dataset.delete()  # a push killed while creating left a draft without all its settings; start it over
        dataset = None
    if dataset is None:
        dataset = rg.Dataset(name=name, workspace=workspace, settings=settings, client=client)
        dataset.create()
    return dataset


def log_records(dataset, records: list) -> None:
    """Send `records` in bulk. When the server refuses them before it stored any, the dataset is deleted
    again: an empty dataset left behind looks pushed to reviewers and to `status`, and the next push makes
    it anew; once it holds records it stays, and the next push sends only what is missing."""
    if not records:
        return
    try:
        with warnings.catch_warnings():  # the SDK warns about a user id on records that carry no responses
            warnings.simplefilter("ignore")
            dataset.records.log(records, batch_size=min(BATCH, len(records)))  # (a larger one: a warning)
    except Exception:
        _delete_if_empty(dataset)
        raise


def _delete_if_empty(dataset) -> None:
    try:
        if next(iter(dataset.records(batch_size=1, with_suggestions=False, with_responses=False)), None) is None:
            dataset.delete()
    except Exception:  # the server is gone too (a lost connection): the error being raised says so already,
        pass  # and the next push reuses the dataset as it finds it


def _record(row: dict, task: str, teachers: list[str], cands: dict[str, dict], agents: dict[str, str]):
    """One Argilla record: fields escaped (they render as HTML), suggestions raw (they render as text), agents
    made safe from the teacher specs (Argilla refuses `@` in one), the selected teacher's spec in metadata."""
    import argilla as rg

    selected = row.get("teacher") or ""
    chosen = cands.get(selected, {})
    agent = agents.get(selected)  # None for a row no teacher produced
    suggestions = []
    if task == "classify":
        parsed = _json_obj(row["output"])
        suggestions += [rg.Suggestion(key, str(parsed[key]), agent=agent, score=_score(chosen))
                        for key in CLASSIFY_KEYS if parsed.get(key) is not None]
    else:
        suggestions.append(rg.Suggestion("output", row["output"], agent=agent, score=_score(chosen)))
    lines = [f"agreement: {_fmt(row.get('agreement'))}, selected: {selected or '-'}", ""]
    for n, teacher in enumerate(teachers, 1):
        cand = cands.get(teacher)
        if cand and cand.get("output"):
            suggestions.append(rg.Suggestion(f"candidate_{n}", cand["output"], agent=agents[teacher],
                                             score=_score(cand)))
        lines.append(f"- {teacher}: score {_fmt(_score(cand or {}))}"
                     + ("" if cand and cand.get("output") else f" (no output: {(cand or {}).get('reason') or 'none'})"))
    note = f"{row['title']}\n\n{row['text']}" if row.get("title") else (row.get("text") or "")
    metadata = {_category_key(task): row.get("category") or "none",
                "source": row.get("source_format") or row.get("origin") or "unknown",
                "synthetic": str(bool(row.get("synthetic"))).lower(), "teacher": selected or "none"}
    if row.get("agreement") is not None:
        metadata["agreement"] = float(row["agreement"])
    fields = {"note": note or "(empty note)", "instruction": row.get("instruction") or task, "guide": "\n".join(lines)}
    return rg.Record(id=record_id(task, row["note_id"]), fields={k: field_text(v) for k, v in fields.items()},
                     metadata=metadata, suggestions=suggestions)


def _score(cand: dict) -> float | None:
    score = cand.get("score")
    return None if score is None else max(0.0, min(1.0, float(score)))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
