"""Tasks: a versioned Jinja prompt template that renders messages, and a parser for the reply.

A template holds a `system` and a `user` block and declares `{#- version: N -#}` on its first line;
a row's prompt_version is "<template>/v<N>-<hash of the template text>", so an edit that forgets
the version bump still shows. A reply that fails to parse is a `Parsed` with ok=False and a named
reason, never an exception: the batch goes on and the raw text is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from assay.curation.synth.replies import find_json, sentences, strip_reply
from assay.errors import NotFoundError
from assay.evals.metrics import SUMMARY_CONTRACT, summary_length_problem  # the contract the ship gate checks

TEMPLATES = Path(__file__).resolve().parent / "templates"
_VERSION = re.compile(r"\{#-?\s*version:\s*(\w+)\s*-?#\}")
_WORD = re.compile(r"\w+", re.U)


@dataclass(frozen=True)
class Parsed:
    ok: bool
    output: str | None  # the canonical text stored as a row's output (JSON for structured tasks)
    value: Any = None  # the structured value, for similarity
    reason: str | None = None  # why it failed: "empty_reply", "invalid_json", "missing_field:dates", ...


def failure(reason: str) -> Parsed:
    return Parsed(False, None, None, reason)


@dataclass(frozen=True)
class Labels:
    categories: tuple[str, ...]
    importance: tuple[str, ...]
    context: tuple[str, ...]


@dataclass(frozen=True)
class Prompt:
    """What a template needs besides the note."""

    labels: Labels | None = None
    qa_pairs: int = 3


# -- templates

@dataclass(frozen=True)
class Template:
    name: str
    version: str
    source: str

    @property
    def prompt_version(self) -> str:
        return f"{self.name}/v{self.version}-{hashlib.sha256(self.source.encode()).hexdigest()[:8]}"

    def render(self, **variables: Any) -> list[dict]:
        template = _jinja().get_template(f"{self.name}.j2")
        messages = []
        for role in ("system", "user"):
            block = template.blocks[role]
            text = "".join(block(template.new_context(variables))).strip()
            if text:
                messages.append({"role": role, "content": text})
        return messages


@cache
def _jinja():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              autoescape=False, trim_blocks=True, lstrip_blocks=True)


@cache
def load_template(name: str) -> Template:
    path = TEMPLATES / f"{name}.j2"
    if not path.exists():
        raise NotFoundError("prompt template", name, sorted(p.stem for p in TEMPLATES.glob("*.j2")))
    source = path.read_text(encoding="utf-8")
    found = _VERSION.search(source.split("\n", 1)[0])
    assert found, f"{path}: first line must declare {{#- version: N -#}}"
    return Template(name, found.group(1), source)


# -- summarize

def parse_summary(text: str | None, prompt: Prompt) -> Parsed:
    body = strip_reply(text)
    if not body:
        return failure("empty_reply")
    if body[0] in "{[" or _is_keyword_list(body):
        return failure("not_prose")
    parts = sentences(body)
    # small models often go on; the first two sentences are the summary we asked for
    summary = " ".join(parts[:2])
    if len(_WORD.findall(summary)) < 3:
        return failure("too_short")
    if len(summary) > 400:
        return failure("too_long")
    return Parsed(True, summary, summary)


def _is_keyword_list(text: str) -> bool:
    items = [i.strip() for i in re.split(r"[,;\n]", text) if i.strip()]
    return len(items) >= 4 and all(len(i.split()) <= 3 for i in items) and not re.search(r"[.!?]\s*$", text)


# -- classify

class Classification(BaseModel):
    model_config = ConfigDict(extra="ignore")
    category: str
    importance: str
    context: str

    @field_validator("category", "importance", "context", mode="before")
    @classmethod
    def _norm(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


_KEY_VALUE = re.compile(r"^\s*[-*]?\s*\"?(category|importance|context)\"?\s*[:=]\s*\"?([\w -]+?)\"?\s*,?\s*$",
                        re.I | re.M)


def parse_classification(text: str | None, prompt: Prompt) -> Parsed:
    assert prompt.labels is not None, "classify needs labels"
    if not strip_reply(text):
        return failure("empty_reply")
    try:
        raw = find_json(text, "{")
    except ValueError:
        # "category: recipes" lines are a common way small models answer; accept them
        raw = {k.lower(): v for k, v in _KEY_VALUE.findall(text or "")}
        if not raw:
            return failure("invalid_json")
    if not isinstance(raw, dict):
        return failure("invalid_json")
    try:
        value = Classification.model_validate(raw)
    except ValidationError as exc:
        return failure(_schema_reason(exc))
    allowed = {"category": prompt.labels.categories, "importance": prompt.labels.importance,
               "context": prompt.labels.context}
    for field, labels in allowed.items():
        got = getattr(value, field)
        match = next((label for label in labels if label.lower() == got), None)
        if match is None:
            return failure(f"label_not_allowed:{field}")
        setattr(value, field, match)
    data = value.model_dump()
    return Parsed(True, json.dumps(data, ensure_ascii=False), data)


def classification_similarity(a: dict, b: dict) -> float:
    return sum(a[k] == b[k] for k in ("category", "importance", "context")) / 3


# -- extract

_URLISH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S+$|^\[URL_\d+\]$", re.I)


class Extraction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # every key is required: "{}" found inside a rambling reply is not an extraction
    people: list[str]
    dates: list[str]
    action_items: list[str]
    urls: list[str]

    @field_validator("people", "dates", "action_items", "urls", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value.strip() else []
        return value

    @field_validator("people", "dates", "action_items", "urls")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip() for v in value if v.strip()))

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _URLISH.match(v)]
        if bad:
            raise ValueError(f"not a URL: {bad[0]!r}")
        return value


def parse_extraction(text: str | None, prompt: Prompt) -> Parsed:
    if not strip_reply(text):
        return failure("empty_reply")
    try:
        raw = find_json(text, "{")
    except ValueError:
        return failure("invalid_json")
    if not isinstance(raw, dict):
        return failure("invalid_json")
    try:
        value = Extraction.model_validate(raw).model_dump()
    except ValidationError as exc:
        return failure(_schema_reason(exc))
    return Parsed(True, json.dumps(value, ensure_ascii=False), value)


def extraction_similarity(a: dict, b: dict) -> float:
    scores = []
    for key in ("people", "dates", "action_items", "urls"):
        x, y = {s.casefold() for s in a[key]}, {s.casefold() for s in b[key]}
        scores.append(1.0 if not x and not y else len(x & y) / len(x | y))
    return sum(scores) / len(scores)


# -- question-answer pairs

class QAPair(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: str
    answer: str

    @field_validator("question", "answer")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty")
        return value.strip()


_QA_LINES = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:Q|Question)\s*\d*\s*[:.]\s*(.+?)\s*\n"
                       r"\s*(?:A|Answer)\s*\d*\s*[:.]\s*(.+?)\s*$", re.I | re.M)


def parse_qa(text: str | None, prompt: Prompt) -> Parsed:
    if not strip_reply(text):
        return failure("empty_reply")
    try:
        raw = find_json(text, "[")
    except ValueError:
        try:
            raw = find_json(text, "{")
        except ValueError:
            raw = [{"question": q, "answer": a} for q, a in _QA_LINES.findall(text or "")]
            if not raw:
                return failure("invalid_json")
    if isinstance(raw, dict):
        raw = raw.get("pairs") or raw.get("qa") or ([raw] if "question" in raw else None)
    if not isinstance(raw, list):
        return failure("invalid_json")
    try:
        pairs = [QAPair.model_validate(item).model_dump() for item in raw]
    except ValidationError as exc:
        return failure(_schema_reason(exc))
    pairs = pairs[: prompt.qa_pairs]
    if not pairs:
        return failure("no_pairs")
    return Parsed(True, json.dumps(pairs, ensure_ascii=False), pairs)


def qa_text(pairs: list[dict]) -> str:
    return " ".join(f"{p['question']} {p['answer']}" for p in pairs)


# -- new notes for gap filling, and the judge's scores

def parse_note(text: str | None, prompt: Prompt) -> Parsed:
    body = strip_reply(text)
    body = re.sub(r"^(?:title|note)\s*:\s*", "", body, flags=re.I).strip()
    body = re.sub(r"</?example>", "", body).strip()
    if not body:
        return failure("empty_reply")
    if len(_WORD.findall(body)) < 5:
        return failure("too_short")
    return Parsed(True, body, body)


def parse_scores(text: str | None, n: int) -> Parsed:
    """The judge's reply: {"scores": [n numbers]} (or a bare list)."""
    try:
        raw = find_json(text or "", "{")
        raw = raw.get("scores") if isinstance(raw, dict) else None
    except ValueError:
        raw = None
    if raw is None:
        try:
            raw = find_json(text or "", "[")
        except ValueError:
            return failure("invalid_json")
    if not isinstance(raw, list) or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in raw):
        return failure("invalid_scores")
    if len(raw) != n:
        return failure("wrong_score_count")
    return Parsed(True, json.dumps(raw), [float(s) for s in raw])


def _schema_reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "value"
    kind = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(err["type"], "invalid_field")
    return f"{kind}:{where}"


# -- the registry

@dataclass(frozen=True)
class Task:
    name: str
    template: str
    instruction: str  # what the student is asked at training time; may name the labels
    parse: Callable[[str | None, Prompt], Parsed]
    similarity: Callable[[Any, Any], float] | None = None  # on parsed values; None: text similarity
    text_of: Callable[[Any], str] = str  # the value as text, for ROUGE and embeddings
    max_tokens: int = 160
    length_range: tuple[int, int] = (20, 400)  # characters a good output usually has (the rules strategy)
    # the length an output must have (evals' length_ok): why one breaks it, or None; curation reports the
    # training references that break it, since a student learns the length it is shown
    length_contract: Callable[[str | None], str | None] | None = None
    contract_words: str = ""  # the contract in words, for reports

    @property
    def structured(self) -> bool:
        return self.similarity is not None

    @property
    def prompt_version(self) -> str:
        return load_template(self.template).prompt_version

    def render(self, note: dict, prompt: Prompt) -> list[dict]:
        labels = prompt.labels or Labels((), (), ())
        return load_template(self.template).render(
            note={"title": note.get("title") or "", "text": note.get("text") or ""},
            labels={"categories": list(labels.categories), "importance": list(labels.importance),
                    "context": list(labels.context)},
            qa_pairs=prompt.qa_pairs)

    def student_instruction(self, prompt: Prompt) -> str:
        labels = prompt.labels
        if labels is None:
            return self.instruction
        return self.instruction.format(categories=", ".join(labels.categories),
                                       importance=", ".join(labels.importance), context=", ".join(labels.context))


TASKS: dict[str, Task] = {
    "summarize": Task("summarize", "summarize", "Summarize this note in one or two sentences.", parse_summary,
                      max_tokens=96, length_range=(20, 300), length_contract=summary_length_problem,
                      contract_words=SUMMARY_CONTRACT),
    "classify": Task("classify", "classify",
                     'Label this note as JSON: "category" ({categories}), "importance" ({importance}), '
                     '"context" ({context}).', parse_classification, classification_similarity,
                     text_of=lambda v: json.dumps(v), max_tokens=64, length_range=(30, 200)),
    "extract": Task("extract", "extract",
                    'Extract "people", "dates", "action_items" and "urls" from this note as JSON lists.',
                    parse_extraction, extraction_similarity, text_of=lambda v: json.dumps(v), max_tokens=256,
                    length_range=(50, 1200)),
    "qa": Task("qa", "qa", "Write question-answer pairs about this note as a JSON list.", parse_qa,
               text_of=qa_text, max_tokens=320, length_range=(40, 1500)),
}
# internal tasks: not a training task of their own, but rendered and parsed the same way
WRITE_NOTE = Task("write_note", "write_note", "Write a note.", parse_note, max_tokens=200, length_range=(40, 2000))


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise NotFoundError("task", name, list(TASKS))
    return TASKS[name]
