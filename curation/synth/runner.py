"""Run requests through a teacher without paying twice: cache first, then calls under limits and a budget.

    cache, ledger = open_state()
    replies = await run_requests(get_teacher("openai:gpt-4o-mini"), requests, cache=cache, ledger=ledger,
                                 budget_usd=2.0)

Each reply is written to the cache the moment it arrives; each call, failed or not, to the ledger.
Before a call leaves, its worst-case cost is reserved against the budget; when the next call would not
fit, no new call starts, in-flight ones finish, and BudgetExceeded reports the spend. Rerunning the
same command resumes from the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable

from assay.curation.synth.batch import run_batch
from assay.curation.synth.bookkeeping import POLL_S, Budget, BudgetExceeded, Progress, record_hits
from assay.curation.synth.cache import Cache, cache_key, cacheable, transaction
from assay.curation.synth.contract import Reply, Request, Teacher, TeacherError
from assay.curation.synth.faults import FATAL
from assay.curation.synth.leases import running
from assay.curation.synth.ledger import Ledger
from assay.curation.synth.limits import Limits
from assay.curation.synth.prices import UnknownPriceError, estimate_input_tokens, max_input_tokens
from assay.curation.synth.registry import PROVIDERS
from assay.project import Project


@dataclass
class Estimate:
    requests: int
    cached: int
    to_send: int
    input_tokens: int  # typical estimate for what is sent
    max_output_tokens: int
    cost_usd: float  # typical input + every max_tokens spent: an upper-leaning estimate
    cost_known: bool


def open_state(project: Project | None = None) -> tuple[Cache, Ledger]:
    """The project's cache and ledger, on one connection, so a reply and its ledger row commit together."""
    conn = (project or Project.current()).db()
    return Cache(conn), Ledger(conn)


def estimate(teacher: Teacher, requests: list[Request], *, cache: Cache, batch: bool = False) -> Estimate:
    keys = [cache_key(teacher.provider, teacher.model, r) for r in requests]
    hits = cache.get_many(keys)
    todo = {k: r for k, r in zip(keys, requests) if k not in hits}
    n_in = sum(estimate_input_tokens(r.messages) for r in todo.values())
    n_out = sum(r.max_tokens for r in todo.values())
    price = teacher.price
    cost = price.cost(n_in, n_out, batch=batch) if price else 0.0
    return Estimate(len(requests), sum(1 for k in keys if k in hits), len(todo), n_in, n_out, cost, price is not None)


async def run_requests(teacher: Teacher, requests: list[Request], *, cache: Cache, ledger: Ledger,
                       limits: Limits | None = None, budget_usd: float | None = None,
                       progress: Progress | None = None, dry_run: bool = False, batch: bool = False,
                       run_id: str | None = None, poll_s: float = 30.0) -> list[Reply]:
    """Replies in request order; faults are Replies with `error` set. Raises BudgetExceeded, TeacherError."""
    if budget_usd is not None and teacher.price is None and not dry_run:
        raise UnknownPriceError(f"no price known for {teacher.spec}, so budget ${budget_usd:g} cannot be held: "
                                f"give one, e.g. prices: {{'{teacher.provider}:{teacher.model}': [input, output]}} "
                                f"in USD per million tokens.")
    if batch:
        return await run_batch(teacher, requests, cache=cache, ledger=ledger, budget_usd=budget_usd,
                               progress=progress, run_id=run_id, poll_s=poll_s)
    run_id = run_id or uuid.uuid4().hex[:12]
    keys = [cache_key(teacher.provider, teacher.model, r) for r in requests]
    results: dict[str, Reply] = cache.get_many(keys)
    record_hits(ledger, run_id, teacher, keys, requests, results)
    todo = list({k: r for k, r in zip(keys, requests) if k not in results}.items())
    if dry_run or not todo:  # nothing to send: no run to register with concurrent ones
        for key, request in todo:
            results[key] = _dry_reply(teacher, request)
        return [dataclasses.replace(results[k]) for k in keys]

    done = [len(keys) - len(todo)]
    total = len(set(keys))

    def finished(key: str, reply: Reply) -> None:
        results[key] = reply
        done[0] += 1
        if progress:
            progress(done[0], total)

    async with running(ledger.conn, run_id) as shared:
        budget = Budget(budget_usd, shared)
        limits = limits or Limits.for_provider(teacher.provider)
        if teacher.is_remote or teacher.batch_size == 1:
            fatal = await _run_calls(teacher, todo, cache, ledger, limits, budget, run_id, finished)
        else:
            fatal = await _run_chunks(teacher, todo, cache, ledger, run_id, finished)
        pool_spent = shared.pool_spent()
    if fatal is not None:
        raise TeacherError(f"{teacher.spec}: {fatal.error}; stopped after {len(results)} of {total} request(s)."
                           + _hint(teacher, fatal.error))
    if budget.stopped:
        replies = [dataclasses.replace(results[k]) if k in results else None for k in keys]
        raise BudgetExceeded(budget_usd=budget_usd or 0.0, spent_usd=budget.spent, uncertain_usd=budget.uncertain,
                             done=len(results), remaining=total - len(results), replies=replies,
                             shared_usd=pool_spent)
    return [dataclasses.replace(results[k]) for k in keys]


async def _run_calls(teacher: Teacher, todo: list[tuple[str, Request]], cache: Cache, ledger: Ledger,
                     limits: Limits, budget: Budget, run_id: str, finished: Callable) -> Reply | None:
    """One request per call, `limits.concurrency` workers, retries with backoff.

    A key that a concurrent run is answering waits aside while the workers go on with the rest; it is
    done when its reply lands in the cache, or sent here when that run let go of it without one.
    """
    queue = deque(todo)
    waiting: dict[str, Request] = {}
    looked = [0.0]
    fatal: list[Reply] = []
    price = teacher.price
    shared = budget.shared

    def from_cache(hits: dict[str, Reply], requests: dict[str, Request]) -> None:
        record_hits(ledger, run_id, teacher, list(hits), [requests[k] for k in hits], hits)
        for key, reply in hits.items():
            finished(key, reply)

    def look() -> None:
        """The waiting keys: take the replies that landed, send the ones let go without a reply."""
        if time.monotonic() - looked[0] < POLL_S:
            return
        looked[0] = time.monotonic()
        hits = cache.get_many(list(waiting))
        from_cache(hits, {k: waiting.pop(k) for k in hits})
        for key in set(waiting) - shared.busy(list(waiting)):
            queue.append((key, waiting.pop(key)))

    async def attempt_all(key: str, request: Request) -> Reply | None:
        tokens = estimate_input_tokens(request.messages) + request.max_tokens
        worst = price.cost(max_input_tokens(request.messages), request.max_tokens) if price else 0.0
        for attempt in range(1, limits.max_attempts + 1):
            if fatal or not await budget.reserve(worst):
                return None
            await limits.acquire(tokens)
            row = ledger.sent(run_id=run_id, teacher=teacher.spec, key=key, attempt=attempt,
                              metadata=request.metadata)
            started = time.monotonic()
            reply = (await teacher.generate([request]))[0]
            reply.attempts = attempt
            with transaction(ledger.conn):
                ledger.complete(row, reply, time.monotonic() - started)
                if cacheable(reply):
                    cache.put(key, reply)
                budget.release(worst, reply)  # the spend is shared in the same commit as its ledger row
            await budget.wake()
            used = reply.usage.get("input_tokens", 0) + reply.usage.get("output_tokens", 0)
            limits.settle(tokens, used if used else tokens)
            if reply.error in FATAL:
                fatal.append(reply)
                return None
            if not reply.retryable or attempt == limits.max_attempts:
                return reply
            delay = limits.backoff(attempt, reply.retry_after)
            if delay is None:  # the provider wants longer than we are willing to wait
                return reply
            if reply.retry_after is not None:
                limits.pause(reply.retry_after)
            await asyncio.sleep(delay)
        return None

    async def worker() -> None:
        while not (fatal or budget.stopped):
            if not queue:
                if not waiting:
                    return
                await asyncio.sleep(POLL_S)
                look()
                continue
            key, request = queue.popleft()
            claim = shared.claim(key)
            if claim == "busy":
                waiting[key] = request
                continue
            if claim == "cached":
                from_cache(cache.get_many([key]), {key: request})
                continue
            try:
                reply = await attempt_all(key, request)
            finally:
                shared.release(key)
            if reply is not None:
                finished(key, reply)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(limits.concurrency, len(todo))):
            group.create_task(worker())
    return fatal[0] if fatal else None


async def _run_chunks(teacher: Teacher, todo: list[tuple[str, Request]], cache: Cache, ledger: Ledger,
                      run_id: str, finished: Callable) -> None:
    """Free in-process teachers: hand over many requests at once so they can batch."""
    step = teacher.batch_size * 4
    for start in range(0, len(todo), step):
        chunk = todo[start:start + step]
        replies = await teacher.generate([r for _, r in chunk])
        with transaction(ledger.conn):
            for (key, request), reply in zip(chunk, replies):
                ledger.record(run_id=run_id, teacher=teacher.spec, key=key, mode="sync",
                              status="ok" if reply.error is None else "failed", reply=reply,
                              metadata=request.metadata)
                if cacheable(reply):
                    cache.put(key, reply)
        for (key, _), reply in zip(chunk, replies):
            finished(key, reply)
    return None


def _dry_reply(teacher: Teacher, request: Request) -> Reply:
    n_in = estimate_input_tokens(request.messages)
    price = teacher.price
    return Reply(text=None, finish_reason="dry_run", usage={"input_tokens": n_in, "output_tokens": request.max_tokens},
                 cost_usd=price.cost(n_in, request.max_tokens) if price else 0.0, cached=False, error=None,
                 teacher=teacher.spec, cost_known=price is not None, attempts=0)


def _hint(teacher: Teacher, error: str | None) -> str:
    variable = PROVIDERS[teacher.provider].key_env if teacher.provider in PROVIDERS else None
    if error in ("auth_failed", "permission_denied") and variable:
        return f" Check {variable}."
    if error == "model_not_found":
        return f" Is {teacher.model!r} a model this provider serves?"
    return ""
