"""Eval suites: typed config from evals/suites/*.yaml, and the examples it names.

A suite is data: which examples (a dataset version's split, or a gold file joined to a notes export),
which task, how the prompt is built, generation settings, metrics and a version. Results of
different suite versions are never compared.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, model_validator

from assay import shipped
from assay.config import Strict, load_config
from assay.errors import ConfigError, InputError
from assay.evals.metrics import METRICS, as_json

SUITES = shipped.folder("evals") / "suites"
TASK_METRICS = {
    "summarize": ["rougeL", "rouge1", "rouge2", "embed_sim", "embed_sim_teacher", "length_ok", "words", "repetition",
                  "perplexity"],
    "classify": ["accuracy", "macro_f1", "json_valid"],
    "extract": ["json_valid", "field_f1", "field_precision", "field_recall"],
    "qa": ["token_f1", "exact_match", "words"],
}
# what can score a task's output at all: text metrics read free text, label metrics a label, field metrics
# the extracted lists; any other pairing yields a number that means nothing (field F1 of a label is 1.0)
_TEXT = ["rougeL", "rouge1", "rouge2", "embed_sim", "embed_sim_teacher", "words", "repetition", "perplexity"]
TASK_ALLOWED = {
    "summarize": [*_TEXT, "length_ok"],
    "qa": [*_TEXT, "token_f1", "exact_match"],
    "classify": ["accuracy", "macro_f1", "json_valid"],
    "extract": ["json_valid", "field_f1", "field_precision", "field_recall"],
}


class DataSection(Strict):
    dataset: str | None = "notes"  # NAME or NAME@vN: rows of `split` with a reference output for the task
    split: Literal["test", "validation", "train"] = "test"
    gold: str | None = None  # a JSONL of {note_id, <reference_field>...}; note text from `notes` (or `dataset`)
    notes: str | None = None  # the export the gold note ids come from (json, jsonl, csv, markdown, enex)
    reference_field: str = "summary"  # the gold field holding the reference (classify: the label field)
    limit: int | None = Field(None, ge=1)


class PromptSection(Strict):
    # "from_training": the instruction the candidate's training rows carried for this task (a student is
    # asked what it was taught); any other text is used as written
    instruction: str = "from_training"
    include_title: bool = True
    label_field: str = "category"  # classify: which label the gold compares


class GenerationSection(Strict):
    max_new_tokens: int = Field(96, ge=1, le=4096)
    batch_size: int = Field(8, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)  # 0: greedy
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
    seed: int = 0


class JudgeSection(Strict):
    teacher: str | None = None  # a teacher spec; None disables the LLM-as-judge preference
    budget_usd: float | None = Field(None, ge=0)
    against: str | None = None  # the baseline the judge compares with; None: previous if in the run, else base


class OndeviceSection(Strict):
    measure: bool = True  # latency, first token, memory, size of each export of the candidate (evals/ondevice.py)
    prompts: int = Field(8, ge=1)  # the suite's first N prompts
    max_new_tokens: int = Field(32, ge=1, le=4096)  # generated per prompt, no stop token: a fixed amount of work


class SuiteConfig(Strict):
    """First line of a suite YAML says: assay eval THIS.yaml --model NAME@VERSION"""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: int = Field(ge=1)
    task: Literal["summarize", "classify", "extract", "qa"]
    data: DataSection = Field(default_factory=DataSection)
    prompt: PromptSection = Field(default_factory=PromptSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    metrics: list[str] = Field(default_factory=list)  # empty: the task's defaults
    headline: str | None = None  # the metric the verdict, trend and regressions use; default: the first
    against: list[str] = Field(default_factory=lambda: ["previous", "base"])
    judge: JudgeSection = Field(default_factory=JudgeSection)
    harness: bool = False  # also run the task through lm-evaluation-harness: `harness:<metric>` rows (evals/harness.py)
    ondevice: OndeviceSection = Field(default_factory=OndeviceSection)

    @model_validator(mode="after")
    def _defaults(self) -> "SuiteConfig":
        if not self.metrics:
            self.metrics = list(TASK_METRICS[self.task])
        if self.headline is None:
            self.headline = self.metrics[0]
        return self

    def problems(self) -> list[str]:
        found = [f"metrics: unknown metric {m!r}; known: {', '.join(METRICS)}"
                 for m in self.metrics if m not in METRICS]
        found += [f"metrics: {m!r} does not score a {self.task} task; its metrics: {', '.join(TASK_ALLOWED[self.task])}"
                  for m in self.metrics if m in METRICS and m not in TASK_ALLOWED[self.task]]
        if self.headline not in self.metrics:
            found.append(f"headline: {self.headline!r} is not one of metrics ({', '.join(self.metrics)})")
        elif METRICS.get(self.headline) and METRICS[self.headline].higher_is_better is None:
            found.append(f"headline: {self.headline!r} has no better direction; pick a scored metric")
        if self.harness and self.task not in ("summarize", "qa"):
            found.append(f"harness: lm-eval runs the free-text tasks (summarize, qa), not {self.task}")
        if self.data.gold is None and self.data.dataset is None:
            found.append("data: name a dataset (its split's labeled rows) or a gold file")
        return found

    @property
    def key(self) -> str:
        """What makes two runs' predictions interchangeable: suite version, data, prompt and generation."""
        payload = json.dumps([self.name, self.version, self.task, self.data.model_dump(), self.prompt.model_dump(),
                              self.generation.model_dump()], sort_keys=True)
        return f"{self.name}/v{self.version}:{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def load_suite(path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    """A suite by path or by name (evals/suites/<name>.yaml); every problem reported at once."""
    found = Path(path)
    if not found.exists() and (SUITES / f"{path}.yaml").exists():
        found = SUITES / f"{path}.yaml"
    if not found.exists():
        known = sorted(p.stem for p in SUITES.glob("*.yaml"))
        raise ConfigError(str(path), [f"no such suite file; shipped suites: {', '.join(known)}"])
    suite = load_config(SuiteConfig, found, overrides)
    problems = suite.problems()
    if problems:
        raise ConfigError(str(found), problems)
    return suite


# ---------------------------------------------------------------- examples

@dataclass
class Example:
    id: str
    note_id: str | None
    title: str | None
    text: str
    reference: Any  # text (summarize, qa), a label or label dict (classify), a JSON object (extract)
    category: str | None = None
    question: str | None = None  # qa
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reference_text(self) -> str:
        return self.reference if isinstance(self.reference, str) else json.dumps(self.reference, ensure_ascii=False)


def resolve_path(path: str) -> Path:
    """A suite's file path: as given (cwd or absolute), else a shipped file of that name."""
    return shipped.resolve(path)


def load_examples(suite: SuiteConfig, *, store, dataset_ref: str | None = None) -> tuple[list[Example], str]:
    """The suite's examples and a line describing where they came from."""
    if suite.data.gold:
        examples, where = _gold_examples(suite, store, dataset_ref)
    else:
        examples, where = _split_examples(suite, store, dataset_ref)
    if suite.data.limit:
        examples = examples[: suite.data.limit]
    if not examples:
        raise InputError(f"suite {suite.name} has no examples ({where}); label some with `assay synth --task "
                         f"{suite.task}` or point data.gold at a gold file", field="data")
    return examples, f"{where} ({len(examples)} examples)"


def _gold_examples(suite: SuiteConfig, store, dataset_ref: str | None) -> tuple[list[Example], str]:
    gold = resolve_path(suite.data.gold)
    if not gold.is_file():
        raise InputError("gold file not found", file=str(gold), field="data.gold")
    notes = _notes_by_id(suite, store, dataset_ref)
    examples = []
    for n, line in enumerate(gold.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", file=str(gold), line=n) from None
        if not isinstance(row, dict) or "note_id" not in row:
            raise InputError("a gold row needs a note_id", file=str(gold), line=n, field="note_id")
        note = notes.get(str(row["note_id"]))
        if note is None:
            raise InputError("note id not in the notes the suite reads", file=str(gold), line=n, field="note_id",
                             value=row["note_id"])
        ref_field = suite.prompt.label_field if suite.task == "classify" else suite.data.reference_field
        if row.get(ref_field) in (None, ""):
            raise InputError("gold row has no reference", file=str(gold), line=n, field=ref_field)
        examples.append(Example(str(row["note_id"]), str(row["note_id"]), note.get("title"), note.get("text") or "",
                                row[ref_field] if suite.task != "extract" else as_json(row[ref_field]),
                                note.get("category") or row.get("category"), row.get("question")))
    return examples, f"{suite.data.gold}"


def _notes_by_id(suite: SuiteConfig, store, dataset_ref: str | None) -> dict[str, dict]:
    if suite.data.notes:
        from assay.curation.config import IngestConfig
        from assay.curation.ingest import ingest

        df = ingest(resolve_path(suite.data.notes), IngestConfig()).kept
    else:
        df = store.get(dataset_ref or suite.data.dataset).data()
    return {r["note_id"]: r for r in df.select("note_id", "title", "text", "category").to_dicts()}


def _split_examples(suite: SuiteConfig, store, dataset_ref: str | None) -> tuple[list[Example], str]:
    version = store.get(dataset_ref or suite.data.dataset)
    df = version.data()
    if "split" not in df.columns:
        raise InputError("dataset has no split column; curate it first", file=str(version.path), field="split")
    task = "summarize" if suite.task == "summarize" else suite.task
    rows = df.filter((pl.col("split") == suite.data.split) & (pl.col("task") == task) & pl.col("output").is_not_null())
    if "synthetic" in rows.columns:  # evaluation is on real notes only
        rows = rows.filter(~pl.col("synthetic").fill_null(False))
    examples = []
    for r in rows.iter_rows(named=True):
        output = r["output"]
        if suite.task == "qa":
            for k, pair in enumerate(as_json(output) or []):
                examples.append(Example(f"{r['note_id']}#{k}", r["note_id"], r["title"], r["text"] or "",
                                        pair["answer"], r["category"], pair["question"]))
            continue
        reference = as_json(output) if suite.task in ("classify", "extract") else output
        if suite.task == "classify" and isinstance(reference, dict):
            reference = reference.get(suite.prompt.label_field)
        examples.append(Example(r["note_id"], r["note_id"], r["title"], r["text"] or "", reference, r["category"]))
    return examples, f"{version.ref} {suite.data.split} split"


def training_instruction(task: str, dataset_version) -> str | None:
    """The instruction most of a dataset's training rows carried for `task` (what the student was taught)."""
    if dataset_version is None:
        return None
    df = dataset_version.data()
    if not {"task", "instruction", "split"} <= set(df.columns):
        return None
    rows = df.filter((pl.col("task") == task) & (pl.col("split") == "train") & pl.col("output").is_not_null())
    found = Counter(i or "" for i in rows["instruction"].to_list())
    if not found:
        return None
    instruction = found.most_common(1)[0][0]
    if not instruction:  # export rows carry none; training gave them the task's default
        from assay.training.data import TASK_INSTRUCTIONS

        instruction = TASK_INSTRUCTIONS.get(task)
    return instruction or None
