"""The typed config of `assay synth`: task, teachers, selection, privacy, gap filling, limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from assay.config import Strict
from assay.curation.config import CleanConfig, DedupeConfig
from assay.curation.synth.limits import LimitsConfig
from assay.curation.synth.recognizers import DEFAULT_PHONE_REGIONS
from assay.curation.synth.registry import PROVIDERS
from assay.errors import NotFoundError

if TYPE_CHECKING:
    import polars as pl

    from assay.curation.synth.tasks import Labels

DEFAULT_LOCAL = "local:smollm2-135m-instruct"
DEFAULT_TEACHERS = [DEFAULT_LOCAL, "rule:lead"]
ALIASES = {"local": DEFAULT_LOCAL}  # `--teachers local,openai:gpt-4o-mini`


class LabelsConfig(Strict):
    """The label sets of the classify task. Empty categories: the categories the dataset already has."""

    categories: list[str] = Field(default_factory=list)
    importance: list[str] = Field(default_factory=lambda: ["low", "medium", "high"], min_length=2)
    context: list[str] = Field(default_factory=lambda: ["work", "personal"], min_length=2)

    def resolve(self, df: pl.DataFrame) -> Labels:
        """The label sets in use for the notes in `df`: the configured categories, else the notes' own."""
        from assay.curation.synth.tasks import Labels

        found = df["category"].unique().to_list() if "category" in df.columns else []
        categories = self.categories or sorted(c for c in found if c)
        return Labels(tuple(categories), tuple(self.importance), tuple(self.context))


class GapFillConfig(Strict):
    writer: str | None = None  # teacher that writes new notes; default: the first teacher that is not a rule
    max_new_per_cell: int = Field(20, ge=0)
    oversample: float = Field(1.5, ge=1.0, le=5.0)  # ask for more than missing: clean and dedupe drop some
    examples: int = Field(3, ge=1, le=10)  # real notes of the cell shown to the writer
    example_chars: int = Field(600, ge=50)  # each example is cut to this
    max_tokens: int = Field(160, ge=16, le=4096)
    temperature: float = Field(0.8, ge=0, le=2)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)  # within synthetic notes, and against real ones


class SynthConfig(Strict):
    """First line of a synth YAML says: assay synth DATASET --config THIS.yaml"""

    task: str = "summarize"
    teachers: list[str] = Field(default_factory=lambda: list(DEFAULT_TEACHERS), min_length=1)
    select: str = "consensus"
    similarity: Literal["rouge", "embedding"] = "rouge"  # what consensus compares text outputs with
    embedding_model: str = "all-minilm-l6-v2"
    judge: str | None = None  # teacher spec for select=judge
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    qa_pairs: int = Field(3, ge=1, le=20)
    max_tokens: int | None = Field(None, ge=8, le=32_000)  # default: the task's own
    temperature: float = Field(0.0, ge=0, le=2)
    overwrite: bool = False  # also regenerate rows that already carry an output for this task
    limit: int | None = Field(None, ge=1)  # only the first N notes (a cheap trial run)
    budget_usd: float | None = Field(None, ge=0)
    batch: bool = False  # remote teachers through their batch APIs (half price, replies within 24 h)
    batch_poll_s: float = Field(30.0, gt=0)  # how often a batch's status is checked
    dry_run: bool = False
    allow_cloud_pii: bool = False  # send notes to remote teachers unredacted
    # where phone numbers written without a country code are read from (ISO 3166 codes libphonenumber knows)
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS), min_length=1)
    fill_gaps: bool = False
    gaps: GapFillConfig = Field(default_factory=GapFillConfig)
    limits: dict[str, LimitsConfig] = Field(default_factory=dict)  # per provider, e.g. {"anthropic": {"rpm": 40}}
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)  # "provider:model" -> USD per Mtok in, out
    name: str | None = None  # dataset to write; default: the input's name

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        from assay.curation.synth.tasks import TASKS

        return _known("task", value, TASKS)

    @field_validator("select")
    @classmethod
    def _select(cls, value: str) -> str:
        from assay.curation.synth.select import STRATEGIES

        return _known("selection strategy", value, STRATEGIES)

    @field_validator("teachers", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return [ALIASES.get(v, v) if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("teachers")
    @classmethod
    def _teachers(cls, value: list[str]) -> list[str]:
        for spec in value:
            _check_spec(spec)
        if len(set(value)) != len(value):
            raise ValueError(f"teachers repeat: {value}")
        return value

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        from phonenumbers import SUPPORTED_REGIONS

        value = [v.upper() for v in value]
        for region in value:
            if region not in SUPPORTED_REGIONS:
                raise ValueError(str(NotFoundError("phone region", region, sorted(SUPPORTED_REGIONS))))
        return value

    @field_validator("judge")
    @classmethod
    def _judge(cls, value: str | None) -> str | None:
        value = ALIASES.get(value, value) if value else value
        if value is not None:
            _check_spec(value)
            if value.startswith("rule:"):
                raise ValueError("a rule teacher cannot judge; name a model")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SynthConfig":
        if self.select == "judge" and not self.judge:
            raise ValueError("select=judge needs judge=<teacher spec>, e.g. judge=anthropic:claude-haiku-4-5")
        writer = self.gaps.writer
        if writer is not None:
            _check_spec(writer)
            if writer.startswith("rule:"):
                raise ValueError("gaps.writer: a rule teacher cannot write notes")
        elif self.fill_gaps and all(t.startswith("rule:") for t in self.teachers):
            raise ValueError("fill_gaps needs a teacher that writes notes: add a model teacher or set gaps.writer")
        return self

    def writer(self) -> str:
        return self.gaps.writer or next(t for t in self.teachers if not t.startswith("rule:"))


def _known(kind: str, value: str, registry: dict) -> str:
    if value not in registry:
        raise ValueError(str(NotFoundError(kind, value, list(registry))))
    return value


def _check_spec(spec: str) -> None:
    provider, sep, model = spec.partition(":")
    if provider not in PROVIDERS:
        raise ValueError(str(NotFoundError("teacher provider", provider, list(PROVIDERS))) + f" (in {spec!r})")
    if not sep or not model:
        raise ValueError(f"teacher {spec!r} must be <provider>:<model>, e.g. anthropic:claude-haiku-4-5")
