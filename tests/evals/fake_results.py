"""Test data for the report: a schema-valid results dict (evals/SCHEMA.md) of N examples x M models.

The text is real: the notes of datasets/sample/notes.json, their gold summaries as references where
there is one (else the note's opening sentences), and model outputs made from those sentences with
words swapped for other words of the same note, each model at its own noise level. Per-example
ROUGE-L comes from rouge-score (the library the metrics registry uses), so scores, means, deltas
and regressions agree with the text on the page. This is input for the renderer, not a stand-in
for the eval pipeline: the lead's end-to-end test renders a real run.

`hostile` is put into every text field the report shows (note, title, reference, outputs, labels,
categories, rules, warnings, lineage, config), so a test can check each place escapes it.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import statistics
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"
HOSTILE = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'
           '</textarea></script><b>bold</b> & \u2028done')

# (key, kind, label, how much of the reference it keeps): the noise makes the models differ
MODEL_SPECS = [
    ("candidate", "candidate", "notes-student@v1.1.0", 0.80),
    ("previous", "previous", "notes-student@v1.0.0", 0.70),
    ("base", "base", "smollm2-135m-instruct (zero-shot)", None),
    ("rule:lead", "rule", "rule:lead", None),
    ("teacher:local", "teacher", "local:smollm2-135m-instruct", 0.85),
]


@functools.cache
def _sample():
    notes = json.loads((SAMPLE / "notes.json").read_text())
    gold = {}
    for line in (SAMPLE / "gold.jsonl").read_text().splitlines():
        row = json.loads(line)
        gold[row["note_id"]] = row["summary"]
    return notes, gold


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip().split()) >= 3]


def _noisy(text: str, keep: float, pool: list[str], rng: random.Random) -> str:
    words = text.split()
    out = [w if rng.random() < keep else rng.choice(pool) for w in words if rng.random() > 0.05]
    return " ".join(out) or text


def _output(spec, note: str, reference: str, rng: random.Random) -> str:
    key, kind, _, keep = spec
    sentences = _sentences(note) or [note]
    pool = note.split() or ["note"]
    if kind == "rule":  # the lead baseline: the note's first 40 words
        return " ".join(note.split()[:40])
    if kind == "base":  # an untrained model: two sentences of the note, loosely reworded
        picked = rng.sample(sentences, min(2, len(sentences)))
        return _noisy(" ".join(picked), 0.9, pool, rng)
    return _noisy(reference, keep + rng.uniform(-0.15, 0.15), pool, rng)


def _mean_ci(deltas: list[float]) -> tuple[float, float, float]:
    # a normal-approximation interval is enough for renderer input; the real runs use a paired bootstrap
    mean = statistics.fmean(deltas)
    half = 1.96 * statistics.pstdev(deltas) / math.sqrt(len(deltas)) if len(deltas) > 1 else 0.0
    return mean, mean - half, mean + half


def demo_human(h: str = "") -> dict:
    """results["human"] as `assay review pull-eval` writes it for the demo's eval: 30 examples, 9 with identical
    outputs (not sent), 21 sent, 14 answered by two annotators: 8 for the candidate, 2 for the base, 4 ties."""
    from assay.curation.review.human_eval import summarize

    said = ["candidate"] * 8 + ["baseline"] * 2 + ["tie"] * 4
    sent = [f"demo-{k:02d}" for k in range(21)]
    where = {ex_id: "AB"[k % 2] for k, ex_id in enumerate(sent)}
    answers = {}
    for k, (ex_id, winner) in enumerate(zip(sent, said)):
        letter = where[ex_id] if winner == "candidate" else {"A": "B", "B": "A"}[where[ex_id]]
        answers[ex_id] = {("ann" if k % 2 else "bob") + h: {"said": "tie" if winner == "tie" else letter,
                                                           "winner": winner, "reason": None}}
    return summarize(answers, where, identical=[f"demo-{k:02d}" for k in range(21, 30)], missing=0, examples=30,
                     baseline="base", label="smollm2-135m-instruct (zero-shot)" + h)


def fake_results(n: int = 40, m: int = 4, *, seed: int = 0, hostile: str | None = None,
                 decision: str = "NO-SHIP", classification: bool = False, empty: bool = False) -> dict:
    """Results of one eval run: n examples, m models (candidate first). `empty` drops every chart input."""
    if not 1 <= m <= len(MODEL_SPECS):
        raise ValueError(f"m must be 1..{len(MODEL_SPECS)}, got {m}")
    rng = random.Random(seed)
    notes, gold = _sample()
    specs = MODEL_SPECS[:m]
    h = hostile or ""
    metrics = [
        {"name": "rougeL", "label": "ROUGE-L" + h, "higher_is_better": True, "scale": 100,
         "description": "longest common word subsequence with the reference (F1, stemmed)" + h},
        {"name": "perplexity", "label": "perplexity", "higher_is_better": False, "scale": 1,
         "description": "perplexity of the reference under the model"},
        {"name": "words", "label": "words", "higher_is_better": None, "scale": 1,
         "description": "words in the output"},
    ]
    examples = []
    for i in range(n):
        note = notes[i % len(notes)]
        text = note["content"] + (("\n\n" + h) if h and i < 3 else "")
        reference = gold.get(note["id"]) or " ".join(_sentences(note["content"])[:2]) or note["content"]
        if h and i < 3:
            reference += " " + h
        preds, scores = {}, {}
        for spec in specs:
            out = _output(spec, text, reference, rng) + ((" " + h) if h and i < 3 else "")
            preds[spec[0]] = out
            ppl = None if spec[1] == "rule" else round(rng.lognormvariate(2.0, 0.3), 3)
            scores[spec[0]] = {"rougeL": _scorer().score(reference, out)["rougeL"].fmeasure,
                               "perplexity": ppl, "words": float(len(out.split()))}
        examples.append({
            "id": f"{note['id']}-{i:05d}", "note_id": note["id"], "title": note["title"] + (h if i < 3 else ""),
            "text": text, "reference": reference, "category": note["category"] + (h if h and i == 0 else ""),
            "words": len(text.split()), "predictions": preds, "scores": scores,
        })

    def mean(key, metric):
        vals = [e["scores"][key][metric] for e in examples if e["scores"][key][metric] is not None]
        return statistics.fmean(vals) if vals else None

    scores = {s[0]: {mt["name"]: mean(s[0], mt["name"]) for mt in metrics} for s in specs}
    missing = {s[0]: {"perplexity": "no token probabilities from a rule" + h} for s in specs if s[1] == "rule"}
    comparisons, regressions = [], {}
    for spec in specs[1:]:
        for mt in metrics:
            pairs = [(e["scores"]["candidate"][mt["name"]], e["scores"][spec[0]][mt["name"]]) for e in examples]
            deltas = [c - b for c, b in pairs if c is not None and b is not None]
            if not deltas:
                continue
            d, lo, hi = _mean_ci(deltas)
            hib = mt["higher_is_better"]
            verdict = "unclear" if hib is None or lo <= 0 <= hi else ("better" if (lo > 0) == hib else "worse")
            comparisons.append({"metric": mt["name"], "baseline": spec[0],
                                "candidate_value": scores["candidate"][mt["name"]],
                                "baseline_value": scores[spec[0]][mt["name"]], "delta": d, "ci_low": lo, "ci_high": hi,
                                "n": len(deltas), "verdict": verdict})
        drops = [(e["scores"]["candidate"]["rougeL"] - e["scores"][spec[0]]["rougeL"], e["id"]) for e in examples]
        regressions[spec[0]] = [{"id": i, "delta": d} for d, i in sorted(drops) if d < 0]

    rules = [
        {"rule": "rougeL vs base: CI lower bound >= 0" + h, "passed": decision == "SHIP", "actual": "-0.012",
         "explain": "The new model's summaries match the references less well than the base model's." + h},
        {"rule": "size_mb <= 500", "passed": True, "actual": "270.1", "explain": "The merged model fits in 500 MB."},
    ]
    summary = {"SHIP": "The new model passed every ship rule.",
               "NO-SHIP": "Do not ship: 1 of 2 ship rules failed." + h,
               "NO GATE": "No ship rules were given, so there is no decision."}[decision]
    log = [{"step": s, "loss": 2.6 * math.exp(-s / 40) + 0.4 + rng.uniform(0, 0.05), "learning_rate": 2e-4}
           for s in range(1, 121)]
    log += [{"step": s, "eval_loss": 2.4 * math.exp(-s / 50) + 0.6} for s in range(20, 121, 20)]
    log.insert(0, {"step": 0, "base_loss": 3.1})  # the base model's validation loss, before training
    config = {"recipe": "sft", "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "v_proj"]},
              "epochs": 2, "lr": 2e-4, "comment": "config value" + h}
    results = {
        "schema": 1, "run_id": "notes-student-v1.1.0-summarize", "created_at": "2026-12-01T07:10:00+00:00",
        "suite": {"name": "summarize", "version": 1, "task": "summarize", "headline": "rougeL",
                  "data": f"datasets/sample/gold.jsonl ({n} examples)" + h,
                  "config": {"data": {"gold": "datasets/sample/gold.jsonl"}, "generation": {"max_new_tokens": 96}}},
        "candidate": "candidate",
        "models": [{"key": k, "label": label + (h if kind == "teacher" or kind == "base" else ""), "kind": kind}
                   for k, kind, label, _ in specs],
        "metrics": metrics, "scores": scores, "missing": missing, "comparisons": comparisons,
        "details": {}, "examples": examples, "regressions": regressions,
        "verdict": {"decision": decision, "summary": summary, "rules": rules if decision != "NO GATE" else []},
        "training": {"log": log, "config": config, "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                     "device": "cpu", "wall_time_s": 92.0, "metrics": {"train_loss": 0.61}},
        "trend": [{"version": v, "value": x, "run_id": f"notes-student-{v}-summarize", "current": v == "v1.1.0"}
                  for v, x in [("v0.8.0", 0.14), ("v0.9.0", 0.17), ("v1.0.0", 0.19),
                               ("v1.1.0", scores["candidate"]["rougeL"])]],
        "ondevice": [
            {"format": "merged", "size_mb": 513.2, "latency_p50_ms": 80.1, "latency_p95_ms": 95.0, "ttft_ms": 20.0,
             "tokens_per_s": 45.0, "peak_memory_mb": 900.0, "latency_ms": [71.4, 78.9, 80.1, 81.3, 96.2]},
            {"format": "int8" + h, "size_mb": 270.1, "latency_p50_ms": 61.0, "latency_p95_ms": 77.5, "ttft_ms": 15.2,
             "tokens_per_s": 58.3, "peak_memory_mb": 610.0},
            {"format": "gguf-q4", "size_mb": 105.4, "latency_p50_ms": 40.2, "latency_p95_ms": 52.9, "ttft_ms": 9.8,
             "tokens_per_s": 88.0, "peak_memory_mb": 240.0},
        ],
        "lineage": {"dataset": "notes@v2" + h, "curation": {"rows_in": 298, "kept": 240,
                                                            "dropped": {"exact_duplicate": 8, "near_duplicate" + h: 30,
                                                                        "too_short": 20}},
                    "teachers": ["local:smollm2-135m-instruct" + h, "rule:lead"], "spend_usd": 0.42,
                    "egress": {"remote_calls": 12, "redacted": 3, "providers": {"anthropic" + h: 12}},
                    "review": {"coverage": 0.4, "agreement": 0.7}, "training_config": config,
                    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "hardware": "cpu: AMD EPYC (2 threads)" + h},
        "warnings": ["12 of 30 gold notes were in the training split of notes@v2 (trained on)." + h],
        "human": demo_human(h),
    }
    if classification:
        labels = ["work", "personal", "other" + h]
        results["details"] = {"candidate": {
            "confusion": {"labels": labels, "matrix": [[30, 4, 1], [3, 25, 2], [2, 1, 12]]},
            "per_class": {labels[0]: {"precision": 0.86, "recall": 0.86, "support": 35},
                          labels[1]: {"precision": 0.83, "recall": 0.83, "support": 30},
                          labels[2]: {"precision": 0.8, "recall": 0.8, "support": 15}}}}
    if empty:
        results.update(training=None, trend=[], ondevice=[], comparisons=[], human=None)
        results["lineage"]["review"] = None
    return results
