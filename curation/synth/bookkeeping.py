"""What both runners (runner.py, batch.py) and the synth verb keep count of: budget, progress, cache hits, calls.

The budget reserves each call's worst-case cost before it leaves, against a limit shared with concurrent
runs (leases.py); BudgetExceeded reports what was spent and what was not sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from assay.curation.synth.cache import transaction
from assay.curation.synth.contract import Reply, Request, Teacher
from assay.curation.synth.leases import Shared
from assay.curation.synth.ledger import Ledger
from assay.errors import AssayError

# faults after which the provider may have done (and billed) the work: counted against the budget
UNCERTAIN = {"timeout", "connection_reset", "malformed_body"}
POLL_S = 0.1  # how often a run looks at what concurrent runs did (a reply it waits for, a settled budget)

Progress = Callable[[int, int], None]


class BudgetExceeded(AssayError):
    """The next call would have gone over the budget; what was done is cached, rerun with more to go on."""

    def __init__(self, *, budget_usd: float, spent_usd: float, uncertain_usd: float, done: int, remaining: int,
                 replies: list[Reply | None], shared_usd: float = 0.0):
        self.budget_usd, self.spent_usd, self.uncertain_usd = budget_usd, spent_usd, uncertain_usd
        self.done, self.remaining, self.replies = done, remaining, replies
        maybe = f" (+ up to ${uncertain_usd:.4f} for calls whose answer was lost)" if uncertain_usd else ""
        shared = (f" (${shared_usd:.4f} in all with the runs sharing it)"
                  if shared_usd > spent_usd + uncertain_usd + 1e-9 else "")
        super().__init__(f"budget ${budget_usd:.4f} reached: spent ${spent_usd:.4f}{maybe} on {done} request(s)"
                         f"{shared}; {remaining} not sent. Replies so far are cached; rerun with a larger budget "
                         f"to go on.")


class Budget:
    """Worst-case reservations against a limit shared with concurrent runs (see leases.py); a call that fits
    only once in-flight ones settle waits for them. `spent` and `uncertain` are this run's own."""

    def __init__(self, limit: float | None, shared: Shared):
        self.limit, self.shared = limit, shared
        self.spent = self.uncertain = self.reserved = 0.0
        self.stopped = False
        self._settled = asyncio.Condition()

    def try_reserve(self, amount: float) -> bool | None:
        """True: reserved. False: can never fit, stop. None: fits once in-flight calls settle."""
        if self.stopped:
            return False
        ok = self.shared.reserve(amount, self.limit)
        if ok:
            self.reserved += amount
        elif ok is False:
            self.stopped = True
        return ok

    def force(self, amount: float) -> None:
        """Reserve without asking: the call is already at the provider and will be billed."""
        self.shared.hold(amount)
        self.reserved += amount

    async def reserve(self, amount: float) -> bool:
        async with self._settled:
            while (ok := self.try_reserve(amount)) is None:
                try:  # a settle here notifies; one in another process is seen by asking again
                    await asyncio.wait_for(self._settled.wait(), POLL_S)
                except TimeoutError:
                    pass
            return ok

    async def wake(self) -> None:
        """Tell the calls of this run waiting for room that some may have been freed."""
        async with self._settled:
            self._settled.notify_all()

    def release(self, reserved: float, reply: Reply | None) -> None:
        self.reserved -= reserved
        charged = 0.0
        if reply is not None:
            self.spent += reply.cost_usd
            charged = reply.cost_usd
            if reply.error in UNCERTAIN:
                self.uncertain += reserved
                charged += reserved
        self.shared.settle(reserved, charged)


def record_hits(ledger: Ledger, run_id: str, teacher: Teacher, keys: list[str], requests: list[Request],
                hits: dict[str, Reply]) -> None:
    """A ledger row for each request answered from the cache, so the ledger tells every reply's origin."""
    if not hits:
        return
    with transaction(ledger.conn):
        for key, request in zip(keys, requests):
            if key in hits:
                ledger.record(run_id=run_id, teacher=teacher.spec, key=key, mode="sync", status="cache_hit",
                              reply=hits[key], metadata=request.metadata)


@dataclass
class Calls:
    """Teacher calls of this run, per teacher spec."""

    lines: dict[str, dict] = field(default_factory=dict)

    def add(self, spec: str, replies: list[Reply]) -> None:
        line = self.lines.setdefault(spec, {"requests": 0, "cache_hits": 0, "calls": 0, "failed": 0, "cost_usd": 0.0,
                                            "cost_known": True, "input_tokens": 0, "output_tokens": 0})
        for r in replies:
            line["requests"] += 1
            if r.cached:
                line["cache_hits"] += 1
                continue
            line["calls"] += r.attempts
            line["failed"] += r.error is not None
            line["cost_usd"] += r.cost_usd
            line["cost_known"] &= r.cost_known
            line["input_tokens"] += r.usage.get("input_tokens", 0)
            line["output_tokens"] += r.usage.get("output_tokens", 0)

    @property
    def spent(self) -> float:
        return sum(line["cost_usd"] for line in self.lines.values())
