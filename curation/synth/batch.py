"""Bulk work through the providers' batch APIs (Anthropic Message Batches, OpenAI Batch): half price, slow.

State lives in SQLite next to the cache: each submission (our id, the provider's batch id, its keys)
is written *before* it is sent and updated the moment the provider answers, so a killed run resumes
polling the same batches instead of paying for them again. A submission whose create call was cut off
is found again at the provider (OpenAI: by our id in the batch metadata; Anthropic: by size and time).
Requests that come back expired, canceled or errored for a transient reason are resubmitted alone,
up to `max_rounds` submissions each per run; a later run tries them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
import uuid
from collections import Counter

from assay.curation.synth.bookkeeping import Budget, BudgetExceeded, Progress, record_hits
from assay.curation.synth.cache import Cache, cache_key, cacheable, transaction
from assay.curation.synth.contract import Reply, Request, Teacher, TeacherError, failed
from assay.curation.synth.faults import FATAL, classify
from assay.curation.synth.leases import Shared, running
from assay.curation.synth.ledger import Ledger
from assay.curation.synth.prices import max_input_tokens
from assay.curation.synth.registry import MAX_PER_BATCH, PROVIDERS
from assay.errors import AssayError
from assay.schema import ensure


class BatchStore:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        ensure(conn)

    def intent(self, teacher: str, keys: list[str]) -> str:
        submission = uuid.uuid4().hex[:16]
        with transaction(self.conn):
            self.conn.execute("INSERT INTO synth_batches VALUES (?, NULL, ?, ?, ?, 'submitting')",
                              (submission, teacher, time.time(), len(keys)))
            self.conn.executemany("INSERT INTO synth_batch_items VALUES (?, ?)", [(submission, k) for k in keys])
        return submission

    def opened(self, submission: str, batch_id: str) -> None:
        self.conn.execute("UPDATE synth_batches SET batch_id=?, status='open' WHERE submission_id=?",
                          (batch_id, submission))

    def mark(self, submission: str, status: str) -> None:
        self.conn.execute("UPDATE synth_batches SET status=? WHERE submission_id=?", (status, submission))

    def unfinished(self, teacher: str, status: str) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM synth_batches WHERE teacher=? AND status=? ORDER BY created_at",
                                 (teacher, status)).fetchall()

    def keys(self, submission: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM synth_batch_items WHERE submission_id=?",
                                                (submission,))]

    def rounds(self, key: str) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM synth_batch_items i JOIN synth_batches b USING (submission_id) "
            "WHERE i.key=? AND b.status IN ('open', 'done', 'submitting')", (key,)).fetchone()[0]

    def row(self, submission: str) -> sqlite3.Row:
        return self.conn.execute("SELECT * FROM synth_batches WHERE submission_id=?", (submission,)).fetchone()

    def known_batch_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT batch_id FROM synth_batches WHERE batch_id IS NOT NULL")}


async def run_batch(teacher: Teacher, requests: list[Request], *, cache: Cache, ledger: Ledger,
                    budget_usd: float | None = None, progress: Progress | None = None, run_id: str | None = None,
                    poll_s: float = 30.0, max_rounds: int = 3, max_per_batch: int | None = None) -> list[Reply]:
    """Like run_requests, through the provider's batch API; resumable after a kill.

    A key another live run is submitting is left to it; its batch is then polled here too, and whichever
    run lands it first stores the reply, which the other takes from the cache.
    """
    if not hasattr(teacher, "submit_batch"):
        raise AssayError(f"{teacher.spec} has no batch API; run it without batch mode.")
    run_id = run_id or uuid.uuid4().hex[:12]
    async with running(ledger.conn, run_id) as shared:
        return await _run_batch(teacher, requests, cache, ledger, shared, budget_usd, progress, run_id, poll_s,
                                max_rounds, max_per_batch)


async def _run_batch(teacher: Teacher, requests: list[Request], cache: Cache, ledger: Ledger, shared: Shared,
                     budget_usd: float | None, progress: Progress | None, run_id: str, poll_s: float,
                     max_rounds: int, max_per_batch: int | None) -> list[Reply]:
    store = BatchStore(ledger.conn)
    keys = [cache_key(teacher.provider, teacher.model, r) for r in requests]
    results: dict[str, Reply] = cache.get_many(keys)
    record_hits(ledger, run_id, teacher, keys, requests, results)
    todo = {k: r for k, r in zip(keys, requests) if k not in results}
    price = teacher.price
    worst = {k: price.cost(max_input_tokens(r.messages), r.max_tokens, batch=True) if price else 0.0
             for k, r in todo.items()}
    registered = PROVIDERS.get(teacher.provider)
    per_batch = max_per_batch or (registered.max_per_batch if registered else MAX_PER_BATCH)
    total = len(set(keys))
    budget, held = Budget(budget_usd, shared), set()  # held: keys whose worst cost is reserved
    tries: Counter[str] = Counter()  # submissions of each key in this run (a resumed one counts)
    resumed: set[str] = set()

    def hold(key: str, force: bool = False) -> bool | None:
        if key in held:
            return True
        if force:  # already at the provider: it will be billed whatever we decide now
            budget.force(worst[key])
            ok: bool | None = True
        else:
            ok = budget.try_reserve(worst[key])
        if ok:
            held.add(key)
        return ok

    polls_failed = 0
    while pending := {k for k in todo if k not in results}:
        for key, reply in _take_landed(teacher, cache, ledger, run_id, pending, todo).items():
            results[key] = reply
            if key in held:
                held.discard(key)
                budget.release(worst[key], None)
        pending -= set(results)
        await _recover_lost(teacher, store, shared)
        open_subs = [s for s in store.unfinished(teacher.spec, "open")
                     if pending.intersection(store.keys(s["submission_id"]))]
        covered = {k for s in open_subs for k in store.keys(s["submission_id"])} & pending
        for sub in open_subs:
            if sub["submission_id"] not in resumed:
                resumed.add(sub["submission_id"])
                tries.update(set(store.keys(sub["submission_id"])) & pending)
        for key in covered:
            hold(key, force=True)
        fresh, waiting = [], False
        for key in (k for k in todo if k in pending and k not in covered):
            claim = shared.claim(key)
            if claim != "mine":  # another run is submitting it, or has just landed it: looked at next round
                waiting = True
                continue
            ok = hold(key)
            if ok:
                fresh.append(key)
            else:
                shared.release(key)
            if ok is False:
                break  # the budget is spent: nothing more is submitted
            # None: fits once the batches in flight land; tried again then
        for start in range(0, len(fresh), per_batch):
            chunk = fresh[start:start + per_batch]
            submission = await _submit(teacher, store, [(k, todo[k]) for k in chunk])
            resumed.add(submission)
            tries.update(chunk)
            ledger.record(run_id=run_id, teacher=teacher.spec, key=None, mode="batch", status="batch_submitted",
                          metadata={"submission": submission, "requests": len(chunk)})
            open_subs.append(store.row(submission))
        if not open_subs and not waiting:
            break
        await asyncio.sleep(poll_s)
        for sub in open_subs:
            try:
                status = await teacher.batch_status(sub["batch_id"])
                if status == "open":
                    continue
                answers = await teacher.batch_results(sub["batch_id"]) if status == "ended" else {}
            except Exception as exc:  # noqa: BLE001 - a failed poll is tried again at the next one
                reason, retryable, _ = classify(exc)
                polls_failed += 1
                if reason in FATAL or not retryable or polls_failed > 20:
                    raise TeacherError(f"{teacher.spec}: polling batch {sub['batch_id']} failed: {reason}") from None
                continue
            polls_failed = 0
            landed = _land(teacher, sub, answers, status, store, cache, ledger, run_id, results)
            for key, reply in landed.items():
                shared.release(key)
                if key in held:
                    held.discard(key)
                    budget.release(worst[key], reply)
                if reply.error is None or not reply.retryable or tries[key] >= max_rounds:
                    results[key] = reply
            if progress:
                progress(len(results), total)

    if budget.stopped and len(results) < total:
        replies = [dataclasses.replace(results[k]) if k in results else None for k in keys]
        raise BudgetExceeded(budget_usd=budget_usd or 0.0, spent_usd=budget.spent, uncertain_usd=0.0,
                             done=len(results), remaining=total - len(results), replies=replies)
    return [dataclasses.replace(results[k]) for k in keys]


def _land(teacher: Teacher, sub: sqlite3.Row, answers: dict[str, Reply], status: str, store: BatchStore,
          cache: Cache, ledger: Ledger, run_id: str, results: dict[str, Reply]) -> dict[str, Reply]:
    """Write a finished batch's replies and mark it done, in one transaction."""
    landed = {}
    with transaction(ledger.conn):
        elsewhere = cache.get_many(store.keys(sub["submission_id"]))  # a concurrent run polled it first
        for key in store.keys(sub["submission_id"]):
            if key in results:
                continue
            if key in elsewhere:
                ledger.record(run_id=run_id, teacher=teacher.spec, key=key, mode="batch", status="cache_hit",
                              reply=elsewhere[key], metadata={"batch_id": sub["batch_id"]})
                landed[key] = elsewhere[key]
                continue
            reply = answers.get(key) or failed(teacher.spec, "batch_failed" if status == "failed"
                                               else "batch_missing_result", retryable=True)
            ledger.record(run_id=run_id, teacher=teacher.spec, key=key, mode="batch",
                          status="ok" if reply.error is None else "failed", reply=reply,
                          attempt=store.rounds(key), metadata={"batch_id": sub["batch_id"]})
            if cacheable(reply):
                cache.put(key, reply)
            landed[key] = reply
        store.mark(sub["submission_id"], "done" if status == "ended" else "failed")
    return landed


async def _submit(teacher: Teacher, store: BatchStore, items: list[tuple[str, Request]], attempts: int = 4) -> str:
    """Write the intent, create the batch, store its id; after a cut-off create, look before sending again."""
    submission = store.intent(teacher.spec, [k for k, _ in items])
    for attempt in range(1, attempts + 1):
        try:
            store.opened(submission, await teacher.submit_batch(items, submission))
            return submission
        except Exception as exc:  # noqa: BLE001 - classified below
            reason, retryable, retry_after = classify(exc)
            if reason in FATAL or not retryable or attempt == attempts:
                store.mark(submission, "lost" if reason in FATAL or not retryable else "submitting")
                raise TeacherError(f"{teacher.spec}: creating a batch failed: {reason}") from None
            found = await teacher.find_batch(submission, store.row(submission)["created_at"], len(items),
                                             store.known_batch_ids())
            if found:
                store.opened(submission, found)
                return submission
            await asyncio.sleep(retry_after if retry_after is not None else random.uniform(0, 2 ** attempt))
    raise AssertionError("unreachable")


async def _recover_lost(teacher: Teacher, store: BatchStore, shared: Shared) -> None:
    """Submissions whose create call never told us a batch id (a kill mid-call): find them or let them go.
    One whose keys a live run holds is being created right now, by that run."""
    for sub in store.unfinished(teacher.spec, "submitting"):
        if shared.busy(store.keys(sub["submission_id"])):
            continue
        found = await teacher.find_batch(sub["submission_id"], sub["created_at"], sub["n"], store.known_batch_ids())
        if found:
            store.opened(sub["submission_id"], found)
        else:
            store.mark(sub["submission_id"], "lost")


def _take_landed(teacher: Teacher, cache: Cache, ledger: Ledger, run_id: str, pending: set[str],
                 todo: dict[str, Request]) -> dict[str, Reply]:
    """Replies a concurrent run landed since we last looked."""
    hits = cache.get_many(sorted(pending))
    record_hits(ledger, run_id, teacher, list(hits), [todo[k] for k in hits], hits)
    return hits
