"""`assay review pull` and `status`: answers from Argilla into a new dataset version, and progress.

Pull reads every response of the pushed dataset, keeps each one in the version's `answers` table (so no
answer is ever lost), resolves several answers per record (majority for labels, a rule for text), and
writes the pushed version's rows with `output`, `messages`, `reviewers` and `decision` updated. The
manifest carries Krippendorff's alpha per question and per-annotator counts. The same answers give the
same version: a second pull with nothing new returns the version the first one wrote.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import polars as pl

from assay.curation.review.agreement import TEXT_RULES, krippendorff_alpha, majority, resolve_text
from assay.curation.review.push import CLASSIFY_KEYS, dataset_name, record_id
from assay.errors import AssayError
from assay.store import DatasetRef, DatasetStore, Version, content_hash

ANSWER_SCHEMA = {"record_id": pl.String, "note_id": pl.String, "user": pl.String, "status": pl.String,
                 "question": pl.String, "value": pl.String}


@dataclass
class PullResult:
    version: Version | None  # None when nothing changed since the last pull
    reviewed: int
    decisions: dict[str, int] = field(default_factory=dict)
    annotators: dict[str, dict] = field(default_factory=dict)
    agreement: dict[str, dict] = field(default_factory=dict)
    same_as: str | None = None


def _source(store: DatasetStore, ref: str, client, task: str | None) -> tuple[Version, str]:
    """The version that was pushed. NAME@VERSION: that version, or for a version `pull` wrote and nobody
    pushed, the version it was pulled from. NAME alone: the newest version of NAME that Argilla holds a
    dataset of, not the newest version: curate, synth or pull may have written one since the push."""
    pushed = _remote_names(client)
    parsed = DatasetRef.parse(ref)
    if parsed.version is not None:
        version = store.get(parsed)
        if version.manifest.get("step") == "review" and dataset_name(version, task or version.manifest.get("task")
                                                                      or "") not in pushed:
            version = store.get(version.manifest["review"]["pushed"])
        return version, _task(version, task)
    versions = store.versions(parsed.name) or [store.get(parsed)]  # get: no such dataset, one clear line
    for version in reversed(versions):
        wanted = task or version.manifest.get("task")
        if wanted and dataset_name(version, wanted) in pushed:
            return version, wanted
    newest = versions[-1]
    raise AssayError(f"no version of {parsed.name!r} was pushed to Argilla (looked for "
                     f"{dataset_name(newest, task or newest.manifest.get('task') or '<task>')!r} and earlier "
                     f"versions); push one with `assay review push {parsed.name}`"
                     + ("" if task else ", or pass --task for a version labeled for several tasks"))


def _task(version: Version, task: str | None) -> str:
    task = task or version.manifest.get("task")
    if not task:
        raise AssayError(f"{version.ref} names no task; pass --task")
    return task


def _remote_names(client) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {dataset.name for dataset in client.datasets}


def _remote(client, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dataset in client.datasets:
            if dataset.name == name:
                return dataset
    raise AssayError(f"Argilla has no dataset {name!r}; push it first with `assay review push`")


def _usernames(client) -> dict[str, str]:
    from argilla._exceptions import ForbiddenError

    try:
        return {str(u.id): u.username for u in client.users}
    except ForbiddenError:  # an annotator's key cannot list users; ids still identify reviewers
        return {}


def _responses(client, dataset):
    """(external id, response) for every response of the dataset, over the REST API: the SDK's records
    drop a response that has no values (a discard)."""
    offset, page = 0, 1000
    while True:
        resp = client.http_client.get(f"/api/v1/datasets/{dataset.id}/records",
                                      params={"include": "responses", "offset": offset, "limit": page})
        resp.raise_for_status()
        items = resp.json()["items"]
        for record in items:
            for response in record.get("responses") or []:
                yield record["external_id"], response
        if len(items) < page:
            return
        offset += page


def fetch_answers(client, name: str, note_ids: dict[str, str], ignore_discarded: bool) -> pl.DataFrame:
    """One row per (record, user, question) answer, sorted, values as JSON text; a response with no
    values (a discard) is one row with no question."""
    users = _usernames(client)
    wanted = {"submitted"} if ignore_discarded else {"submitted", "discarded"}
    rows = []
    for external_id, response in _responses(client, _remote(client, name)):
        if response["status"] not in wanted:
            continue
        base = {"record_id": external_id, "note_id": note_ids.get(external_id),
                "user": users.get(response["user_id"], response["user_id"]), "status": response["status"]}
        values = response.get("values") or {}
        rows += [{**base, "question": q, "value": json.dumps(v.get("value"), ensure_ascii=False)}
                 for q, v in values.items()] or [{**base, "question": None, "value": None}]
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA).sort("record_id", "user", "question", nulls_last=True)


def pull(store: DatasetStore, ref: str, client, *, task: str | None = None, text_rule: str = "majority",
         ignore_discarded: bool = False) -> PullResult:
    """A record every reviewer discarded is `rejected` (training skips it): a discard is how a reviewer
    says a note should not be trained on. `ignore_discarded` leaves such rows as they were pushed."""
    if text_rule not in TEXT_RULES:
        raise AssayError(f"--text-rule must be one of {', '.join(TEXT_RULES)}, not {text_rule!r}")
    source, task = _source(store, ref, client, task)
    data = source.data()
    ids = {record_id(task, n): n for n in data.filter(pl.col("task") == task)["note_id"].to_list()}
    answers = fetch_answers(client, dataset_name(source, task), ids, ignore_discarded)
    if answers.is_empty():
        return PullResult(None, 0, same_as=None)
    per_record: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))  # note -> user -> {q: v}
    statuses: dict[str, dict[str, str]] = defaultdict(dict)
    for row in answers.iter_rows(named=True):
        if row["note_id"] is None:
            continue  # a record this version does not hold (pushed from elsewhere); kept in `answers` only
        statuses[row["note_id"]][row["user"]] = row["status"]
        answered = per_record[row["note_id"]][row["user"]]
        if row["question"] is not None:
            answered[row["question"]] = json.loads(row["value"])

    updates, decisions, annotators = {}, Counter(), defaultdict(Counter)
    originals = dict(zip(*data.filter(pl.col("task") == task).select("note_id", "output").to_dict(as_series=False)
                         .values()))
    for note_id, by_user in per_record.items():
        original = originals.get(note_id)
        submitted = {u: v for u, v in by_user.items() if statuses[note_id][u] == "submitted"}
        for user, status in statuses[note_id].items():
            annotators[user][status] += 1
        if not submitted:
            decisions["rejected"] += 1
            updates[note_id] = {"output": original, "decision": "rejected", "reviewers": sorted(by_user),
                                "review_rating": None}
            continue
        output = _resolve(task, [v for v in submitted.values()], text_rule, original)
        decision = "accepted" if (output or "").strip() == (original or "").strip() else "corrected"
        for user, values in submitted.items():
            mine = _resolve(task, [values], text_rule, original)
            annotators[user]["corrected" if (mine or "").strip() != (original or "").strip() else "accepted"] += 1
        decisions[decision] += 1
        ratings = [v["quality"] for v in submitted.values() if isinstance(v.get("quality"), (int, float))]
        updates[note_id] = {"output": output if decision == "corrected" else original, "decision": decision,
                            "reviewers": sorted(by_user),
                            "review_rating": sum(ratings) / len(ratings) if ratings else None}

    reviewed = _apply(data, task, updates)
    agreement = _agreement(task, per_record, statuses)
    counts = {u: dict(sorted(c.items())) for u, c in sorted(annotators.items())}
    review = {"pushed": source.ref, "task": task, "argilla_dataset": dataset_name(source, task),
              "answers": answers.height, "reviewed": len(updates), "decisions": dict(sorted(decisions.items())),
              "annotators": counts, "agreement": agreement, "answers_hash": content_hash(answers)}
    result = PullResult(None, len(updates), dict(sorted(decisions.items())), counts, agreement)
    for earlier in reversed(store.versions(source.manifest["name"])):
        m = earlier.manifest
        if (m.get("step") == "review" and m["review"].get("pushed") == source.ref
                and m["review"].get("answers_hash") == review["answers_hash"]
                and m.get("content_hash") == content_hash(reviewed)):
            result.same_as = earlier.ref
            return result
    tables = {"answers": answers}
    for name in source.manifest.get("tables", []):
        if name not in tables and (table := source.table(name)) is not None:
            tables[name] = table
    result.version = store.write(source.manifest["name"], reviewed, step="review", parents=[source.ref],
                                 config={"task": task, "text_rule": text_rule, "ignore_discarded": ignore_discarded},
                                 tables=tables, review=review, task=task,
                                 review_coverage={"rows": data.filter(pl.col("task") == task).height,
                                                  "reviewed": len(updates)})
    return result


def _resolve(task: str, answers: list[dict], text_rule: str, original: str | None) -> str | None:
    if task == "classify":
        try:
            value = json.loads(original or "{}")
        except json.JSONDecodeError:
            value = {}
        for key in CLASSIFY_KEYS:
            given = [a[key] for a in answers if a.get(key) is not None]
            if given:
                value[key] = majority(given, prefer_not=value.get(key))
        return json.dumps(value, ensure_ascii=False)
    texts = [a["output"] for a in answers if isinstance(a.get("output"), str) and a["output"].strip()]
    return resolve_text(texts, text_rule, original) if texts else original


def _apply(data: pl.DataFrame, task: str, updates: dict[str, dict]) -> pl.DataFrame:
    """The pushed rows with the reviewed columns set; `messages` carries the reviewed answer, since training
    reads a row's messages before its output."""
    rows = []
    for row in data.iter_rows(named=True):
        if row.get("task") == task and row["note_id"] in updates:
            up = updates[row["note_id"]]
            row = {**row, "output": up["output"], "decision": up["decision"], "reviewers": up["reviewers"],
                   "review_rating": up["review_rating"], "messages": _with_answer(row.get("messages"), up["output"])}
        else:
            row = {**row, "review_rating": None}
        rows.append(row)
    return pl.DataFrame(rows, schema={**data.schema, "review_rating": pl.Float64}, orient="row")


def _with_answer(messages: str | None, output: str | None) -> str | None:
    if not messages or output is None:
        return messages
    turns = json.loads(messages)
    if turns and turns[-1].get("role") == "assistant":
        turns[-1]["content"] = output
    return json.dumps(turns, ensure_ascii=False)


def _agreement(task: str, per_record: dict, statuses: dict) -> dict[str, dict]:
    questions = list(CLASSIFY_KEYS) if task == "classify" else ["output"]
    out = {}
    for question, metric in [(q, "nominal") for q in questions] + [("quality", "interval")]:
        units = []
        for note_id, by_user in per_record.items():
            values = [v[question] for u, v in sorted(by_user.items())
                      if statuses[note_id][u] == "submitted" and v.get(question) is not None]
            units.append([" ".join(str(x).split()) for x in values] if metric == "nominal" else values)
        alpha = krippendorff_alpha(units, metric)
        out[question] = {"metric": f"krippendorff_alpha_{metric}", "value": None if alpha is None else round(alpha, 4),
                         "items": sum(len(u) >= 2 for u in units)}
    return out


def progress(store: DatasetStore, ref: str, client, task: str | None = None) -> dict:
    """Records completed, and per annotator: submitted/discarded/draft and answers per question."""
    source, task = _source(store, ref, client, task)
    name = dataset_name(source, task)
    dataset = _remote(client, name)
    users = _usernames(client)
    questions = [q.name for q in dataset.settings.questions]
    per_user: dict[str, dict] = {}
    for _, response in _responses(client, dataset):
        user = users.get(response["user_id"], response["user_id"])
        row = per_user.setdefault(user, {"submitted": 0, "discarded": 0, "draft": 0, "questions": Counter()})
        row[response["status"]] += 1
        for question, value in (response.get("values") or {}).items():
            if value.get("value") is not None:
                row["questions"][question] += 1
    overall = dataset.progress()
    return {"dataset": name, "total": overall.get("total", 0), "completed": overall.get("completed", 0),
            "min_submitted": dataset.settings.distribution.min_submitted, "questions": questions,
            "annotators": per_user}
