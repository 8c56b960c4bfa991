"""results.json as a typed record (evals/SCHEMA.md), checked whenever a run's results are read or rendered.

A hand-edited, truncated or wrongly typed file is one line naming the file and the field, never a
traceback from deep inside the report or the terminal summary. Readers still take the dict as stored:
the model checks it, it does not convert it, so validation is strict (a number written as text is wrong,
not read as a number). Unknown keys are allowed, so a file from a newer assay that adds a section reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assay.errors import InputError, beyond_python

SCHEMA = 1
_PYDANTIC_WORDS = re.compile(r"^Value error, | or instance of \w+")  # pydantic's words, not the file's
MAX_RUN_ID = 255  # bytes: what file systems take for one name in a path


class Open(BaseModel):
    # NaN and infinity are no score: a verdict or a mean built on one is wrong, and the page's JSON cannot hold it
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class SuiteInfo(Open):
    name: str
    version: int
    task: str
    headline: str  # the metric the verdict, trend and regressions use: one of `metrics`
    data: str  # which examples: runs on different data are not compared
    key: str | None = None
    instruction: str | None = None
    config: dict[str, Any] | None = None


class ModelInfo(Open):
    key: str
    label: str
    kind: str


class MetricInfo(Open):
    name: str
    label: str
    higher_is_better: bool | None
    scale: float
    description: str = ""


class Comparison(Open):
    metric: str
    baseline: str
    candidate_value: float | None = None
    baseline_value: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    verdict: str = "n/a"

    @model_validator(mode="after")
    def _interval_needs_a_delta(self) -> "Comparison":
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("ci_low and ci_high are given together or not at all")
        if self.ci_low is not None and self.delta is None:
            raise ValueError("a confidence interval without a delta")
        return self


class Example(Open):
    id: str
    note_id: str | None = None
    title: str | None = None
    text: str
    reference: str | None = None
    question: str | None = None
    category: str | None = None
    words: int | None = Field(None, ge=0)
    predictions: dict[str, str | None]  # per model key; None: the model gave no answer
    failures: dict[str, str] = {}
    scores: dict[str, dict[str, float | None]]


class Regression(Open):
    id: str
    delta: float


class RuleResult(Open):
    rule: str
    passed: bool | None
    actual: str | float | None = None
    explain: str = ""


class Verdict(Open):
    decision: Literal["SHIP", "NO-SHIP", "NO GATE"]
    summary: str
    rules: list[RuleResult] = []


class LogRow(Open):
    # a training run that diverged logs NaN losses; the chart shows what was logged
    model_config = ConfigDict(allow_inf_nan=True)

    step: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    base_loss: float | None = None


class Training(Open):
    log: list[LogRow] = []
    config: dict[str, Any] | None = None


class TrendPoint(Open):
    version: str
    value: float | None = None
    run_id: str | None = None
    current: bool = False


class OndeviceRow(Open):
    format: str
    size_mb: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    peak_memory_mb: float | None = None
    latency_ms: list[float] | None = None


class Confusion(Open):
    labels: list[str]
    matrix: list[list[float]]


class ClassDetails(Open):
    confusion: Confusion | None = None
    per_class: dict[str, dict[str, Any]] = {}


class AnnotatorCounts(Open):
    candidate: int
    baseline: int
    tie: int


# the counts `assay review pull-eval` writes and the report shows: present together or not at all
HUMAN_COUNTS = ("sent", "answered", "wins", "losses", "ties", "responses", "identical", "examples",
                "missing_output", "annotators")


class Human(Open):
    win_rate: float | None  # None: no one has answered yet
    ci_low: float | None
    ci_high: float | None
    n: int
    baseline_label: str | None = None
    baseline: str | None = None
    sent: int | None = None
    answered: int | None = None
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None
    responses: int | None = None
    identical: int | None = None
    examples: int | None = None
    missing_output: int | None = None
    annotators: dict[str, AnnotatorCounts] | None = None

    @model_validator(mode="after")
    def _counted_whole(self):
        given = [f for f in HUMAN_COUNTS if getattr(self, f) is not None]
        if given and len(given) < len(HUMAN_COUNTS):
            missing = [f for f in HUMAN_COUNTS if getattr(self, f) is None]
            raise ValueError(f"the human counts come together; missing {', '.join(missing)}")
        return self


class Made(Open):
    reused: int
    generated: int | None = None
    calls: int | None = None


class Results(Open):
    schema_: Literal[1] = Field(alias="schema")
    run_id: str
    created_at: str | None = None
    suite: SuiteInfo
    candidate: str
    models: list[ModelInfo] = Field(min_length=1)
    metrics: list[MetricInfo]
    scores: dict[str, dict[str, float | None]]
    missing: dict[str, dict[str, str]] = {}
    comparisons: list[Comparison]
    details: dict[str, ClassDetails] = {}
    examples: list[Example]
    regressions: dict[str, list[Regression]] = {}
    verdict: Verdict
    training: Training | None = None
    trend: list[TrendPoint] = []
    ondevice: list[OndeviceRow] = []
    lineage: dict[str, Any] | None = None
    warnings: list[str]
    human: Human | None = None
    judge: dict[str, Any] | None = None
    eval_seconds: float | None = None
    predictions: dict[str, Made] = {}

    @field_validator("run_id")
    @classmethod
    def _a_folder_name(cls, value: str) -> str:
        problem = run_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _names_agree(self) -> "Results":
        """Every key the report looks up names something in the run: a model, a metric."""
        keys = [m.key for m in self.models]
        names = [m.name for m in self.metrics]
        if self.candidate not in keys:
            raise ValueError(f"candidate {self.candidate!r} is not among the models ({', '.join(keys)})")
        unscored = [k for k in keys if k not in self.scores]
        if unscored:
            raise ValueError(f"scores has no entry for model {unscored[0]!r}")
        if self.suite.headline not in names:
            raise ValueError(f"suite.headline {self.suite.headline!r} is not among the metrics ({', '.join(names)})")
        for k, c in enumerate(self.comparisons):
            if c.baseline not in keys:
                raise ValueError(f"comparisons.{k}.baseline {c.baseline!r} is not among the models ({', '.join(keys)})")
            if c.metric not in names:
                raise ValueError(f"comparisons.{k}.metric {c.metric!r} is not among the metrics ({', '.join(names)})")
        return self


def run_id_problem(run_id: str) -> str | None:
    """Why `run_id` cannot name a folder of reports/ (it would land elsewhere, or no file system takes it)."""
    if any(c in run_id for c in "/\\\x00"):
        return "a run id names one folder inside reports/, without '/' or '\\'"
    if not run_id or run_id.startswith("."):
        return "a run id names a folder that does not start with '.'"
    if len(run_id.encode("utf-8", "surrogatepass")) > MAX_RUN_ID:
        return f"a run id must be at most {MAX_RUN_ID} bytes, what file systems take for a folder name"
    return None


def validate(results: Any, where: str) -> dict:
    """`results` if it has the shape of results.json, else InputError naming `where` and the first bad field."""
    if not isinstance(results, dict):
        raise InputError("results must be a JSON object", file=where, value=type(results).__name__)
    if "schema" not in results:
        raise InputError("a required field is missing", file=where, field="schema")
    if results["schema"] != SCHEMA:
        raise InputError(f"unknown results schema (this assay reads schema {SCHEMA})", file=where, field="schema",
                         value=results["schema"])
    try:
        Results.model_validate(results)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = "a required field is missing" if first["type"] == "missing" else _PYDANTIC_WORDS.sub(
            "", " ".join(str(first["msg"]).split()))
        if len(errors) > 1:
            message += f" (the first of {len(errors)} problems)"
        value = None if first["type"] == "missing" or not field else first.get("input")
        raise InputError(message, file=where, field=field, value=value) from None
    return results


def read(path: Path) -> dict:
    """results.json from disk, checked; every way it can be unreadable is one InputError line."""
    where = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=where) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=where) from None
    if not text.strip():
        raise InputError("empty file: no results in it; run the eval again (assay eval ...)", file=where)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); a truncated or "
                         "hand-edited file? run the eval again", file=where) from None
    except (RecursionError, ValueError) as exc:
        raise InputError(f"not valid JSON: {beyond_python(exc)}", file=where) from None
    if "\\u" in text:  # JSON escapes can spell half an emoji (a lone surrogate), which no UTF-8 page can hold
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            half = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
            raise InputError(f"holds a lone surrogate escape ({half}) that no UTF-8 text can hold",
                             file=where) from None
    return validate(data, where)
