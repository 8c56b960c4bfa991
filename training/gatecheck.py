"""The ship gate's rules on the validation rows: which checkpoint a run keeps, and what it says about it.

`assay eval --gate` decides SHIP or NO-SHIP on a held-out suite. A run that kept the checkpoint with the
best ROUGE-L alone kept ones the gate then refused (on real notes: +8.2 ROUGE-L over the base, 61.7% of
the summaries of the asked length, NO-SHIP). So at every evaluation each gate rule that can be computed
on the validation answers is checked:

    a bound on a metric of the student's own answers     length_ok >= 0.8, repetition <= 0.05
    a comparison with the base model on the same rows    rougeL vs base: better (paired bootstrap CI)

and the run keeps the checkpoint that passes the most of them, with the best headline metric among
those (`rank`). Rules that need what a run does not have (a previous version, a teacher, an export,
embeddings or log-probabilities) are listed as not checked, never counted as passed.

The rules are evals.gate's own (`load_gate`, `Rule`): training reads a gate file exactly as `assay eval`
does, and each condition means what it means there (evals/gate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assay import shipped
from assay.errors import ConfigError
from assay.evals.compare import paired_bootstrap
from assay.evals.gate import ONDEVICE, Rule, load_gate
from assay.evals.metrics import METRICS, Item, get_metric

# rank = RANK_STEP x rules passed + headline (in [0, 1)): any checkpoint passing more rules ranks higher
RANK_STEP = 10.0


@dataclass(frozen=True)
class Check:
    rule: str  # Rule.describe()
    passed: bool
    actual: str  # the value, or the difference and its CI


@dataclass(frozen=True)
class ValidationGate:
    path: str
    rules: tuple[Rule, ...]  # the rules checked on the validation rows
    unchecked: tuple[tuple[str, str], ...]  # (rule, why it cannot be checked in a training run)

    def check(self, student: list[str], base: list[str] | None, references: list[str]) -> list[Check]:
        """Each checkable rule on these answers; a comparison without the base's answers fails."""
        mine = [Item(p, r) for p, r in zip(student, references)]
        theirs = [Item(p, r) for p, r in zip(base, references)] if base else None
        return [_check(rule, mine, theirs) for rule in self.rules]


def resolve(path: str) -> Path:
    """A gate file as given (absolute or from the working folder), else a shipped one (evals/gates/...)."""
    return shipped.resolve(path)


def load(path: str) -> ValidationGate:
    """The gate's rules split into those a run checks on its validation answers and those it cannot."""
    found = resolve(path)
    if not found.is_file():
        raise ConfigError(path, ["no such gate file (shipped: evals/gates/default.yaml)"])
    gate = load_gate(found)
    rules, unchecked = [], []
    for rule in gate.rules:
        why = _why_unchecked(rule)
        if why:
            unchecked.append((rule.describe(), why))
        else:
            rules.append(rule)
    return ValidationGate(str(found), tuple(rules), tuple(unchecked))


def _why_unchecked(rule: Rule) -> str | None:
    if rule.metric in ONDEVICE:
        return "an on-device figure: measured on an export by assay eval"
    if rule.metric not in METRICS:
        return f"{rule.metric} is not a metric of the registry"
    if get_metric(rule.metric).needs:
        return f"needs {', '.join(sorted(get_metric(rule.metric).needs))}, which training does not compute"
    if _comparative(rule) and rule.against != "base":
        return f"no {rule.against} model answers the validation rows in a training run"
    return None


def _comparative(rule: Rule) -> bool:
    return rule.must is not None or rule.ci_low_at_least is not None


def _check(rule: Rule, mine: list[Item], base: list[Item] | None) -> Check:
    metric = get_metric(rule.metric)
    scale = metric.scale or 1
    if not _comparative(rule):
        value = metric.score(mine)
        if value is None:
            return Check(rule.describe(), False, "not computable")
        passed = ((rule.at_least is None or value >= rule.at_least)
                  and (rule.at_most is None or value <= rule.at_most))
        need = " and ".join(f"{word} {bound * scale:.2f}" for word, bound in
                            (("at least", rule.at_least), ("at most", rule.at_most)) if bound is not None)
        return Check(rule.describe(), passed, f"{value * scale:.2f}" + ("" if passed else f", needs {need}"))
    if not base:
        return Check(rule.describe(), False, "no base answers")
    delta = paired_bootstrap(metric, mine, base, baseline_key="base")
    if delta.ci_low is None:
        return Check(rule.describe(), False, "not computable")
    actual = f"{delta.delta * scale:+.2f} [{delta.ci_low * scale:+.2f}, {delta.ci_high * scale:+.2f}]"
    if rule.must == "better":
        passed = delta.verdict == "better"
    elif rule.must == "not_worse":
        passed = delta.verdict != "worse"
    else:  # ci_low_at_least: on the improvement, candidate better = positive (as evals.gate reads it)
        sign = 1 if metric.higher_is_better is not False else -1
        passed = min(sign * delta.ci_low, sign * delta.ci_high) >= rule.ci_low_at_least
    return Check(rule.describe(), passed, actual)


def rank(checks: list[Check], headline: float) -> float:
    """Most rules passed first, then the headline (ROUGE-L in [0, 1], or a loss mapped into it)."""
    return RANK_STEP * sum(c.passed for c in checks) + min(max(headline, 0.0), 0.999)


def headline_of(metrics: dict, prefix: str, best_metric: str) -> float:
    """The tie-breaker among checkpoints passing as many rules: ROUGE-L, or 1 / (1 + loss)."""
    if best_metric == "rouge_l":
        return metrics[f"{prefix}_rouge_l"]
    return 1.0 / (1.0 + metrics[f"{prefix}_loss"])


def from_log(rows: list[dict], step: int | None) -> list[Check] | None:
    """The checks logged for the evaluation at `step` (None: that evaluation checked no gate)."""
    found = next((r["eval_gate"] for r in reversed(rows) if r["step"] == step and "eval_gate" in r), None)
    return None if found is None else [Check(**c) for c in found]


def summary(checks: list[Check], gate: ValidationGate, rows: int) -> str:
    """One line: how many rules pass on validation, each with its figure, and what was not checked."""
    passed = sum(c.passed for c in checks)
    parts = [f"{'passes' if c.passed else 'FAILS'} {c.rule} ({c.actual})" for c in checks]
    line = (f"ship gate {Path(gate.path).name} on {rows} validation notes: {passed} of {len(checks)} rule(s) "
            f"pass: " + "; ".join(parts))
    if gate.unchecked:
        line += "; not checked in training: " + "; ".join(f"{rule} ({why})" for rule, why in gate.unchecked)
    return line
