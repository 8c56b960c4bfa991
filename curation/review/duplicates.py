"""`assay review push --only duplicates`: the pairs semantic dedupe was not sure of (the version's
`possible_duplicates` table) as a "same note?" question, so a person decides instead of a threshold.

`assay review pull-duplicates` brings the answers back into the project state (SQLite table
`duplicate_reviews`, keyed by the pair's note ids, so they hold across dataset versions), and the next
`assay curate` reads them there: a pair called the same note loses one note (`reviewed_duplicate_of:<id>`),
a pair called different is never dropped by the semantic pass (curation/dedupe.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from datetime import datetime, timezone

import polars as pl

from assay.errors import AssayError
from assay.store import DatasetStore, Version

CHOICES = {"keep_both": "Different notes: keep both", "keep_a": "Same note: keep A", "keep_b": "Same note: keep B"}


def pair_id(a: str, b: str) -> str:
    return "dup-" + hashlib.sha256(f"{a}\x00{b}".encode()).hexdigest()[:20]


def push_duplicates(version: Version, client, workspace: str, min_submitted: int) -> dict:
    import argilla as rg

    from assay.curation.review.push import ensure_dataset, log_records
    from assay.curation.review.safe import field_text

    pairs = version.table("possible_duplicates")
    if pairs is None:
        raise AssayError(f"{version.ref} has no possible_duplicates table (curate writes one when semantic "
                         "dedupe finds pairs it is not sure of)")
    name = f"{version.manifest['name']}-{version.manifest['version']}-duplicates"
    settings = rg.Settings(
        guidelines="Two notes that may be the same. Keep both when they say different things.",
        fields=[rg.TextField(name="note_a", title="Note A", use_markdown=False),  # escaped below: see safe.py
                rg.TextField(name="note_b", title="Note B", use_markdown=False)],
        questions=[rg.LabelQuestion(name="same_note", title="Same note?", labels=CHOICES),
                   rg.TextQuestion(name="comment", title="Comment (optional)", required=False)],
        metadata=[rg.FloatMetadataProperty(name="cosine"), rg.FloatMetadataProperty(name="word_overlap")],
        distribution=rg.TaskDistribution(min_submitted=min_submitted))
    dataset = ensure_dataset(client, name, workspace, settings)
    stored = {r.id for r in dataset.records(batch_size=1000, with_suggestions=False, with_responses=False)}
    records = [rg.Record(id=pair_id(row["note_id_a"], row["note_id_b"]),
                         fields={"note_a": field_text(row["text_a"] or "(empty)"),
                                 "note_b": field_text(row["text_b"] or "(empty)")},
                         metadata={"cosine": float(row["cosine"]), "word_overlap": float(row["word_overlap"])})
               for row in pairs.iter_rows(named=True) if pair_id(row["note_id_a"], row["note_id_b"]) not in stored]
    log_records(dataset, records)
    return {"dataset": name, "added": len(records), "already": pairs.height - len(records), "total": pairs.height,
            "url": f"{str(client.api_url).rstrip('/')}/dataset/{dataset.id}/annotation-mode"}


DECISION_SCHEMA = {"note_id_a": pl.String, "note_id_b": pl.String, "decision": pl.String, "keep": pl.String,
                   "votes": pl.String, "reviewers": pl.String, "argilla_dataset": pl.String, "pulled_at": pl.String}


def resolve(votes: Counter, a: str, b: str) -> tuple[str, str | None]:
    """(decision, kept note) from submitted answers. A tie between "different" and "same" keeps both: a
    note is only lost when most reviewers said so. A tie between keep A and keep B leaves the pick to
    dedupe's own rule (the longer text)."""
    same = votes["keep_a"] + votes["keep_b"]
    if same <= votes["keep_both"]:
        return "different", None
    if votes["keep_a"] == votes["keep_b"]:
        return "same", None
    return "same", a if votes["keep_a"] > votes["keep_b"] else b


def pull_duplicates(store: DatasetStore, ref: str, client, project) -> dict:
    """Submitted "same note?" answers of `ref`'s duplicates dataset into the project state; returns counts."""
    from assay.curation.review.pull import _remote, _responses, _usernames

    version = store.get(ref)
    pairs = version.table("possible_duplicates")
    if pairs is None:
        raise AssayError(f"{version.ref} has no possible_duplicates table; nothing was pushed from it")
    name = f"{version.manifest['name']}-{version.manifest['version']}-duplicates"
    by_id = {pair_id(a, b): (a, b) for a, b in pairs.select("note_id_a", "note_id_b").iter_rows()}
    users = _usernames(client)
    answers: dict[str, dict[str, str]] = {}  # pair id -> user -> choice
    for external_id, response in _responses(client, _remote(client, name)):
        choice = ((response.get("values") or {}).get("same_note") or {}).get("value")
        if response["status"] == "submitted" and external_id in by_id and choice in CHOICES:
            answers.setdefault(external_id, {})[users.get(response["user_id"], response["user_id"])] = choice
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows, decisions, annotators = [], Counter(), Counter()
    for pid, by_user in sorted(answers.items()):
        a, b = by_id[pid]
        votes = Counter(by_user.values())
        decision, keep = resolve(votes, a, b)
        decisions[decision] += 1
        annotators.update(by_user.keys())
        rows.append((a, b, decision, keep, json.dumps(dict(sorted(votes.items()))), json.dumps(sorted(by_user)),
                     name, now))
    with contextlib.closing(project.db()) as conn:
        conn.execute("BEGIN")  # all answers of one pull or none
        conn.executemany("INSERT OR REPLACE INTO duplicate_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    return {"dataset": name, "pairs": pairs.height, "answered": len(rows), "decisions": dict(sorted(decisions.items())),
            "annotators": dict(sorted(annotators.items()))}


def load_decisions(project) -> pl.DataFrame | None:
    """Every pulled duplicate decision of the project (for `assay curate`), or None when there is none."""
    if not (project.state / "state.db").exists():
        return None
    with contextlib.closing(project.db()) as conn:
        rows = [tuple(r) for r in conn.execute(f"SELECT {', '.join(DECISION_SCHEMA)} FROM duplicate_reviews "
                                               "ORDER BY note_id_a, note_id_b")]
    return pl.DataFrame(rows, schema=DECISION_SCHEMA, orient="row") if rows else None
