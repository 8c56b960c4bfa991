"""The metrics registry against hand-computed values, the paired bootstrap's coverage, the gate's rules."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from assay.errors import ConfigError
from assay.evals.compare import direction, paired_bootstrap, regressions
from assay.evals.gate import NO_SHIP, SHIP, GateConfig, evaluate_gate
from assay.evals.metrics import METRICS, Item, Metric, get_metric, repetition, rouge, rouge_l, token_f1

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"


def score(name, pairs, **extras):
    return get_metric(name).score([Item(p, r, v, dict(extras)) for p, r, v in pairs])


# ---------------------------------------------------------------- ROUGE: one implementation, rouge-score's numbers

def test_rouge_hand_values():
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # punctuation and case do not count: the old whitespace ROUGE scored this 0.67, the old \w one 1.0
    assert rouge_l("The cat sat.", "the cat sat") == 1.0
    assert rouge("a b c", "a c d e")["rougeL"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert rouge("a b c d", "a b x d")["rouge2"] == pytest.approx(1 / 3)  # bigrams ab, bc, cd vs ab, bx, xd
    assert rouge_l("", "") == 1.0 and rouge_l("", "x") == 0.0 and rouge_l("dog", "the cat") == 0.0
    # stemming: "jumps" and "jumping" are one word
    assert rouge_l("the fox jumps", "the fox jumping") == 1.0


def test_rouge_equals_rouge_score_on_english_text():
    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    gold = [json.loads(line)["summary"] for line in (SAMPLE / "gold.jsonl").read_text().splitlines()]
    pairs = list(zip(gold, gold[1:] + gold[:1])) + [(g, g[: len(g) // 2]) for g in gold]
    for a, b in pairs:
        a, b = a.encode("ascii", "ignore").decode(), b.encode("ascii", "ignore").decode()
        ours, theirs = rouge(a, b), {k: v.fmeasure for k, v in reference.score(b, a).items()}
        assert ours == pytest.approx(theirs, abs=1e-12), (a, b)


def test_rouge_keeps_non_ascii_words():
    # rouge-score's tokenizer turns "Müller" into "m ller" and a Greek sentence into nothing
    assert rouge_l("Müller kommt morgen", "Müller kommt") == pytest.approx(0.8)
    assert rouge_l("καλημέρα κόσμε", "καλημέρα κόσμε") == 1.0
    assert rouge_l("καλημέρα κόσμε", "αντίο") == 0.0


def test_training_and_selection_use_the_registry_rouge():
    from assay.curation.synth import select
    from assay.training import callbacks

    assert select.rouge_l is rouge_l and callbacks.rouge_l is rouge_l


# ---------------------------------------------------------------- the other tasks

def test_squad_style_answers():
    assert token_f1("The Kestrel pilot", "kestrel pilot!") == 1.0
    assert token_f1("eight weeks long", "eight weeks") == pytest.approx(0.8)
    assert score("exact_match", [("The pilot.", "pilot", None), ("a pilot run", "pilot", None)]) == 0.5


def test_classification_accuracy_macro_f1_and_confusion():
    refs, preds = ["a", "a", "b", "c"], ["a", "b", "b", None]
    items = [Item(p, r, p) for p, r in zip(preds, refs)]
    assert get_metric("accuracy").score(items) == 0.5
    # a: P 1, R 1/2; b: P 1/2, R 1; c: nothing right -> (2/3 + 2/3 + 0) / 3
    assert get_metric("macro_f1").score(items) == pytest.approx(4 / 9)
    from assay.evals.metrics import confusion

    table = confusion(items)
    assert table["labels"] == ["a", "b", "c", "(no answer)"]
    assert table["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_classification_reads_the_label_field_of_a_json_answer():
    items = [Item('{"category": "Work"}', "work", {"category": "Work", "importance": "low"},
                  {"label_field": "category"})]
    assert get_metric("accuracy").score(items) == 1.0


def test_extraction_fields():
    ref = {"people": ["Anna", "Ben"], "dates": ["May 3"], "action_items": [], "urls": []}
    pred = {"people": ["anna"], "dates": ["May 3", "June"], "action_items": [], "urls": []}
    items = [Item("{}", ref, pred), Item("not json", ref, None)]
    # first: tp 2, predicted 3, expected 3; second: nothing predicted, 3 expected
    assert get_metric("field_precision").score(items) == pytest.approx(2 / 3)
    assert get_metric("field_recall").score(items) == pytest.approx(2 / 6)
    assert get_metric("field_f1").score(items) == pytest.approx(2 * (2 / 3) * (1 / 3) / (2 / 3 + 1 / 3))
    assert get_metric("json_valid").score(items) == 0.5


def test_perplexity_is_exp_of_mean_token_nll():
    items = [Item("x", "y", extras={"nll": 2.0, "tokens": 4}), Item("x", "y", extras={"nll": 6.0, "tokens": 4})]
    assert get_metric("perplexity").score(items) == pytest.approx(math.exp(1.0))
    assert get_metric("perplexity").score([Item("x", "y")]) is None  # no log-probs: not computable, not zero


def test_length_and_repetition():
    assert repetition("a b c a b c") == pytest.approx(1 / 4)  # abc bca cab abc: one of four repeats
    assert repetition("a fluent sentence with no loops") == 0.0
    ok = "The pilot succeeds if every stop has a reading and routes run on time."
    assert score("length_ok", [(ok, "", None), (ok + " " + ok + " " + ok, "", None), ("Too short.", "", None)]) \
        == pytest.approx(1 / 3)


def test_every_metric_declares_its_direction():
    for metric in METRICS.values():
        assert metric.higher_is_better in (True, False, None) and metric.description


# ---------------------------------------------------------------- paired bootstrap

def _values_metric() -> Metric:
    return Metric("value", "value", True, "the item's value", lambda i: i.value)


def test_bootstrap_ci_covers_a_known_difference_at_about_the_stated_rate():
    rng = np.random.default_rng(7)
    metric, true_delta, covered, trials = _values_metric(), 0.05, 0, 200
    for trial in range(trials):
        base = rng.uniform(0.2, 0.6, size=60)
        cand = base + true_delta + rng.normal(0, 0.15, size=60)
        d = paired_bootstrap(metric, [Item("", "", v) for v in cand], [Item("", "", v) for v in base],
                             baseline_key="b", resamples=1000, seed=trial)
        covered += d.ci_low <= true_delta <= d.ci_high
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_bootstrap_is_paired_and_says_better_only_when_the_interval_clears_zero():
    metric = _values_metric()
    base = [Item("", "", v) for v in np.linspace(0, 1, 40)]
    # a small but consistent gain on every example: unpaired intervals would straddle zero, paired ones do not
    better = paired_bootstrap(metric, [Item("", "", i.value + 0.01) for i in base], base, baseline_key="b")
    assert better.verdict == "better" and better.ci_low == pytest.approx(0.01) and better.delta == pytest.approx(0.01)
    assert direction(False, 0.1, 0.2) == "worse" and direction(True, -0.1, 0.2) == "unclear"


def test_bootstrap_of_a_corpus_metric_and_regressions():
    f1 = get_metric("macro_f1")
    refs = ["a", "b"] * 20
    cand = [Item(r, r, r) for r in refs]
    base = [Item(r, r, "a" if k % 4 == 1 else r) for k, r in enumerate(refs)]  # every other "b" missed
    d = paired_bootstrap(f1, cand, base, baseline_key="base", resamples=300)
    assert d.delta > 0 and d.ci_low <= d.delta <= d.ci_high and d.verdict == "better"
    acc = get_metric("accuracy")
    worse = regressions(acc, base, cand, [str(k) for k in range(len(refs))])
    assert [w["id"] for w in worse] == [str(k) for k in range(len(refs)) if k % 4 == 1]


# ---------------------------------------------------------------- the gate

def _results(delta, low, high, verdict, length_ok=0.9, models=("candidate", "base"), previous_version=None,
             unanswered=None):
    return {
        "candidate": "candidate",
        "previous_version": previous_version,
        "models": [{"key": k, "label": k, "kind": k} for k in models],
        "metrics": [get_metric("rougeL").info(), get_metric("length_ok").info()],
        "scores": {"candidate": {"rougeL": 0.2 + delta, "length_ok": length_ok}, "base": {"rougeL": 0.2}},
        "comparisons": [{"metric": "rougeL", "baseline": "base", "candidate_value": 0.2 + delta, "baseline_value": 0.2,
                         "delta": delta, "ci_low": low, "ci_high": high, "n": 30, "verdict": verdict}],
        "unanswered": unanswered or {},
        "ondevice": [],
    }


DEFAULT_RULES = [{"metric": "rougeL", "against": "base", "must": "better"},
                 {"metric": "rougeL", "against": "previous", "ci_low_at_least": -0.01, "if_absent": "first_version"},
                 {"metric": "length_ok", "at_least": 0.8}]


def test_gate_ship_and_no_ship_name_the_failing_rules():
    gate = GateConfig.model_validate({"rules": DEFAULT_RULES})
    ship = evaluate_gate(gate, _results(0.03, 0.01, 0.05, "better"))
    assert ship["decision"] == SHIP and [r["passed"] for r in ship["rules"]] == [True, None, True]
    assert "no previous version" in ship["rules"][1]["explain"] and "did not apply" in ship["summary"]
    no = evaluate_gate(gate, _results(-0.0185, -0.0299, -0.0063, "worse", length_ok=0.5))
    assert no["decision"] == NO_SHIP and [r["passed"] for r in no["rules"]] == [False, None, False]
    assert "worse than base" in no["summary"] and "-1.85" in no["summary"] and "50.00" in no["summary"]


def test_a_rule_whose_baseline_is_not_in_the_run_never_passes():
    """A first version may skip the previous rule only when the gate says so; a previous version left out of the
    run by --against, or a typo, is not 'skipped': the rule fails (and preflight stops the run before that)."""
    from assay.evals.gate import RunShape, preflight

    default = GateConfig.model_validate({"rules": DEFAULT_RULES})
    left_out = evaluate_gate(default, _results(0.03, 0.01, 0.05, "better", previous_version="notes-student@v1.0.0"))
    assert left_out["decision"] == NO_SHIP and [r["passed"] for r in left_out["rules"]] == [True, False, True]
    assert "previous is not a baseline of this run" in left_out["rules"][1]["explain"]
    plain = GateConfig.model_validate({"rules": [{**DEFAULT_RULES[1], "if_absent": "error"}, DEFAULT_RULES[2]]})
    assert evaluate_gate(plain, _results(0.03, 0.01, 0.05, "better"))["decision"] == NO_SHIP

    typo = GateConfig.model_validate({"rules": [{"metric": "rougeL", "against": "baes", "must": "better"}]})
    shape = RunShape(("rougeL", "length_ok"), ("base", "rule:lead"), False, None)
    with pytest.raises(ConfigError,
                       match=r"rules\[1\].*baes is not a baseline of this run \(baselines: base, rule:lead"):
        preflight(typo, shape)
    with pytest.raises(ConfigError, match="not a metric of this suite"):
        preflight(GateConfig.model_validate({"rules": [{"metric": "json_valid", "at_least": 0.9}]}), shape)
    with pytest.raises(ConfigError, match="not measured in this run"):
        preflight(GateConfig.model_validate({"rules": [{"metric": "latency_p95_ms", "at_most": 9}]}), shape)
    preflight(default, shape)  # a first version: the previous rule says it does not apply; the others can run
    with pytest.raises(ConfigError, match="previous is not a baseline"):
        preflight(default, RunShape(shape.metrics, shape.baselines, True, None))
    no_ship = GateConfig.model_validate({"rules": [{"metric": "rougeL", "against": "baes", "must": "better",
                                                    "if_absent": "no_ship"}, DEFAULT_RULES[2]]})
    preflight(no_ship, shape)  # the gate chose to fail the verdict instead of stopping
    verdict = evaluate_gate(no_ship, _results(0.03, 0.01, 0.05, "better"))
    assert verdict["decision"] == NO_SHIP and "Not evaluated (rougeL better than baes)" in verdict["summary"]


def test_a_baseline_that_did_not_answer_fails_the_rule_against_it_unless_the_gate_allows_it():
    gate = GateConfig.model_validate({"rules": [DEFAULT_RULES[0]]})
    lacking = {"base": {"count": 3, "of": 30, "reasons": {"connection_refused": 3}}}
    verdict = evaluate_gate(gate, _results(0.03, 0.01, 0.05, "better", unanswered=lacking))
    assert verdict["decision"] == NO_SHIP and verdict["rules"][0]["actual"] == "3 of 30 missing"
    assert "gave no answer for 3 of 30 examples (3 connection_refused)" in verdict["summary"]
    allowed = GateConfig.model_validate({"rules": [{**DEFAULT_RULES[0], "max_missing": 0.1}]})
    verdict = evaluate_gate(allowed, _results(0.03, 0.01, 0.05, "better", unanswered=lacking))
    assert verdict["decision"] == SHIP and "on the 30 examples both answered" in verdict["rules"][0]["explain"]


def test_failed_answers_are_left_out_of_the_pairs_not_scored_as_zero():
    rouge = get_metric("rougeL")
    cand = [Item("the cat sat on the mat", "the cat sat on the mat")] * 10
    base = [Item("the cat sat", "the cat sat on the mat")] * 6 + [Item(None, "the cat sat on the mat")] * 4
    answered = [True] * 6 + [False] * 4
    d = paired_bootstrap(rouge, cand, base, baseline_key="teacher:x", answered=answered)
    assert (d.n, d.missing) == (6, 4)
    assert d.baseline_value == pytest.approx(rouge.score(base[:6]))  # not dragged down by four zeros


def test_gate_fails_on_missing_evidence():
    gate = GateConfig.model_validate({"rules": [{"metric": "latency_p95_ms", "at_most": 200},
                                                {"metric": "json_valid", "at_least": 0.98, "if_absent": "no_ship"}]})
    results = {**_results(0.03, 0.01, 0.05, "better"), "ondevice": [{"format": "int8", "size_mb": 90.0}]}
    verdict = evaluate_gate(gate, results)
    assert verdict["decision"] == NO_SHIP
    assert "No on-device figure" in verdict["rules"][0]["explain"]
    assert "not a metric of this suite" in verdict["rules"][1]["explain"]


def test_gate_config_refuses_a_rule_without_a_condition():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="either a comparison"):
        GateConfig.model_validate({"rules": [{"metric": "rougeL"}]})
    with pytest.raises(ValidationError, match="set against"):
        GateConfig.model_validate({"rules": [{"metric": "rougeL", "must": "better"}]})
    with pytest.raises(ValidationError, match="first_version is for rules against previous"):
        GateConfig.model_validate({"rules": [{"metric": "rougeL", "against": "base", "must": "better",
                                              "if_absent": "first_version"}]})
    with pytest.raises(ValidationError, match="bound the new model's own value"):
        GateConfig.model_validate({"rules": [{"metric": "rougeL", "against": "base", "at_least": 0.2}]})


def test_embedding_similarity_hand_values():
    """Unit vectors: the metric is their dot product; no answer scores 0; no teacher output is undefined."""
    sim, to_teacher = get_metric("embed_sim"), get_metric("embed_sim_teacher")
    a, b = [1.0, 0.0], [0.6, 0.8]
    assert sim.per_example(Item("x", "y", extras={"emb_prediction": a, "emb_reference": b})) == pytest.approx(0.6)
    assert sim.per_example(Item(None, "y", extras={"emb_prediction": None, "emb_reference": b})) == 0.0
    assert to_teacher.per_example(Item("x", "y", extras={"emb_prediction": a, "emb_reference": b})) is None
    assert to_teacher.per_example(Item("x", "y", extras={"emb_prediction": a, "emb_teacher": [0.0, 1.0]})) == 0.0
    assert sim.score([Item("x", "y", extras={"emb_prediction": a, "emb_reference": v}) for v in (a, b)]) == \
        pytest.approx(0.8)


@pytest.mark.slow
def test_embedding_similarity_with_the_embedded_minilm(assay_cache):
    """The evaluator's embeddings (all-MiniLM-L6-v2) give the cosine numpy computes from the model's own vectors."""
    from assay.evals.run import _embed
    from assay.models import load_embedder

    texts = ["The council approved the new bus lane on Main Street.",
             "A bus lane on Main Street was approved by the council.",
             "Preheat the oven to 200 degrees and bake the bread for forty minutes."]
    vectors = _embed(texts, lambda n: None)
    raw = load_embedder().encode(texts)
    sim = get_metric("embed_sim")

    def score(x, y):
        return sim.per_example(Item(x, y, extras={"emb_prediction": vectors[x], "emb_reference": vectors[y]}))

    def cosine(i, j):
        return float(raw[i] @ raw[j] / np.linalg.norm(raw[i]) / np.linalg.norm(raw[j]))

    assert score(texts[0], texts[0]) == pytest.approx(1.0, abs=1e-5)
    assert score(texts[0], texts[1]) == pytest.approx(cosine(0, 1), abs=1e-5)
    assert score(texts[0], texts[2]) == pytest.approx(cosine(0, 2), abs=1e-5)
    assert score(texts[0], texts[1]) > 0.8 > 0.2 > score(texts[0], texts[2])  # a paraphrase vs another subject
