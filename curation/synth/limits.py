"""How hard to push a provider: concurrency, requests and tokens per minute, retries with backoff.

One `Limits` object holds its token buckets, so runs that share it (several tasks against one
provider in one process) share the provider's limits. A 429 pauses every worker of the Limits
until the provider's `retry-after` has passed, not just the one that got it.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from pydantic import Field

from assay.config import Strict
from assay.curation.synth.registry import PROVIDERS


class LimitsConfig(Strict):
    """The `limits` section of a synth config; defaults per provider come from its registry entry."""

    concurrency: int = Field(8, ge=1, le=1024)
    rpm: float | None = Field(None, gt=0)  # requests per minute
    tpm: float | None = Field(None, gt=0)  # tokens per minute (estimated input + max_tokens, corrected by usage)
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    max_retry_after_s: float = Field(300.0, gt=0)  # a longer wait is not honoured: the request fails instead


class TokenBucket:
    """Paced, not bursty: `capacity` tokens at most, refilled at `rate` per second.

    A take larger than the capacity waits for a full bucket and then goes into debt, so
    one big request is never stuck and the next ones wait it off.
    """

    def __init__(self, rate_per_s: float, capacity: float):
        self.rate, self.capacity = rate_per_s, capacity
        self.level, self.stamp = capacity, time.monotonic()
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def _lock_here(self) -> asyncio.Lock:
        # a lock belongs to one event loop; Limits may outlive one asyncio.run()
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def take(self, n: float = 1.0) -> None:
        async with self._lock_here():  # first come, first served
            need = min(n, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= n
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def give_back(self, n: float) -> None:
        """Correct an estimate once the real usage is known (n < 0 charges more)."""
        self._refill()
        self.level = min(self.capacity, self.level + n)


@dataclass
class Limits:
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0
    _requests: TokenBucket | None = field(default=None, init=False, repr=False)
    _tokens: TokenBucket | None = field(default=None, init=False, repr=False)
    _paused_until: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rpm:
            self._requests = TokenBucket(self.rpm / 60, capacity=1)
        if self.tpm:
            self._tokens = TokenBucket(self.tpm / 60, capacity=self.tpm / 60)

    @classmethod
    def for_provider(cls, provider: str, config: LimitsConfig | dict | None = None) -> "Limits":
        """The provider's defaults, overridden by whatever the config sets."""
        values = dict(PROVIDERS[provider].limits) if provider in PROVIDERS else {}
        if isinstance(config, LimitsConfig):
            values.update(config.model_dump(exclude_unset=True))
        elif config:
            values.update(LimitsConfig(**config).model_dump(exclude_unset=True))
        return cls(**values)

    async def acquire(self, tokens: float) -> None:
        while (wait := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if self._requests:
            await self._requests.take(1)
        if self._tokens:
            await self._tokens.take(tokens)

    def settle(self, estimated: float, actual: float) -> None:
        if self._tokens:
            self._tokens.give_back(estimated - actual)

    def pause(self, seconds: float) -> None:
        """Hold every worker of these limits back, as the provider asked."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt+1; None when the provider asks for longer than we wait."""
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            return retry_after + random.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        # exponential with full jitter
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))
