"""Predictions of every contestant on a suite's examples, cached per (model, suite, example).

Contestants: a registered model version (the candidate, its previous version), a base model zero-shot,
and teachers (`rule:lead`, `local`, `openai:...`). Models see the student's prompt, the one its
training rows carried; teachers see the synthetic-generation task prompt, so their replies come from
the synthesis cache when `assay synth` already paid for them. A second `assay eval` of the same model
and suite version generates nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

from assay.evals.suite import Example, SuiteConfig
from assay.schema import ensure

QA_INSTRUCTION = "Answer the question about this note in a few words."


@dataclass
class Contestant:
    key: str  # "candidate", "previous", "base", "rule:lead", "teacher:local", ...
    label: str  # what the report calls it
    kind: str  # candidate | previous | base | teacher | rule
    cache_key: str  # identifies the weights or the teacher: a registered version never changes
    folder: Any = None  # a model version folder (adapter/ or model/), for candidate and previous
    base: str | None = None  # a catalogue name or path, for base
    spec: str | None = None  # a teacher spec


@dataclass
class Prediction:
    text: str | None
    value: Any = None  # parsed output of structured tasks (None: did not parse)
    reason: str | None = None  # why it failed to parse or answer
    seconds: float | None = None
    output_tokens: int | None = None
    nll: float | None = None  # summed over the reference answer's tokens (models only)
    tokens: int | None = None
    failed: bool = False  # no answer came back (a teacher unreachable, a server error): missing, not wrong

    def record(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


def example_key(example: Example, prompt: str) -> str:
    payload = json.dumps([example.id, prompt, example.reference_text], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


class PredictionCache:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.generated: dict[str, int] = {}  # per model key: predictions made (not read from the cache) here
        ensure(conn)

    def get(self, model_key: str, suite_key: str, keys: list[str]) -> dict[str, Prediction]:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.conn.execute(
                f"SELECT example_key, record FROM eval_predictions WHERE model_key = ? AND suite_key = ? "
                f"AND example_key IN ({','.join('?' * len(chunk))})", [model_key, suite_key, *chunk]).fetchall()
            found.update({r[0]: Prediction(**json.loads(r[1])) for r in rows})
        return found

    def put(self, model_key: str, suite_key: str, items: dict[str, Prediction]) -> None:
        import time

        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT OR REPLACE INTO eval_predictions VALUES (?,?,?,?,?)",
                                  [(model_key, suite_key, k, p.record(), time.time()) for k, p in items.items()])
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self.generated[model_key] = self.generated.get(model_key, 0) + len(items)


# ---------------------------------------------------------------- prompts

def student_messages(suite: SuiteConfig, example: Example, instruction: str) -> list[dict]:
    """The prompt the student is asked: the same shape as its training rows (instruction, blank line, note)."""
    note = f"{example.title}\n\n{example.text}" if suite.prompt.include_title and example.title else example.text
    if suite.task == "qa":
        return [{"role": "user", "content": f"{instruction}\n\nQuestion: {example.question}\n\n{note}"}]
    return [{"role": "user", "content": f"{instruction}\n\n{note}"}]


def parse(suite: SuiteConfig, text: str | None, labels=None) -> Prediction:
    """A reply as the metrics see it: plain text for summaries and answers, a parsed value for JSON tasks."""
    from assay.curation.synth.tasks import Prompt, get_task

    if suite.task in ("summarize", "qa"):
        clean = (text or "").strip()
        return Prediction(clean or None, None, None if clean else "empty_reply")
    parsed = get_task(suite.task).parse(text, Prompt(labels=labels))
    return Prediction(text, parsed.value if parsed.ok else None, parsed.reason)


# ---------------------------------------------------------------- models

def predict_model(contestant: Contestant, suite: SuiteConfig, examples: list[Example], instruction: str, *,
                  cache: PredictionCache, labels=None, progress: Callable[[int], None] | None = None
                  ) -> list[Prediction]:
    """Greedy (by default) predictions of a causal LM; only the examples not cached are generated."""
    holder: dict[str, Any] = {}

    def tokenizer():
        if "tok" not in holder:
            holder["model"], holder["tok"] = _load(contestant)
        return holder["tok"]

    prompts_msgs = [student_messages(suite, ex, instruction) for ex in examples]
    keys = [example_key(ex, json.dumps(m)) for ex, m in zip(examples, prompts_msgs)]
    found = cache.get(contestant.cache_key, suite.key, keys)
    todo = [k for k, key in enumerate(keys) if key not in found]
    if progress and len(todo) < len(examples):
        progress(len(examples) - len(todo))
    if todo:
        from assay.evals.generate import completion_nll, generate
        from assay.training.data import render_ids, render_prompt

        tok = tokenizer()
        model = holder["model"]
        gen = suite.generation
        # a chunk of micro-batches at a time, each stored as it finishes: a killed eval resumes where it was
        lengths = {k: len(tok(render_prompt(tok, prompts_msgs[k]), add_special_tokens=False)["input_ids"])
                   for k in todo}
        todo.sort(key=lambda k: lengths[k])
        for start in range(0, len(todo), gen.batch_size * 2):
            chunk = todo[start:start + gen.batch_size * 2]
            outs = generate(model, tok, [render_prompt(tok, prompts_msgs[k]) for k in chunk],
                            max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size, temperature=gen.temperature,
                            repetition_penalty=gen.repetition_penalty, seed=gen.seed, progress=progress)
            nlls: list = [None] * len(chunk)
            if suite.task in ("summarize", "qa"):
                rows = [render_ids(tok, prompts_msgs[k], examples[k].reference_text) for k in chunk]
                nlls = completion_nll(model, rows, batch_size=gen.batch_size)
            new = {}
            for k, out, nll in zip(chunk, outs, nlls):
                pred = parse(suite, out.text, labels)
                pred.seconds, pred.output_tokens = round(out.seconds, 4), len(out.ids)
                if nll is not None:
                    pred.nll, pred.tokens = nll
                new[keys[k]] = pred
            cache.put(contestant.cache_key, suite.key, new)
            found.update(new)
    return [found[key] for key in keys]


def _load(contestant: Contestant):
    """(model, tokenizer): a version folder merged for speed, or a base model from the catalogue."""
    import torch

    from assay.models import load_causal_lm

    if contestant.folder is not None:
        from assay.training.export.recipe import load_source

        source, _ = load_source(contestant.folder, keep_unmerged=False)
        return source.model.eval(), source.tokenizer
    model, tok = load_causal_lm(contestant.base, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


# ---------------------------------------------------------------- teachers

def predict_teacher(contestant: Contestant, suite: SuiteConfig, examples: list[Example], instruction: str, *,
                    project, privacy, labels=None, budget_usd: float | None = None,
                    progress: Callable[[int], None] | None = None) -> tuple[list[Prediction], dict]:
    """A teacher's answers through the synthesis machinery: cache, ledger, limits, privacy guard.

    Returns the predictions and what it cost and sent: {"spend_usd", "calls", "cached", "egress"}.
    """
    from assay.curation.synth.contract import Request
    from assay.curation.synth.faults import ANSWERED
    from assay.curation.synth.pii import guard_for
    from assay.curation.synth.registry import get_teacher
    from assay.curation.synth.tasks import Prompt, get_task

    teacher = get_teacher(contestant.spec)
    guard = guard_for(privacy)  # the synthesis's own settings: a note is redacted as it was there
    task = get_task(suite.task)
    requests = []
    for ex in examples:
        note = {"title": guard.outgoing(teacher, ex.note_id or ex.id, ex.title),
                "text": guard.outgoing(teacher, ex.note_id or ex.id, ex.text)}
        if suite.task == "qa":  # the task template writes question-answer pairs; here the teacher answers one
            messages = student_messages(suite, Example(ex.id, ex.note_id, note["title"], note["text"] or "",
                                                       ex.reference, question=ex.question), instruction)
            max_tokens = suite.generation.max_new_tokens
        else:
            messages = task.render(note, Prompt(labels=labels))
            max_tokens = task.max_tokens
        requests.append(Request(messages, max_tokens=max_tokens, temperature=0.0,
                                metadata={"note_id": ex.note_id, "task": suite.task, "purpose": "eval"}))
    replies = ask_teacher(teacher, requests, project=project, budget_usd=budget_usd, progress=progress)
    predictions = []
    for ex, reply in zip(examples, replies):
        if not reply.ok:
            predictions.append(Prediction(None, None, f"teacher_error:{reply.error}",
                                          failed=reply.error not in ANSWERED))
            continue
        text, _ = guard.incoming(teacher, ex.note_id or ex.id, reply.text)
        if suite.task == "summarize":  # the synthesis parser: the first two sentences, no preamble
            parsed = get_task("summarize").parse(text, Prompt())
            pred = Prediction(parsed.output if parsed.ok else None, None, parsed.reason)
        else:
            pred = parse(suite, text, labels)
        pred.output_tokens = reply.usage.get("output_tokens")
        predictions.append(pred)
    spent = {"spend_usd": round(sum(r.cost_usd for r in replies), 6), "calls": sum(not r.cached for r in replies),
             "cached": sum(r.cached for r in replies), "egress": guard.summary()}
    return predictions, spent


def ask_teacher(teacher, requests: list, *, project, budget_usd: float | None = None,
                progress: Callable[[int], None] | None = None) -> list:
    """Replies to `requests` through the synthesis machinery: the project's cache and spend ledger, the
    provider's limits and retries, `budget_usd` (raises BudgetExceeded). Evals and the judge both ask here."""
    from assay.curation.synth.limits import Limits
    from assay.curation.synth.runner import open_state, run_requests

    if not requests:
        return []
    cache, ledger = open_state(project)
    done = [0]

    def advance(n: int, total: int) -> None:
        if progress and n > done[0]:
            progress(n - done[0])
            done[0] = n

    async def main():
        try:
            return await run_requests(teacher, requests, cache=cache, ledger=ledger,
                                      limits=Limits.for_provider(teacher.provider), budget_usd=budget_usd,
                                      progress=advance)
        finally:
            if teacher.is_remote and hasattr(teacher, "aclose"):
                await teacher.aclose()

    return asyncio.run(main())
