"""LLM-as-judge: does a judge teacher prefer the candidate's output or a baseline's, example by example?

    (note, candidate output, baseline output) ──▶ curation/synth/templates/pairwise.j2, A/B order balanced and
        shuffled with a fixed seed ──▶ run_requests (the synthesis cache, ledger, limits, budget, privacy guard)
        ──▶ win / tie / loss per example ──▶ win rate (a tie counts half) with a bootstrap 95% CI

Judges favour a position (often the first), so the candidate is output A in half of the examples and B in the
other half, which half chosen by a seeded shuffle: a position bias then moves wins and losses equally and
cancels out of the win rate; `position_a_rate` shows how strong it was. A rerun pays nothing (cached replies);
when the budget runs out, what was judged is reported with `stopped` saying why the rest was not.
"""

from __future__ import annotations

import random
import re
from typing import Callable

import numpy as np

from assay.evals.compare import RESAMPLES, SEED
from assay.evals.suite import Example, SuiteConfig

TEMPLATE = "pairwise"
_BARE = re.compile(r"^\W*(A|B|tie)\W*$", re.I)


def positions(ids: list[str], seed: int) -> dict[str, str]:
    """Example id -> the candidate's position ("A" or "B"): half each, shuffled with `seed`."""
    order = sorted(ids)
    slots = ["A" if k % 2 == 0 else "B" for k in range(len(order))]
    random.Random(f"pairwise:{seed}").shuffle(slots)
    return dict(zip(order, slots))


def parse_winner(text: str | None) -> tuple[str | None, str | None]:
    """("A" | "B" | "tie", None) or (None, reason): {"winner": ...} JSON, or a bare A / B / tie."""
    from assay.curation.synth.replies import find_json, strip_reply

    clean = strip_reply(text)
    if not clean:
        return None, "empty_reply"
    bare = _BARE.match(clean)
    if bare:
        found = bare.group(1)
    else:
        try:
            found = find_json(clean, "{").get("winner")
        except (ValueError, AttributeError):
            return None, "invalid_json"
    found = str(found).strip()
    if found.lower() == "tie":
        return "tie", None
    if found.upper() in ("A", "B"):
        return found.upper(), None
    return None, f"unknown_winner:{found[:20]}"


def win_rate_ci(scores: list[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(mean, CI low, CI high) of per-example scores (1 win, 0.5 tie, 0 loss), bootstrap over examples."""
    if not scores:
        return None, None, None
    values = np.array(scores, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def pairwise(suite: SuiteConfig, examples: list[Example], candidate: list[str | None], baseline: list[str | None],
             *, instruction: str, baseline_key: str, project, privacy,
             progress: Callable[[int], None] | None = None) -> tuple[dict, dict]:
    """(results["judge"], what it cost and sent: {"spend_usd", "calls", "cached", "egress"})."""
    from assay.curation.synth.bookkeeping import BudgetExceeded
    from assay.curation.synth.contract import Request
    from assay.curation.synth.pii import guard_for
    from assay.curation.synth.registry import get_teacher
    from assay.curation.synth.tasks import load_template
    from assay.evals.predict import ask_teacher

    spec, budget = suite.judge.teacher, suite.judge.budget_usd
    assert spec, "pairwise needs suite.judge.teacher"
    teacher = get_teacher(spec)
    template = load_template(TEMPLATE)
    guard = guard_for(privacy)  # a remote judge sees the note and both outputs as synthesis's teachers did
    where = positions([ex.id for ex in examples], suite.generation.seed)
    rows, requests, asked = [], [], []
    for k, (ex, cand, base) in enumerate(zip(examples, candidate, baseline)):
        row = {"id": ex.id, "candidate_position": where[ex.id], "winner": None, "reason": None}
        rows.append(row)
        if not cand or not base:  # a model that gave no answer loses without asking anyone
            row["winner"] = "tie" if not cand and not base else "baseline" if not cand else "candidate"
            row["reason"] = "no_output"
            continue
        note_id = ex.note_id or ex.id
        a, b = (cand, base) if where[ex.id] == "A" else (base, cand)
        messages = template.render(
            instruction=instruction, note={"title": guard.outgoing(teacher, note_id, ex.title) or "",
                                           "text": guard.outgoing(teacher, note_id, ex.text) or ""},
            a=guard.outgoing(teacher, note_id, a), b=guard.outgoing(teacher, note_id, b))
        requests.append(Request(messages, max_tokens=16, temperature=0.0,
                                metadata={"note_id": ex.note_id, "role": "pairwise", "purpose": "eval",
                                          "prompt_version": template.prompt_version}))
        asked.append(k)
    stopped = None
    try:
        replies = ask_teacher(teacher, requests, project=project, budget_usd=budget, progress=progress)
    except BudgetExceeded as exc:
        replies, stopped = exc.replies, str(exc)
    for k, reply in zip(asked, replies):
        row = rows[k]
        if reply is None:
            row["reason"] = "not_sent:budget"
        elif not reply.ok:
            row["reason"] = f"judge_error:{reply.error}"
        else:
            picked, row["reason"] = parse_winner(reply.text)
            row["judge_said"] = picked
            if picked is not None:
                row["winner"] = "tie" if picked == "tie" else \
                    "candidate" if picked == row["candidate_position"] else "baseline"
    sent = [r for r in replies if r is not None]
    spent = {"spend_usd": round(sum(r.cost_usd for r in sent), 6), "calls": sum(not r.cached for r in sent),
             "cached": sum(r.cached for r in sent), "egress": guard.summary()}
    return summarize(rows, spec=spec, baseline_key=baseline_key, template=template.prompt_version,
                     seed=suite.generation.seed, budget_usd=budget, stopped=stopped, spent=spent), spent


def summarize(rows: list[dict], *, spec: str, baseline_key: str, template: str, seed: int,
              budget_usd: float | None, stopped: str | None, spent: dict) -> dict:
    decided = [r for r in rows if r["winner"] is not None]
    score = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0}
    rate, low, high = win_rate_ci([score[r["winner"]] for r in decided])
    said = [r["judge_said"] for r in rows if r.get("judge_said") in ("A", "B")]
    return {
        "teacher": spec, "baseline": baseline_key, "template": template, "seed": seed,
        "n": len(decided), "examples": len(rows),
        "wins": sum(r["winner"] == "candidate" for r in decided),
        "losses": sum(r["winner"] == "baseline" for r in decided),
        "ties": sum(r["winner"] == "tie" for r in decided),
        "failed": sum(r["winner"] is None for r in rows),
        "win_rate": rate, "ci_low": low, "ci_high": high,
        "candidate_as_a": sum(r["candidate_position"] == "A" for r in rows),
        "position_a_rate": sum(s == "A" for s in said) / len(said) if said else None,
        "spend_usd": spent["spend_usd"], "calls": spent["calls"], "cached": spent["cached"],
        "budget_usd": budget_usd, "stopped": stopped,
        "per_example": rows,
    }


def judge_run(suite: SuiteConfig, examples: list[Example], contestants: list, predictions: dict, instruction: str,
              *, project, privacy, progress: Callable[[str, int | None], Callable[[int], None]]) -> tuple[dict, dict]:
    """The suite's judge over `assay eval`'s predictions: the candidate against suite.judge.against (default:
    the previous version when the run has one, else the base model)."""
    from assay.errors import ConfigError

    keys = [c.key for c in contestants]
    against = suite.judge.against or ("previous" if "previous" in keys else "base")
    if against not in keys or against == "candidate":
        raise ConfigError(f"suite {suite.name}", [f"judge.against: {against!r} is not a baseline of this run "
                                                  f"({', '.join(k for k in keys if k != 'candidate')})"])
    text = {key: [p.text for p in preds] for key, preds in predictions.items()}
    return pairwise(suite, examples, text["candidate"], text[against], instruction=instruction, baseline_key=against,
                    privacy=privacy, project=project, progress=progress(f"judge {suite.judge.teacher}", len(examples)))
