"""The one place a teacher provider is registered: how to build it, its key, default limits, prices, batch size.

A teacher is named by a spec, "<provider>:<model>":
  anthropic:claude-haiku-4-5          Messages API (ANTHROPIC_API_KEY)
  openai:gpt-4o-mini                  Chat Completions (OPENAI_API_KEY)
  openai-compatible:qwen2.5@http://localhost:8000/v1   any OpenAI-compatible server (key optional)
  local:smollm2-135m-instruct         an in-process transformers model from the catalogue, or a path
  rule:lead, rule:keywords            rule baselines, free and instant

Adding a provider is one `Provider(...)` entry in PROVIDERS; limits.py, prices.py, the runners and the
config check read it from here. A teacher class offers a batch API by having `submit_batch` (see batch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from assay.curation.synth.contract import Price, Teacher
from assay.errors import NotFoundError

MAX_PER_BATCH = 10_000  # requests in one batch submission unless a provider says otherwise


@dataclass(frozen=True)
class Provider:
    name: str
    build: Callable[..., Teacher]  # (name: the spec after "<provider>:", **options) -> Teacher
    key_env: str | None = None  # the environment variable holding the API key
    limits: dict = field(default_factory=dict)  # default Limits (concurrency, rpm, tpm); a config overrides them
    prices: dict[str, Price] = field(default_factory=dict)  # model -> list price; a config adds or overrides
    max_per_batch: int = MAX_PER_BATCH  # requests in one batch submission, for teachers with a batch API


# The builders take the name positionally (a local teacher's `model=` option is a loaded model).
# They import teacher code only when a teacher is made: limits and prices read their entries
# without loading an SDK, and the teacher modules may import prices.py, which reads this registry.

def _anthropic(name: str, **options: Any) -> Teacher:
    from assay.curation.synth.providers import AnthropicTeacher
    return AnthropicTeacher(name, **options)


def _openai(name: str, **options: Any) -> Teacher:
    from assay.curation.synth.providers import OpenAITeacher
    return OpenAITeacher(name, **options)


def _openai_compatible(name: str, **options: Any) -> Teacher:
    from assay.curation.synth.providers import OpenAICompatibleTeacher
    return OpenAICompatibleTeacher(name, **options)


def _local(name: str, **options: Any) -> Teacher:
    from assay.curation.synth.teachers import LocalTeacher
    return LocalTeacher(name, **options)


def _rule(name: str, **options: Any) -> Teacher:
    from assay.curation.synth.teachers import rule_teacher
    return rule_teacher(name, **options)


# Limits are conservative starting points (entry tiers); raise them in config to match your account.
# Prices are list prices as published (standard tier, no prompt caching), USD per million tokens.
PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("anthropic", _anthropic, key_env="ANTHROPIC_API_KEY",
             limits={"concurrency": 8, "rpm": 50, "tpm": 50_000}, max_per_batch=10_000, prices={
                 "claude-haiku-4-5": Price(1.0, 5.0),
                 "claude-sonnet-4-5": Price(3.0, 15.0),
                 "claude-sonnet-4-6": Price(3.0, 15.0),
                 "claude-sonnet-4": Price(3.0, 15.0),
                 "claude-sonnet-4-0": Price(3.0, 15.0),
                 "claude-opus-4-5": Price(5.0, 25.0),
                 "claude-opus-4-6": Price(5.0, 25.0),
                 "claude-opus-4-7": Price(5.0, 25.0),
                 "claude-opus-4-1": Price(15.0, 75.0),
                 "claude-opus-4": Price(15.0, 75.0),
                 "claude-3-7-sonnet": Price(3.0, 15.0),
                 "claude-3-5-haiku": Price(0.8, 4.0),
                 "claude-3-haiku": Price(0.25, 1.25),
             }),
    Provider("openai", _openai, key_env="OPENAI_API_KEY",
             limits={"concurrency": 16, "rpm": 500, "tpm": 200_000}, max_per_batch=50_000, prices={
                 "gpt-4o-mini": Price(0.15, 0.60),
                 "gpt-4o": Price(2.50, 10.0),
                 "gpt-4.1": Price(2.0, 8.0),
                 "gpt-4.1-mini": Price(0.40, 1.60),
                 "gpt-4.1-nano": Price(0.10, 0.40),
                 "gpt-5": Price(1.25, 10.0),
                 "gpt-5-mini": Price(0.25, 2.0),
                 "gpt-5-nano": Price(0.05, 0.40),
                 "o4-mini": Price(1.10, 4.40),
                 "o3": Price(2.0, 8.0),
                 "o3-mini": Price(1.10, 4.40),
             }),
    # the key is optional: many local servers need none
    Provider("openai-compatible", _openai_compatible, key_env="OPENAI_COMPATIBLE_API_KEY",
             limits={"concurrency": 16}),
    Provider("local", _local, limits={"concurrency": 1}),
    Provider("rule", _rule, limits={"concurrency": 1}),
)}


def get_teacher(spec: str, **options: Any) -> Teacher:
    """Build the teacher a spec names; options go to its constructor (prices=PriceTable(...), timeout_s=...)."""
    provider, sep, model = spec.partition(":")
    if provider not in PROVIDERS:
        raise NotFoundError("teacher provider", provider, list(PROVIDERS))
    if not sep or not model:
        raise NotFoundError("teacher", spec, [f"{p}:<model>" for p in PROVIDERS])
    return PROVIDERS[provider].build(model, **options)
