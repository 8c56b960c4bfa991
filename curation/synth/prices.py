"""What teacher calls cost: USD per million input/output tokens, and token estimates before sending.

Prices are list prices as published by the providers (standard tier, no prompt caching), kept with
each provider in registry.py; both batch APIs bill half. Override or add any model with
`PriceTable({"openai:my-model": (0.3, 1.2)})` or from a config mapping of the same shape. A remote model with
no price is *unknown*, never free: estimates say so, and a run with a budget refuses to start until a price is
given.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from assay.curation.synth.contract import Price
from assay.curation.synth.registry import PROVIDERS
from assay.errors import AssayError

# the providers' list prices, from their registry entries
DEFAULT_PRICES: dict[str, Price] = {f"{p.name}:{model}": price for p in PROVIDERS.values()
                                    for model, price in p.prices.items()}

# a dated snapshot or alias is priced as its family: claude-haiku-4-5-20251001, gpt-4o-2024-08-06, ...-latest
_SUFFIX = re.compile(r"^(-\d{4}-?\d{2}-?\d{2}|-latest)$")


class UnknownPriceError(AssayError):
    """A budget was set for a teacher whose price is unknown."""


class PriceTable:
    def __init__(self, overrides: Mapping[str, Price | tuple[float, float] | Mapping[str, float]] | None = None):
        self.prices = dict(DEFAULT_PRICES)
        for spec, value in (overrides or {}).items():
            self.prices[spec] = _as_price(spec, value)

    def lookup(self, provider: str, model: str) -> Price | None:
        """The price of provider:model, a dated snapshot priced as its family; None when unknown."""
        exact = self.prices.get(f"{provider}:{model}")
        if exact is not None:
            return exact
        for spec, price in sorted(self.prices.items(), key=lambda kv: -len(kv[0])):
            family = spec.partition(":")[2]
            if spec.startswith(provider + ":") and model.startswith(family) and _SUFFIX.match(model[len(family):]):
                return price
        return None


def _as_price(spec: str, value: object) -> Price:
    if isinstance(value, Price):
        return value
    if isinstance(value, Mapping) and {"input", "output"} <= set(value):
        return Price(float(value["input"]), float(value["output"]))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Price(float(value[0]), float(value[1]))
    raise AssayError(f"price for {spec!r} must be (input, output) USD per million tokens or "
                     f"{{input: .., output: ..}}, got {value!r}")


def estimate_input_tokens(messages: list[dict]) -> int:
    """A typical count (about 4 characters a token) for dry runs and rate limiting."""
    return sum(math.ceil(len(m["content"]) / 4) + 4 for m in messages) + 3


def max_input_tokens(messages: list[dict]) -> int:
    """An upper bound for budget reservations: a token is never shorter than one byte."""
    return sum(len(m["content"].encode("utf-8")) + 8 for m in messages) + 8
