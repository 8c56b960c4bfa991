"""What every part of synth agrees on: a Request, its Reply, the Teacher protocol, prices, teacher errors.

Nothing here imports a teacher implementation or an SDK, so the cache, ledger, runners, selection,
gap filling and the privacy guard can all stand on it. Teachers live in teachers.py and providers.py;
registry.py says which provider builds which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from assay.errors import AssayError

BATCH_DISCOUNT = 0.5  # both Message Batches and the OpenAI Batch API bill 50% of the standard price


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        usd = (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000
        return usd * BATCH_DISCOUNT if batch else usd


FREE = Price(0.0, 0.0)


@dataclass(frozen=True)
class Request:
    """One call; messages already rendered."""

    messages: list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}]
    max_tokens: int = 256
    temperature: float = 0.0
    metadata: dict = field(default_factory=dict)  # note_id, task, prompt_version...; not part of the cache key


@dataclass
class Reply:
    text: str | None
    finish_reason: str  # "stop", "length", "refusal", "error" ("dry_run" for estimates)
    usage: dict  # input_tokens, output_tokens
    cost_usd: float
    cached: bool
    error: str | None  # "rate_limited", "overloaded", "server_error:503", "timeout", "refusal", "max_tokens", ...
    teacher: str
    cost_known: bool = True  # False when the teacher's price is unknown (cost_usd is then 0.0)
    retryable: bool = False  # a transient fault worth another attempt
    retry_after: float | None = None  # seconds the provider asked us to wait
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Teacher(Protocol):
    spec: str
    provider: str
    model: str
    is_remote: bool  # True when notes leave the machine (the privacy guard reads this)
    price: Price | None  # None: unknown
    batch_size: int  # how many requests one generate() call should carry

    async def generate(self, requests: list[Request]) -> list[Reply]: ...


def failed(teacher: str, error: str, *, retryable: bool = False, retry_after: float | None = None,
           usage: dict | None = None, cost_usd: float = 0.0, text: str | None = None,
           finish_reason: str = "error") -> Reply:
    return Reply(text=text, finish_reason=finish_reason, usage=usage or {"input_tokens": 0, "output_tokens": 0},
                 cost_usd=cost_usd, cached=False, error=error, teacher=teacher, retryable=retryable,
                 retry_after=retry_after)


class MissingKeyError(AssayError):
    """A remote teacher was asked for without its API key in the environment."""


class TeacherError(AssayError):
    """A fault that is not per-request (bad key, unknown model): the run stops."""
