"""`assay review push-eval` / `pull-eval`: people compare an eval run's candidate with a baseline, blind.

    reports/<run>/results.json ──push──▶ Argilla: note, output A, output B; "which is better?" (A / B / tie)
        and a reason ──pull──▶ candidate win / baseline win / tie per answer ──▶ win rate (a tie counts
        half) with a bootstrap 95% CI over examples ──▶ results["human"] and the rebuilt index.html

An example whose two outputs are the same text is a tie by construction: asking a person would spend their
time on a question with one answer, so it is not sent, and pull counts it as a tie (and says how many).

Blind: which side is the candidate is drawn per example with a fixed seed (evals.judge.positions: half the
examples each way, shuffled) and kept only on our side, in `<state>/human-eval/<dataset>.json`. Argilla
metadata will not do: the UI offers metadata as filters, and any annotator's key reads a record's
metadata over the API, so the mapping must not reach the server at all; nor do record ids carry it (a
hash of run, baseline and example id). Record ids are stable, so pushing twice adds nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from assay.curation.review.client import shown_url
from assay.curation.review.push import ensure_dataset, log_records
from assay.curation.review.safe import field_text
from assay.errors import AssayError, InputError
from assay.evals.judge import positions, win_rate_ci
from assay.evals.run import load_results
from assay.project import Project
from assay.redact import mask_urls_in

LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie: about as good"}
SCORE = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0}
SEED = 0


def dataset_name(run_id: str, against: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{run_id}-human-vs-{against}")[:200]


def record_id(run_id: str, against: str, example_id: str) -> str:
    return "pref-" + hashlib.sha256(f"{run_id}\x00{against}\x00{example_id}".encode()).hexdigest()[:20]


def side_file(project: Project, name: str) -> Path:
    return project.state / "human-eval" / f"{name}.json"


def _baseline(results: dict, against: str, where: Path) -> str:
    keys = [m["key"] for m in results["models"] if m["key"] != results["candidate"]]
    if against not in keys:
        raise InputError(f"--against must be a baseline of this run ({', '.join(keys) or 'none'})",
                         file=str(where / "results.json"), field="against", value=against)
    return against


def push_eval(project: Project, run: str, client, *, against: str = "base", workspace: str = "default",
              min_submitted: int = 1, seed: int = SEED) -> dict:
    """Send each example with both outputs to Argilla as a blind A/B question; returns counts."""
    import argilla as rg


    results, folder = load_results(project, run)
    against = _baseline(results, against, folder)
    cand, run_id = results["candidate"], results["run_id"]
    split = comparable(results, against)
    usable = split["sent"]
    name = dataset_name(run_id, against)
    mapping = _mapping(project, name, run_id, cand, against, seed, [ex["id"] for ex in usable])
    settings = rg.Settings(
        guidelines=("Each record is a note and two outputs for it, A and B, from two models; which is which is "
                    "hidden and changes from record to record. Pick the better one (or a tie) and say why."),
        # notes and model outputs are untrusted: shown as text (escaped, no markdown), never as markup
        fields=[rg.TextField(name="note", title="Note", use_markdown=False),
                rg.TextField(name="output_a", title="Output A", use_markdown=False),
                rg.TextField(name="output_b", title="Output B", use_markdown=False)],
        questions=[rg.LabelQuestion(name="preference", title="Which output is better?", labels=LABELS),
                   rg.TextQuestion(name="reason", title="Why? (optional)", required=False)],
        metadata=[rg.TermsMetadataProperty(name="category")],
        distribution=rg.TaskDistribution(min_submitted=min_submitted))
    dataset = ensure_dataset(client, name, workspace, settings)
    stored = {r.id for r in dataset.records(batch_size=1000, with_suggestions=False, with_responses=False)}
    records = []
    for ex in usable:
        rid = record_id(run_id, against, ex["id"])
        if rid in stored:
            continue
        first, second = ex["predictions"][cand], ex["predictions"][against]
        a, b = (first, second) if mapping["positions"][ex["id"]] == "A" else (second, first)
        note = f"{ex['title']}\n\n{ex['text']}" if ex.get("title") else (ex.get("text") or "(empty note)")
        records.append(rg.Record(id=rid, fields={"note": field_text(note), "output_a": field_text(a),
                                                 "output_b": field_text(b)},
                                 metadata={"category": ex.get("category") or "none"}))
    log_records(dataset, records)
    return {"dataset": name, "added": len(records), "already": len(usable) - len(records), "total": len(usable),
            "identical": len(split["identical"]), "skipped": len(split["missing"]),
            "side_file": str(side_file(project, name)),
            "url": f"{shown_url(client)}/dataset/{dataset.id}/annotation-mode"}


def comparable(results: dict, against: str) -> dict[str, list]:
    """The run's examples in three groups: "sent" to people (both outputs, and they differ), "identical"
    (ids: both outputs the same text, a tie without asking) and "missing" (ids: an output is absent)."""
    cand = results["candidate"]
    out: dict[str, list] = {"sent": [], "identical": [], "missing": []}
    for ex in results["examples"]:
        preds = ex.get("predictions") or {}
        first, second = preds.get(cand), preds.get(against)
        if not first or not second:
            out["missing"].append(ex["id"])
        elif first.strip() == second.strip():  # whitespace at the ends is nothing a reader could prefer
            out["identical"].append(ex["id"])
        else:
            out["sent"].append(ex)
    return out


def _mapping(project: Project, name: str, run_id: str, cand: str, against: str, seed: int, ids: list[str]) -> dict:
    """The side file's A/B mapping; made once, so a second push (or a rerun after a crash) keeps it."""
    path = side_file(project, name)
    if path.exists():
        mapping = json.loads(path.read_text(encoding="utf-8"))
        missing = [i for i in ids if i not in mapping["positions"]]
        if not missing:
            return mapping
        mapping["positions"].update(positions(missing, seed))  # examples new to this run; the rest keep theirs
    else:
        mapping = {"run_id": run_id, "candidate": cand, "baseline": against, "seed": seed,
                   "positions": positions(ids, seed)}
    _write_json(path, mapping)
    return mapping


def pull_eval(project: Project, run: str, client, *, against: str = "base") -> dict:
    """Submitted preferences into results["human"] of the run, and its report rebuilt; returns that section."""
    from assay.curation.review.pull import _remote, _responses, _usernames
    from assay.evals.report import write_report

    results, folder = load_results(project, run)
    against = _baseline(results, against, folder)
    run_id = results["run_id"]
    name = dataset_name(run_id, against)
    path = side_file(project, name)
    if not path.exists():
        raise AssayError(f"{path}: no A/B mapping for run {run_id!r} against {against!r}; "
                         f"push it first with `assay review push-eval {run} --against {against}`")
    split = comparable(results, against)
    same = set(split["identical"])  # a side file from before they were held back lists them: still automatic ties
    where = {ex_id: pos for ex_id, pos in json.loads(path.read_text(encoding="utf-8"))["positions"].items()
             if ex_id not in same}
    by_record = {record_id(run_id, against, ex_id): ex_id for ex_id in where}
    users = _usernames(client)
    answers: dict[str, dict[str, dict]] = defaultdict(dict)  # example id -> user -> {winner, reason}
    for external_id, response in _responses(client, _remote(client, name)):
        values = response.get("values") or {}
        said = (values.get("preference") or {}).get("value")
        if response["status"] != "submitted" or external_id not in by_record or said not in LABELS:
            continue
        ex_id = by_record[external_id]
        winner = "tie" if said == "tie" else "candidate" if said.upper() == where[ex_id] else "baseline"
        answers[ex_id][users.get(response["user_id"], response["user_id"])] = {
            "said": said.upper() if said != "tie" else "tie", "winner": winner,
            "reason": (values.get("reason") or {}).get("value")}
    human = summarize(answers, where, identical=split["identical"], missing=len(split["missing"]),
                      examples=len(results["examples"]), baseline=against,
                      label=next(m["label"] for m in results["models"] if m["key"] == against))
    human.update(argilla_dataset=name, pulled_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if not human["answered"]:
        return human  # nothing to report yet: the run's results stay as they are
    results["human"] = human
    _write_json(folder / "results.json", mask_urls_in(results))  # as evals.run.save writes it
    write_report(results, folder)
    return human


def summarize(answers: dict[str, dict[str, dict]], where: dict[str, str], *, identical: list[str], missing: int,
              examples: int, baseline: str, label: str) -> dict:
    """Counts as people gave them, and a win rate over examples: an answered example scores the mean of its
    answers (1 win, 0.5 tie, 0 loss), so one that three people answered weighs as much as one that one person
    answered; an example with identical outputs scores 0.5 (a tie nobody was asked about)."""
    per_example = [{"id": ex_id, "candidate_position": where[ex_id], "answers": dict(sorted(by_user.items()))}
                   for ex_id, by_user in sorted(answers.items())]
    scores = [sum(SCORE[a["winner"]] for a in row["answers"].values()) / len(row["answers"]) for row in per_example]
    rate, low, high = win_rate_ci(scores + [SCORE["tie"]] * len(identical))
    winners = Counter(a["winner"] for row in per_example for a in row["answers"].values())
    annotators: dict[str, Counter] = defaultdict(Counter)
    for row in per_example:
        for user, a in row["answers"].items():
            annotators[user][a["winner"]] += 1
    said = [a["said"] for row in per_example for a in row["answers"].values() if a["said"] in ("A", "B")]
    return {"win_rate": rate, "ci_low": low, "ci_high": high,
            "n": len(per_example) + len(identical),  # examples in the win rate
            "examples": examples, "sent": len(where), "answered": len(per_example), "identical": len(identical),
            "missing_output": missing,
            "responses": sum(winners.values()), "wins": winners["candidate"], "losses": winners["baseline"],
            "ties": winners["tie"], "baseline": baseline, "baseline_label": label,
            "position_a_rate": sum(s == "A" for s in said) / len(said) if said else None,
            "annotators": {u: {k: c[k] for k in ("candidate", "baseline", "tie")}
                           for u, c in sorted(annotators.items())},
            "identical_ids": sorted(identical), "per_example": per_example}


def _write_json(path: Path, obj: dict) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
