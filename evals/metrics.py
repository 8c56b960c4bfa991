"""The one metrics registry: every number assay reports about model outputs is computed here.

Evals, training's in-run ROUGE and synthetic selection all call these functions, so ROUGE-L means the
same thing everywhere. A metric declares `higher_is_better` (None: informational, never coloured or
gated on) and how it aggregates: the mean of per-example values, or a corpus function (macro-F1,
perplexity) that the bootstrap recomputes on each resample.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable

from assay.errors import NotFoundError

# ---------------------------------------------------------------- tokens and ROUGE

_WORD = re.compile(r"[^\W_]+", re.U)


class _Tokenizer:
    """rouge-score's default tokenizer (lower-case, alphanumeric runs, Porter stem for words over 3
    letters), made Unicode-aware: rouge-score drops every non-ASCII letter, so "Müller" became
    "m ller" and a Greek or Japanese note scored 0. On ASCII text both give the same tokens."""

    def tokenize(self, text: str) -> list[str]:
        stem = _stemmer().stem
        words = _WORD.findall(unicodedata.normalize("NFKC", text or "").lower())
        return [stem(w) if len(w) > 3 and w.isascii() else w for w in words]


@cache
def _stemmer():
    from nltk.stem import porter

    return porter.PorterStemmer("ORIGINAL_ALGORITHM")  # the stemmer rouge-score uses


@cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokenizer())


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 (rouge-score, stemming on). Two empty texts agree (1.0); one empty scores 0."""
    if not (prediction or "").strip() or not (reference or "").strip():
        same = not (prediction or "").strip() and not (reference or "").strip()
        return {"rouge1": float(same), "rouge2": float(same), "rougeL": float(same)}
    scores = _scorer().score(reference, prediction)
    return {name: s.fmeasure for name, s in scores.items()}


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1; what training's validation ROUGE and synthetic consensus use."""
    return rouge(prediction, reference)["rougeL"]


def tokens(text: str) -> list[str]:
    """The words ROUGE compares (stemmed, lower-case)."""
    return _Tokenizer().tokenize(text)


# ---------------------------------------------------------------- one example as the metrics see it

@dataclass
class Item:
    """One model's output for one example, with what the metrics compare it to."""

    prediction: str | None  # the text (None: the model failed to answer; it scores as wrong)
    reference: Any  # text, a label, a JSON object: whatever the task's gold is
    value: Any = None  # the parsed prediction for structured tasks (None: did not parse)
    extras: dict[str, Any] = field(default_factory=dict)  # embeddings, token log-probs, the teacher's output


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool | None
    description: str
    per_example: Callable[[Item], float | None]  # None: not defined for this example (skipped, counted)
    corpus: Callable[[list[Item]], float | None] | None = None  # set when the aggregate is not the mean
    scale: float = 1.0  # display factor (ROUGE and rates are shown x100)
    needs: frozenset[str] = frozenset()  # "embeddings", "logprobs", "teacher" (what the evaluator must add)

    def score(self, items: list[Item]) -> float | None:
        if self.corpus is not None:
            return self.corpus(items)
        values = [v for v in (self.per_example(i) for i in items) if v is not None]
        return sum(values) / len(values) if values else None

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "higher_is_better": self.higher_is_better,
                "scale": self.scale, "description": self.description}


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise NotFoundError("metric", name, list(METRICS))
    return METRICS[name]


# ---------------------------------------------------------------- summarization

def _rouge_of(key: str) -> Callable[[Item], float]:
    return lambda item: rouge(item.prediction or "", item.reference or "")[key]


for _key, _name, _what in (("rouge1", "ROUGE-1", "shared words with the reference"),
                           ("rouge2", "ROUGE-2", "shared word pairs with the reference"),
                           ("rougeL", "ROUGE-L", "longest common word sequence with the reference")):
    register(Metric(_key, _name, True, f"{_what} (F1, stemmed; rouge-score)", _rouge_of(_key), scale=100))


def _cosine(a, b) -> float | None:
    if a is None or b is None:
        return None
    return float(sum(x * y for x, y in zip(a, b)))  # embeddings are normalised


register(Metric("embed_sim", "similarity to reference", True,
                "cosine of all-MiniLM-L6-v2 embeddings of output and reference",
                lambda i: (_cosine(i.extras.get("emb_prediction"), i.extras.get("emb_reference"))
                           if i.prediction else 0.0),
                scale=100, needs=frozenset({"embeddings"})))
register(Metric("embed_sim_teacher", "similarity to teacher", True,
                "cosine of all-MiniLM-L6-v2 embeddings of output and the teacher's output for the same note",
                lambda i: (None if i.extras.get("emb_teacher") is None
                           else _cosine(i.extras.get("emb_prediction"), i.extras["emb_teacher"]) if i.prediction
                           else 0.0),
                scale=100, needs=frozenset({"embeddings", "teacher"})))


def words(text: str | None) -> int:
    return len(_WORD.findall(text or ""))


def sentence_count(text: str | None) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", (text or "").strip()) if s.strip()])


# the summarize task's length contract: a summary of a personal note is one or two sentences, long enough to
# say something. The gate's length_ok, curation's report on training references (curation/contract.py) and
# the task's instruction (curation/synth/tasks.py) all read it from here
SUMMARY_WORDS = (8, 60)
SUMMARY_SENTENCES = (1, 2)
SUMMARY_CONTRACT = (f"{SUMMARY_SENTENCES[0]}-{SUMMARY_SENTENCES[1]} sentences and "
                    f"{SUMMARY_WORDS[0]}-{SUMMARY_WORDS[1]} words")


def summary_length_problem(text: str | None) -> str | None:
    """Why a summary breaks the length contract ("3_sentences", "too_many_words", ...), or None."""
    n, sentences = words(text), sentence_count(text)
    if sentences > SUMMARY_SENTENCES[1]:
        return f"{min(sentences, 5)}{'+' if sentences >= 5 else ''}_sentences"
    if n > SUMMARY_WORDS[1]:
        return "too_many_words"
    if n < SUMMARY_WORDS[0] or sentences < SUMMARY_SENTENCES[0]:
        return "too_few_words"
    return None


def _compliant(item: Item) -> float:
    return float(summary_length_problem(item.prediction) is None)


register(Metric("length_ok", "length compliance", True, f"share of outputs of {SUMMARY_CONTRACT}", _compliant,
                scale=100))
register(Metric("words", "words", None, "output length in words (the reference's is in the lineage)",
                lambda i: float(words(i.prediction))))


def repetition(text: str | None) -> float:
    """Share of word 3-grams that repeat an earlier one: 0 for fluent text, high for loops."""
    toks = [t.lower() for t in _WORD.findall(text or "")]
    grams = [tuple(toks[k:k + 3]) for k in range(len(toks) - 2)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


register(Metric("repetition", "repetition", False, "share of repeated word 3-grams in the output",
                lambda i: repetition(i.prediction), scale=100))


# ---------------------------------------------------------------- perplexity on held-out text

def _perplexity(items: list[Item]) -> float | None:
    pairs = [(i.extras["nll"], i.extras["tokens"]) for i in items if i.extras.get("tokens")]
    if not pairs:
        return None
    return math.exp(sum(n for n, _ in pairs) / sum(t for _, t in pairs))


register(Metric("perplexity", "perplexity", False,
                "exp of the mean negative log-likelihood per token of the reference answer, given the prompt",
                lambda i: math.exp(i.extras["nll"] / i.extras["tokens"]) if i.extras.get("tokens") else None,
                corpus=_perplexity, needs=frozenset({"logprobs"})))


# ---------------------------------------------------------------- classification

def _label(value: Any, field_name: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get(field_name) if field_name else None
    return str(value).strip().lower() if value is not None else None


def _labels_of(items: list[Item]) -> list[tuple[str | None, str]]:
    field_name = items[0].extras.get("label_field") if items else None
    return [(_label(i.value, field_name), _label(i.reference, field_name)) for i in items]


register(Metric("accuracy", "accuracy", True, "share of examples with the reference label",
                lambda i: float(_label(i.value, i.extras.get("label_field")) ==
                                _label(i.reference, i.extras.get("label_field"))), scale=100))


def per_class(items: list[Item]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per reference label (a failed parse counts as a wrong label)."""
    pairs = _labels_of(items)
    labels = sorted({r for _, r in pairs if r is not None} | {p for p, _ in pairs if p is not None})
    found = {}
    for label in labels:
        tp = sum(1 for p, r in pairs if p == label and r == label)
        fp = sum(1 for p, r in pairs if p == label and r != label)
        fn = sum(1 for p, r in pairs if p != label and r == label)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        found[label] = {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                        "support": tp + fn}
    return found


def _macro_f1(items: list[Item]) -> float | None:
    classes = {k: v for k, v in per_class(items).items() if v["support"]}  # labels that occur in the references
    return sum(v["f1"] for v in classes.values()) / len(classes) if classes else None


register(Metric("macro_f1", "macro-F1", True, "F1 per reference label, averaged with equal weight",
                lambda i: None, corpus=_macro_f1, scale=100))


def confusion(items: list[Item]) -> dict[str, Any]:
    pairs = _labels_of(items)
    labels = sorted({label for pair in pairs for label in pair if label is not None}) + ["(no answer)"]
    index = {label: k for k, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]  # rows: reference, columns: prediction
    for pred, ref in pairs:
        if ref is not None:
            matrix[index[ref]][index[pred if pred is not None else "(no answer)"]] += 1
    return {"labels": labels, "matrix": matrix}


# ---------------------------------------------------------------- extraction

EXTRACT_FIELDS = ("people", "dates", "action_items", "urls")


def _field_counts(item: Item) -> tuple[int, int, int]:
    """(true positives, predicted, expected) over every field, case-insensitive exact matches."""
    ref = item.reference if isinstance(item.reference, dict) else {}
    pred = item.value if isinstance(item.value, dict) else {}
    tp = n_pred = n_ref = 0
    for key in EXTRACT_FIELDS:
        want = {str(v).strip().casefold() for v in ref.get(key) or []}
        got = {str(v).strip().casefold() for v in pred.get(key) or []}
        tp, n_pred, n_ref = tp + len(want & got), n_pred + len(got), n_ref + len(want)
    return tp, n_pred, n_ref


def _prf(tp: int, n_pred: int, n_ref: int) -> tuple[float, float, float]:
    if n_pred == 0 and n_ref == 0:
        return 1.0, 1.0, 1.0  # nothing to find, nothing claimed
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_ref if n_ref else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def _micro(items: list[Item], which: int) -> float | None:
    if not items:
        return None
    totals = [sum(c) for c in zip(*(_field_counts(i) for i in items))]
    return _prf(*totals)[which]


register(Metric("json_valid", "JSON validity", True, "share of outputs that parse into the task's schema",
                lambda i: float(i.value is not None), scale=100))
for _k, (_key, _name) in enumerate((("field_precision", "field precision"), ("field_recall", "field recall"),
                                    ("field_f1", "field F1"))):
    register(Metric(_key, _name, True,
                    f"{_name.split()[1]} of extracted items over people, dates, action items and URLs (micro)",
                    (lambda k: lambda i: _prf(*_field_counts(i))[k])(_k),
                    corpus=(lambda k: lambda items: _micro(items, k))(_k), scale=100))


# ---------------------------------------------------------------- question answering

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.I)


def normalize_answer(text: str | None) -> list[str]:
    """SQuAD's normalisation: lower-case, no punctuation or articles, single spaces."""
    text = (text or "").lower()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str | None, reference: str | None) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(pred), common / len(ref)
    return 2 * prec * rec / (prec + rec)


register(Metric("exact_match", "exact match", True, "answer equals the reference after SQuAD normalisation",
                lambda i: float(normalize_answer(i.prediction) == normalize_answer(i.reference)), scale=100))
register(Metric("token_f1", "token F1", True, "word overlap F1 of answer and reference (SQuAD)",
                lambda i: token_f1(i.prediction, i.reference), scale=100))


# ---------------------------------------------------------------- helpers for callers

def score_all(names: list[str], items: list[Item]) -> dict[str, float | None]:
    return {name: get_metric(name).score(items) for name in names}


def per_example(name: str, items: list[Item]) -> list[float | None]:
    return [get_metric(name).per_example(i) for i in items]


def as_json(value: Any) -> Any:
    """A parsed output or reference as JSON-able data (structured tasks store JSON text)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
