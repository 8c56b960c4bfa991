"""Inter-annotator agreement (Krippendorff's alpha) and how several answers resolve into one."""

from __future__ import annotations

from collections import Counter
from itertools import permutations
from typing import Any, Hashable, Sequence

TEXT_RULES = ("majority", "longest")


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], metric: str = "nominal") -> float | None:
    """Alpha over units (one list of the answers each item got); units with one answer carry no information.

    nominal: any two different answers disagree fully; interval: squared difference of numbers.
    None when no unit has two answers or every answer is the same value (expected disagreement 0).
    """
    units = [list(u) for u in units if len(u) >= 2]
    if not units:
        return None
    if metric == "nominal":
        def delta(a, b):
            return 0.0 if a == b else 1.0
    elif metric == "interval":
        def delta(a, b):
            return (float(a) - float(b)) ** 2
    else:
        raise ValueError(f"unknown metric {metric!r}: nominal or interval")
    n = sum(len(u) for u in units)
    observed = sum(sum(delta(a, b) for a, b in permutations(u, 2)) / (len(u) - 1) for u in units) / n
    pooled = [v for u in units for v in u]
    counts = Counter(pooled)
    expected = sum(ca * cb * delta(a, b) for a, ca in counts.items() for b, cb in counts.items()) / (n * (n - 1))
    if expected == 0:
        return None
    return 1.0 - observed / expected


def majority(values: Sequence[Any], prefer_not: Any = None) -> Any:
    """Most common answer. A tie goes to an answer other than `prefer_not` (a correction beats the teacher's
    suggestion it corrects), then to the earliest given, so the result does not depend on set order."""
    counts = Counter(values)
    best = max(counts.values())
    tied = [v for v in dict.fromkeys(values) if counts[v] == best]
    changed = [v for v in tied if v != prefer_not]
    return (changed or tied)[0]


def resolve_text(values: Sequence[str], rule: str, original: str | None) -> str:
    if rule == "majority":
        return majority([v.strip() for v in values], prefer_not=(original or "").strip())
    if rule == "longest":
        return max((v.strip() for v in values), key=lambda v: (len(v), v))
    raise ValueError(f"unknown text rule {rule!r}: {', '.join(TEXT_RULES)}")
