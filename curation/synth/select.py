"""Choosing one output per note from several teachers' candidates.

Strategies register by name: consensus (the candidate closest to the others), judge (a teacher
scores the candidates against a rubric), rules (schema validity, length, completeness, not a copy).
Every strategy sees the same groups and returns one Choice per group; the agreement score (the
chosen candidate's mean similarity to the other valid ones) is computed the same way for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from assay.curation.synth.contract import Reply, Request
from assay.curation.synth.tasks import Parsed, Task, load_template, parse_scores
from assay.errors import NotFoundError
from assay.evals.metrics import rouge_l  # the one ROUGE; consensus and evals agree on what it means


@dataclass
class Candidate:
    teacher: str
    parsed: Parsed
    raw: str | None
    finish_reason: str = "stop"

    @property
    def ok(self) -> bool:
        return self.parsed.ok


@dataclass
class Group:
    note_id: str
    note: dict  # title, text (as the teachers saw it, restored)
    candidates: list[Candidate]

    def valid(self) -> list[int]:
        return [i for i, c in enumerate(self.candidates) if c.ok]


@dataclass
class Choice:
    index: int | None  # None: no candidate is valid
    agreement: float | None = None  # mean similarity of the chosen to the other valid candidates
    scores: list[float | None] = field(default_factory=list)  # the strategy's score per candidate
    detail: str | None = None  # e.g. "judge_failed:invalid_json, consensus used"


@dataclass
class SelectContext:
    task: Task
    similarity: str = "rouge"  # or "embedding"
    embedder: Any = None  # .encode(list[str]) -> vectors, for similarity="embedding"
    judge: str | None = None  # the judge's teacher spec
    # sends requests to a teacher through the runner (cache, ledger, budget) and returns replies in order
    ask: Callable[[str, list[Request]], list[Reply]] | None = None
    # makes a text safe for the judge (redaction when the judge is remote); identity otherwise
    protect: Callable[[str, str], str] = lambda note_id, text: text
    instruction: str = ""


def similarity_matrix(group: Group, ctx: SelectContext) -> dict[tuple[int, int], float]:
    """Similarity between every pair of valid candidates (symmetric, both orders stored)."""
    valid = group.valid()
    values = [group.candidates[i].parsed.value for i in valid]
    sims: dict[tuple[int, int], float] = {}
    if ctx.task.structured:
        pair = lambda x, y: ctx.task.similarity(values[x], values[y])  # noqa: E731
    elif ctx.similarity == "embedding":
        assert ctx.embedder is not None, "similarity=embedding needs an embedder"
        import numpy as np

        vectors = np.asarray(ctx.embedder.encode([ctx.task.text_of(v) for v in values], normalize_embeddings=True))
        pair = lambda x, y: float(vectors[x] @ vectors[y])  # noqa: E731
    else:
        texts = [ctx.task.text_of(v) for v in values]
        pair = lambda x, y: rouge_l(texts[x], texts[y])  # noqa: E731
    for x in range(len(valid)):
        for y in range(x + 1, len(valid)):
            sims[valid[x], valid[y]] = sims[valid[y], valid[x]] = pair(x, y)
    return sims


def _mean_to_others(i: int, valid: list[int], sims: dict) -> float | None:
    others = [sims[i, j] for j in valid if j != i]
    return sum(others) / len(others) if others else None


def _with_agreement(groups: list[Group], choices: list[Choice], ctx: SelectContext,
                    matrices: list[dict] | None = None) -> list[Choice]:
    for n, (group, choice) in enumerate(zip(groups, choices)):
        if choice.index is not None:
            sims = matrices[n] if matrices else similarity_matrix(group, ctx)
            choice.agreement = _mean_to_others(choice.index, group.valid(), sims)
    return choices


def consensus(groups: list[Group], ctx: SelectContext) -> list[Choice]:
    """The valid candidate with the highest mean similarity to the other valid ones; ties go to the earlier teacher."""
    choices, matrices = [], []
    for group in groups:
        valid, sims = group.valid(), similarity_matrix(group, ctx)
        matrices.append(sims)
        scores = [_mean_to_others(i, valid, sims) if i in valid else None for i in range(len(group.candidates))]
        if not valid:
            choices.append(Choice(None, scores=scores))
            continue
        # a tie (two candidates are always tied) goes to one that finished, then to the earlier teacher
        best = max(valid, key=lambda i: (round(scores[i] or 0.0, 9), group.candidates[i].finish_reason == "stop", -i))
        choices.append(Choice(best, scores=scores))
    return _with_agreement(groups, choices, ctx, matrices)


def rule_score(candidate: Candidate, note_text: str, task: Task) -> float:
    """Mean of checks in [0, 1]: parses to the schema, length in the task's usual range, finished, not a copy."""
    if not candidate.ok:
        return 0.0
    text = candidate.parsed.output or ""
    low, high = task.length_range
    n = len(text)
    length = 1.0 if low <= n <= high else max(0.0, 1 - (low - n) / low if n < low else 1 - (n - high) / high)
    finished = 1.0 if candidate.finish_reason == "stop" else 0.0
    copy = 1.0
    if not task.structured:
        overlap = rouge_l(task.text_of(candidate.parsed.value), note_text)
        copy = 1.0 - max(0.0, (overlap - 0.8) / 0.2)  # an output that is the note itself teaches nothing
    return (1.0 + length + finished + copy) / 4


def rules(groups: list[Group], ctx: SelectContext) -> list[Choice]:
    """Highest rule score; ties broken by consensus, then teacher order."""
    agreeing = consensus(groups, ctx)
    choices = []
    for group, agreed in zip(groups, agreeing):
        scores = [rule_score(c, group.note.get("text") or "", ctx.task) for c in group.candidates]
        valid = group.valid()
        if not valid:
            choices.append(Choice(None, scores=scores))
            continue
        best = max(valid, key=lambda i: (round(scores[i], 6), agreed.scores[i] or 0.0, -i))
        choices.append(Choice(best, scores=scores))
    return _with_agreement(groups, choices, ctx)


def judge_requests(groups: list[Group], ctx: SelectContext) -> list[tuple[int, Request]]:
    """One request per group that has two or more valid candidates (one valid needs no judge)."""
    template = load_template("judge")
    out = []
    for n, group in enumerate(groups):
        valid = group.valid()
        if len(valid) < 2:
            continue
        texts = [ctx.protect(group.note_id, group.candidates[i].parsed.output or "") for i in valid]
        note = {"text": ctx.protect(group.note_id, group.note.get("text") or "")}
        messages = template.render(instruction=ctx.instruction or ctx.task.instruction, note=note, candidates=texts)
        out.append((n, Request(messages, max_tokens=16 + 8 * len(valid), temperature=0.0,
                               metadata={"note_id": group.note_id, "role": "judge",
                                         "prompt_version": template.prompt_version})))
    return out


def judge(groups: list[Group], ctx: SelectContext) -> list[Choice]:
    """The judge teacher's highest score; a judge reply that fails to parse falls back to consensus, and says so."""
    assert ctx.judge and ctx.ask, "select=judge needs a judge teacher and a way to ask it"
    fallback = consensus(groups, ctx)
    pending = judge_requests(groups, ctx)
    replies = ctx.ask(ctx.judge, [r for _, r in pending]) if pending else []
    choices = [Choice(c.index, scores=[None] * len(g.candidates),
                      detail=None if len(g.valid()) < 2 else "judge_missing") for g, c in zip(groups, fallback)]
    for (n, _), reply in zip(pending, replies):
        group, valid = groups[n], groups[n].valid()
        parsed = parse_scores(reply.text, len(valid)) if reply.text else Parsed(False, None, None, reply.error)
        if not parsed.ok:
            choices[n].detail = f"judge_failed:{parsed.reason}, consensus used"
            continue
        scores: list[float | None] = [None] * len(group.candidates)
        for i, s in zip(valid, parsed.value):
            scores[i] = s
        best = max(valid, key=lambda i: (scores[i], fallback[n].scores[i] or 0.0, -i))
        choices[n] = Choice(best, scores=scores)
    return _with_agreement(groups, choices, ctx)


Strategy = Callable[[list[Group], SelectContext], list[Choice]]
STRATEGIES: dict[str, Strategy] = {"consensus": consensus, "judge": judge, "rules": rules}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise NotFoundError("selection strategy", name, list(STRATEGIES))
    return STRATEGIES[name]
