"""Ship rules: a YAML of conditions on the comparison gives SHIP or NO-SHIP, with each failing rule in words.

    rules:
      - {metric: rougeL, against: base, must: better}            # CI entirely above zero
      - {metric: rougeL, against: previous, ci_low_at_least: -0.01}
      - {metric: json_valid, at_least: 0.98}                      # the candidate's own value
      - {metric: latency_p95_ms, at_most: 200}                    # an on-device figure (its first export)

Every rule is evaluated on this run's own results. A rule that cannot be (its baseline is not in the run,
its metric is not one of the suite's, its on-device figure is not measured) is an error before any prediction
is made (`preflight`), or, with `if_absent: no_ship`, a failed rule that names what is missing. The one
exception is written in the gate file: `if_absent: first_version` on a rule against `previous` says the rule
does not apply to a model with no previous version (and the verdict says so); left out by --against, it is
still an error. A baseline that failed to answer some examples is missing there, not wrong: a rule against it
fails when more than `max_missing` (a fraction, default 0) of the examples lack its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from assay.config import Strict, load_config
from assay.errors import ConfigError

SHIP, NO_SHIP, NO_GATE = "SHIP", "NO-SHIP", "NO GATE"
EXIT_NO_SHIP = 4  # distinct from errors (1, 2) and a failed export parity (3), for CI
ONDEVICE = {"latency_p50_ms": "median latency per example (ms)", "latency_p95_ms": "95th-percentile latency (ms)",
            "ttft_ms": "time to first token (ms)", "tokens_per_s": "tokens per second",
            "peak_memory_mb": "peak memory (MB)", "size_mb": "size on disk (MB)"}


class Rule(Strict):
    metric: str
    against: str | None = None  # a baseline key: previous, base, rule:lead, teacher:local ...
    must: Literal["better", "not_worse"] | None = None
    ci_low_at_least: float | None = None  # on the improvement (candidate better = positive), raw units
    at_least: float | None = None
    at_most: float | None = None
    format: str | None = None  # on-device figures: which export (default: the first measured)
    # what a rule that cannot be evaluated on a run does: error (before any prediction), no_ship (fails, named),
    # first_version (against previous only: does not apply while the model has no previous version)
    if_absent: Literal["error", "no_ship", "first_version"] = "error"
    max_missing: float = Field(0.0, ge=0, le=1)  # share of examples a baseline (or the candidate) may lack

    @model_validator(mode="after")
    def _one_condition(self) -> "Rule":
        comparative = self.must is not None or self.ci_low_at_least is not None
        absolute = self.at_least is not None or self.at_most is not None
        if comparative == absolute:
            raise ValueError("give either a comparison (must / ci_low_at_least, with against) or a bound "
                             "(at_least / at_most)")
        if comparative and not self.against:
            raise ValueError("must / ci_low_at_least compare with a baseline: set against")
        if absolute and self.against:
            raise ValueError(f"at_least / at_most bound the new model's own value; against ({self.against}) "
                             "is for must / ci_low_at_least")
        if self.if_absent == "first_version" and self.against != "previous":
            raise ValueError("if_absent: first_version is for rules against previous")
        return self

    def describe(self) -> str:
        if self.must:
            return f"{self.metric} {self.must.replace('_', ' ')} than {self.against}"
        if self.ci_low_at_least is not None:
            return f"{self.metric} vs {self.against}: CI lower bound of the improvement >= {self.ci_low_at_least:g}"
        bound = f">= {self.at_least:g}" if self.at_least is not None else f"<= {self.at_most:g}"
        return f"{self.metric} {bound}" + (f" ({self.format})" if self.format else "")


class GateConfig(Strict):
    """First line of a gate YAML says: assay eval SUITE --model NAME@VERSION --gate THIS.yaml"""

    rules: list[Rule] = Field(min_length=1)


def load_gate(path: str | Path, overrides: list[str] | None = None) -> GateConfig:
    return load_config(GateConfig, path, overrides)


@dataclass(frozen=True)
class RunShape:
    """What a run can be judged on, known before any prediction: the gate is checked against it."""

    metrics: tuple[str, ...]  # the suite's metrics (and harness:<metric> when the harness runs)
    baselines: tuple[str, ...]  # contestant keys other than the candidate
    has_previous: bool  # the candidate has a registered previous version
    exports: tuple[str, ...] | None  # formats whose on-device figures this run measures (None: not measured)


def absent(rule: Rule, shape: RunShape) -> str | None:
    """Why `rule` cannot be evaluated on a run of this shape (None: it can)."""
    if rule.metric in ONDEVICE:
        if shape.exports is None:
            return "on-device figures are not measured in this run (the suite sets ondevice.measure: false)"
        if rule.format and rule.format not in shape.exports:
            return (f"the model has no {rule.format} export to measure "
                    f"(assay export NAME@VERSION --format {rule.format})")
        if not shape.exports:
            return "the model has no export to measure (assay export NAME@VERSION --format ...)"
        return None
    if rule.metric not in shape.metrics:
        return f"{rule.metric} is not a metric of this suite ({', '.join(shape.metrics)} are)"
    if rule.against and rule.against not in shape.baselines:
        if rule.against == "previous" and not shape.has_previous:
            return "the model has no previous version"
        listed = ", ".join(shape.baselines) or "none"
        return f"{rule.against} is not a baseline of this run (baselines: {listed}; add it with --against)"
    return None


def preflight(gate: GateConfig | None, shape: RunShape, *, where: str = "gate") -> None:
    """Raise before any prediction for every rule that cannot be evaluated and says `if_absent: error`."""
    if gate is None:
        return
    problems = []
    for k, rule in enumerate(gate.rules, 1):
        why = absent(rule, shape)
        first_version = rule.if_absent == "first_version" and rule.against == "previous" and not shape.has_previous
        if why and rule.if_absent != "no_ship" and not first_version:
            problems.append(f"rules[{k}] ({rule.describe()}) cannot be evaluated: {why}. Fix the rule, or set "
                            "if_absent: no_ship on it to fail the verdict instead")
    if problems:
        raise ConfigError(where, problems)


def shape_of(results: dict) -> RunShape:
    """The shape of a finished run, from its results."""
    measured = results.get("ondevice_measured")
    exports = None if measured is False else tuple(e["format"] for e in results.get("ondevice") or [])
    return RunShape(tuple(m["name"] for m in results["metrics"]),
                    tuple(m["key"] for m in results["models"] if m["key"] != results["candidate"]),
                    bool(results.get("previous_version")), exports)


def evaluate_gate(gate: GateConfig | None, results: dict) -> dict:
    """The verdict section of results.json: every rule evaluated on these results, or named as not evaluable."""
    if gate is None:
        return {"decision": NO_GATE, "summary": "No ship rules were given (assay eval ... --gate FILE), so there "
                "is no verdict; read the comparisons below.", "rules": []}
    shape = shape_of(results)
    checked = [_check(rule, results, shape) for rule in gate.rules]
    failed = [r for r in checked if r["passed"] is False]
    applied = [r for r in checked if r["passed"] is not None]
    skipped = [r for r in checked if r["passed"] is None]
    if not applied:
        raise ConfigError("gate", ["no rule applies to this run: " + " ".join(r["explain"] for r in skipped)])
    aside = (f" {len(skipped)} rule(s) did not apply: " + " ".join(r["explain"] for r in skipped)) if skipped else ""
    if failed:
        summary = (f"Do not ship: {len(failed)} of {len(applied)} rule(s) failed. "
                   + " ".join(r["explain"] for r in failed) + aside)
        return {"decision": NO_SHIP, "summary": summary, "rules": checked}
    return {"decision": SHIP, "summary": f"Ship: the new model met all {len(applied)} rule(s).{aside}",
            "rules": checked}


def _check(rule: Rule, results: dict, shape: RunShape) -> dict:
    line = {"rule": rule.describe(), "passed": None, "actual": None, "explain": ""}
    why = absent(rule, shape)
    if why:
        if rule.if_absent == "first_version" and rule.against == "previous" and not shape.has_previous:
            return {**line, "explain": f"Not applicable ({rule.describe()}): the model has no previous version."}
        return {**line, "passed": False, "explain": f"Not evaluated ({rule.describe()}): {why}."}
    if rule.metric in ONDEVICE:
        return _check_ondevice(rule, results, line)
    info = next(m for m in results["metrics"] if m["name"] == rule.metric)
    label, scale = info["label"], info["scale"] or 1
    if rule.against:
        labels = {m["key"]: m["label"] for m in results["models"]}
        lacking = _lacking(results, rule.against)
        if lacking and lacking[0] / lacking[1] > rule.max_missing:
            return {**line, "passed": False, "actual": f"{lacking[0]} of {lacking[1]} missing",
                    "explain": f"{labels[rule.against]} gave no answer for {lacking[0]} of {lacking[1]} examples "
                    f"({_reasons(results, rule.against)}); the rule allows {rule.max_missing:.0%} missing, so it "
                    "cannot be compared fairly."}
        cmp = next((c for c in results["comparisons"] if c["metric"] == rule.metric and c["baseline"] == rule.against),
                   None)
        if cmp is None or cmp["ci_low"] is None:
            return {**line, "passed": False, "explain": f"{label} vs {labels[rule.against]} could not be compared "
                    "(no value for one of them)."}
        sign = 1 if info["higher_is_better"] is not False else -1
        low = min(sign * cmp["ci_low"], sign * cmp["ci_high"])
        words = {"better": "better than", "worse": "worse than", "unclear": "not clearly different from"}
        over = f" on the {cmp['n']} examples both answered" if lacking else ""
        found = (f"{label}: the new model is {words.get(cmp['verdict'], 'compared with')} {labels[rule.against]}{over} "
                 f"({cmp['candidate_value'] * scale:.2f} vs {cmp['baseline_value'] * scale:.2f}, difference "
                 f"{cmp['delta'] * scale:+.2f}, 95% CI {cmp['ci_low'] * scale:+.2f} to {cmp['ci_high'] * scale:+.2f}).")
        if rule.must == "better":
            passed = cmp["verdict"] == "better"
            need = "The rule needs it to be clearly better."
        elif rule.must == "not_worse":
            passed = cmp["verdict"] != "worse"
            need = "The rule needs it not to be clearly worse."
        else:
            passed = low >= rule.ci_low_at_least
            need = f"The rule allows a loss of at most {-rule.ci_low_at_least * scale:.2f}."
        return {**line, "passed": passed, "actual": f"{cmp['delta'] * scale:+.2f} [{cmp['ci_low'] * scale:+.2f}, "
                f"{cmp['ci_high'] * scale:+.2f}]", "explain": found + ("" if passed else " " + need)}
    lacking = _lacking(results, results["candidate"])
    if lacking and lacking[0] / lacking[1] > rule.max_missing:
        return {**line, "passed": False, "actual": f"{lacking[0]} of {lacking[1]} missing",
                "explain": f"The new model gave no answer for {lacking[0]} of {lacking[1]} examples."}
    value = results["scores"].get(results["candidate"], {}).get(rule.metric)
    if value is None:
        return {**line, "passed": False, "explain": f"{label} could not be computed for the new model."}
    return _bound(rule, line, value, label, scale)


def _lacking(results: dict, key: str) -> tuple[int, int] | None:
    """(examples without an answer, examples) for a contestant, None when it answered every one."""
    entry = (results.get("unanswered") or {}).get(key)
    return (entry["count"], entry["of"]) if entry and entry["count"] else None


def _reasons(results: dict, key: str) -> str:
    reasons = results["unanswered"][key]["reasons"]
    return ", ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))


def _check_ondevice(rule: Rule, results: dict, line: dict) -> dict:
    measured = [e for e in results.get("ondevice") or [] if rule.metric in e and e[rule.metric] is not None]
    if rule.format:
        measured = [e for e in measured if e["format"] == rule.format]
    if not measured:
        where = f"a {rule.format} export" if rule.format else "an export"
        return {**line, "passed": False, "explain": f"No on-device figure: {ONDEVICE[rule.metric]} needs {where} of "
                "the model (assay export NAME@VERSION --format ...)."}
    first = measured[0]
    return _bound(rule, line, first[rule.metric], f"{ONDEVICE[rule.metric]} of the {first['format']} export", 1)


def _bound(rule: Rule, line: dict, value: float, label: str, scale: float) -> dict:
    shown = f"{value * scale:.2f}"
    if rule.at_least is not None:
        passed = value >= rule.at_least
        need = f"at least {rule.at_least * scale:.2f}"
    else:
        passed = value <= rule.at_most
        need = f"at most {rule.at_most * scale:.2f}"
    explain = f"{label} is {shown}; the rule needs {need}."
    return {**line, "passed": passed, "actual": shown, "explain": explain}
