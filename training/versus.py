"""The run's own verdict: the kept student against the base model, on the same validation rows.

Both answer the rows in the in-run evaluation (`training.callbacks.GenerativeEval`: greedy, the
shared generator) and are scored with ROUGE-L from `evals.metrics`. The comparison is paired (the
same rows for both) with the bootstrap of `evals.compare`, so "better" and "worse" mean the 95%
interval of the difference lies on one side of zero. Its sentence is what `assay train` prints (in
red when the student is worse) and what the model card says.
"""

from __future__ import annotations

from typing import Any

from assay.evals.compare import paired_bootstrap
from assay.evals.metrics import Item, get_metric

WORDS = {"better": "better than", "worse": "worse than", "unclear": "not distinguishable from"}


def compare(base: list[str], student: list[str], references: list[str]) -> dict[str, Any]:
    """Registry metrics: the verdict, both ROUGE-L scores (x100), the difference and its 95% CI."""
    if not base or not (len(base) == len(student) == len(references)):
        return {}
    delta = paired_bootstrap(get_metric("rougeL"), [Item(p, r) for p, r in zip(student, references)],
                             [Item(p, r) for p, r in zip(base, references)], baseline_key="base")
    found = {
        "vs_base": delta.verdict,  # better | worse | unclear
        "validation_rouge_l": round(100 * delta.candidate_value, 2),
        "base_validation_rouge_l": round(100 * delta.baseline_value, 2),
        "vs_base_delta": round(100 * delta.delta, 2),
        "vs_base_ci_low": round(100 * delta.ci_low, 2),
        "vs_base_ci_high": round(100 * delta.ci_high, 2),
        "vs_base_rows": delta.n,
    }
    found["verdict"] = (
        f"{WORDS[delta.verdict]} the base model on {delta.n} validation notes: ROUGE-L "
        f"{found['validation_rouge_l']:.1f} vs {found['base_validation_rouge_l']:.1f} "
        f"(difference {found['vs_base_delta']:+.1f}, 95% CI [{found['vs_base_ci_low']:+.1f}, "
        f"{found['vs_base_ci_high']:+.1f}])")
    return found


def from_log(rows: list[dict], step: int, references: list[str]) -> dict[str, Any]:
    """`compare` of the base's answers (the zero-shot evaluation) and those of the evaluation at `step`."""
    base = next((r["base_predictions"] for r in rows if "base_predictions" in r), None)
    student = next((r["eval_predictions"] for r in reversed(rows)
                    if r["step"] == step and "eval_predictions" in r), None)
    if base is None or student is None:
        return {}
    return compare(base, student, references[:len(base)])
