"""Candidate minus baseline, per metric, with a paired bootstrap 95% confidence interval over examples.

Paired: each resample draws the same examples for both models, so the interval is about the
difference on these notes, not about two independent samples. Corpus metrics (macro-F1,
perplexity) are recomputed on every resample; mean metrics use the per-example values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from assay.evals.metrics import Item, Metric

RESAMPLES = 2000
SEED = 20261201


@dataclass(frozen=True)
class Delta:
    metric: str
    baseline: str
    candidate_value: float | None
    baseline_value: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # examples both answered: the pairs the interval is over
    verdict: str  # "better", "worse", "unclear", "n/a"
    missing: int = 0  # examples left out because one of the two gave no answer (a failed teacher call)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def paired_bootstrap(metric: Metric, candidate: list[Item], baseline: list[Item], *, baseline_key: str,
                     resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95,
                     answered: list[bool] | None = None) -> Delta:
    """`candidate[k]` and `baseline[k]` are the two models' outputs for the same example k; `answered[k]` False
    leaves example k out of the pairs (one side has no answer: missing, never scored as wrong)."""
    assert len(candidate) == len(baseline), "paired comparison needs the same examples"
    if answered is not None:
        missing = len(candidate) - sum(answered)
        candidate = [c for c, ok in zip(candidate, answered) if ok]
        baseline = [b for b, ok in zip(baseline, answered) if ok]
        return replace(paired_bootstrap(metric, candidate, baseline, baseline_key=baseline_key, resamples=resamples,
                                        seed=seed, level=level), missing=missing)
    n = len(candidate)
    cand_value, base_value = metric.score(candidate), metric.score(baseline)
    if cand_value is None or base_value is None or n == 0:
        return Delta(metric.name, baseline_key, cand_value, base_value, None, None, None, n, "n/a")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    if metric.corpus is None:
        a = np.array([_nan(metric.per_example(i)) for i in candidate])
        b = np.array([_nan(metric.per_example(i)) for i in baseline])
        both = ~np.isnan(a) & ~np.isnan(b)
        a, b = np.where(both, a, 0.0), np.where(both, b, 0.0)
        counts = both[draws].sum(axis=1)
        diffs = (a[draws].sum(axis=1) - b[draws].sum(axis=1)) / np.maximum(counts, 1)
        diffs = diffs[counts > 0]
    else:
        diffs = []
        for idx in draws:
            x, y = metric.corpus([candidate[k] for k in idx]), metric.corpus([baseline[k] for k in idx])
            if x is not None and y is not None:
                diffs.append(x - y)
        diffs = np.array(diffs)
    if len(diffs) == 0:
        return Delta(metric.name, baseline_key, cand_value, base_value, cand_value - base_value, None, None, n, "n/a")
    tail = (1 - level) / 2 * 100
    low, high = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
    return Delta(metric.name, baseline_key, cand_value, base_value, cand_value - base_value, low, high, n,
                 direction(metric.higher_is_better, low, high))


def direction(higher_is_better: bool | None, low: float, high: float) -> str:
    """Better or worse only when the whole interval is on one side of zero."""
    if higher_is_better is None:
        return "n/a"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "unclear"


def regressions(metric: Metric, candidate: list[Item], baseline: list[Item], ids: list[str],
                answered: list[bool] | None = None) -> list[dict]:
    """Examples where the candidate scores worse than the baseline on `metric`, worst first (of those both
    answered)."""
    if metric.higher_is_better is None:
        return []
    sign = 1 if metric.higher_is_better else -1
    found = []
    for example_id, c, b, ok in zip(ids, candidate, baseline, answered or [True] * len(ids)):
        if not ok:
            continue
        x, y = metric.per_example(c), metric.per_example(b)
        if x is not None and y is not None and sign * (x - y) < 0:
            found.append({"id": example_id, "delta": x - y})
    return sorted(found, key=lambda r: sign * r["delta"])


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
