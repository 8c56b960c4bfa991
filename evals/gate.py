"""Ship rules: a YAML of conditions on the comparison gives SHIP or NO-SHIP, with each failing rule in words.

    rules:
      - {metric: rougeL, against: base, must: better}            # CI entirely above zero
      - {metric: rougeL, against: previous, ci_low_at_least: -0.01}
      - {metric: json_valid, at_least: 0.98}                      # the candidate's own value
      - {metric: latency_p95_ms, at_most: 200}                    # an on-device figure (its first export)

A rule whose baseline is not in the run (no previous version yet) is skipped and says so; a rule on a
figure that was not measured fails: a gate never passes on missing evidence.
"""

from __future__ import annotations

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

    @model_validator(mode="after")
    def _one_condition(self) -> "Rule":
        comparative = self.must is not None or self.ci_low_at_least is not None
        absolute = self.at_least is not None or self.at_most is not None
        if comparative == absolute:
            raise ValueError("give either a comparison (must / ci_low_at_least, with against) or a bound "
                             "(at_least / at_most)")
        if comparative and not self.against:
            raise ValueError("must / ci_low_at_least compare with a baseline: set against")
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


def evaluate_gate(gate: GateConfig | None, results: dict) -> dict:
    """The verdict section of results.json."""
    if gate is None:
        return {"decision": NO_GATE, "summary": "No ship rules were given (assay eval ... --gate FILE), so there "
                "is no verdict; read the comparisons below.", "rules": []}
    checked = [_check(rule, results) for rule in gate.rules]
    failed = [r for r in checked if r["passed"] is False]
    applied = [r for r in checked if r["passed"] is not None]
    if not applied:
        raise ConfigError("gate", ["no rule applies to this run (every baseline it names is missing)"])
    if failed:
        summary = (f"Do not ship: {len(failed)} of {len(applied)} rule(s) failed. "
                   + " ".join(r["explain"] for r in failed))
        return {"decision": NO_SHIP, "summary": summary, "rules": checked}
    return {"decision": SHIP, "summary": f"Ship: the new model met all {len(applied)} rule(s).", "rules": checked}


def _check(rule: Rule, results: dict) -> dict:
    line = {"rule": rule.describe(), "passed": None, "actual": None, "explain": ""}
    metrics = {m["name"]: m for m in results["metrics"]}
    if rule.metric in ONDEVICE:
        return _check_ondevice(rule, results, line)
    info = metrics.get(rule.metric)
    if info is None:
        return {**line, "passed": False, "explain": f"{rule.metric} is not a metric of this suite, so it was not "
                f"measured ({', '.join(metrics)} were)."}
    label, scale = info["label"], info["scale"] or 1
    if rule.against:
        labels = {m["key"]: m["label"] for m in results["models"]}
        if rule.against not in labels:
            return {**line, "explain": f"Skipped: no {rule.against} model in this run."}
        cmp = next((c for c in results["comparisons"] if c["metric"] == rule.metric and c["baseline"] == rule.against),
                   None)
        if cmp is None or cmp["ci_low"] is None:
            return {**line, "passed": False, "explain": f"{label} vs {labels[rule.against]} could not be compared "
                    "(no value for one of them)."}
        sign = 1 if info["higher_is_better"] is not False else -1
        low = min(sign * cmp["ci_low"], sign * cmp["ci_high"])
        words = {"better": "better than", "worse": "worse than", "unclear": "not clearly different from"}
        found = (f"{label}: the new model is {words.get(cmp['verdict'], 'compared with')} {labels[rule.against]} "
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
    value = results["scores"].get(results["candidate"], {}).get(rule.metric)
    if value is None:
        return {**line, "passed": False, "explain": f"{label} could not be computed for the new model."}
    return _bound(rule, line, value, label, scale)


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
