"""LLM-as-judge pairwise preference through the real synthesis runner, cache and ledger; the judge is the fake
provider (a local HTTP server speaking Anthropic's wire format), reached through the real SDK."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "synth"))

from fake_provider import FakeProvider  # noqa: E402

from assay.curation.synth.config import SynthConfig  # noqa: E402
from assay.errors import ConfigError  # noqa: E402
from assay.evals.judge import pairwise, parse_winner, positions, win_rate_ci  # noqa: E402
from assay.evals.suite import load_examples, load_suite  # noqa: E402
from assay.project import Project  # noqa: E402
from assay.store import DatasetStore  # noqa: E402

JUDGE = "anthropic:claude-haiku-4-5"
INSTRUCTION = "Summarize this note in one or two sentences."
OUTPUT = re.compile(r"Output ([AB]):\n<output>\n(.*?)\n</output>", re.S)


class Judge(FakeProvider):
    """Answers {"winner": ...}: `fair` picks the output that has the marker GOOD; otherwise it always says A."""

    def __init__(self, fair: bool, **kw):
        self.fair, self.bodies = fair, []
        super().__init__(**kw)

    def answer(self, api, body, fault="ok"):
        reply = super().answer(api, body, fault)
        self.bodies.append(body)
        outputs = dict(OUTPUT.findall(body["messages"][-1]["content"]))
        winner = next((k for k, v in outputs.items() if "GOOD" in v), "tie") if self.fair else "A"
        reply["content"][0]["text"] = json.dumps({"winner": winner})
        return reply


DEFAULTS = SynthConfig()  # the privacy settings of a dataset no synthesis labeled: redacted


def start(monkeypatch, fair: bool) -> Judge:
    server = Judge(fair, hang_s=5.0)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-judge-test-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    return server


@pytest.fixture
def examples(tmp_path):
    suite = load_suite("summarize", ["data.limit=8", f"judge.teacher={JUDGE}"])
    return suite, load_examples(suite, store=DatasetStore(tmp_path / "datasets"))[0]


def texts(examples):
    return ([f"GOOD {k}: {ex.reference}" for k, ex in enumerate(examples)],
            [f"PLAIN {k}: {ex.title}" for k, ex in enumerate(examples)])


# ---------------------------------------------------------------- no teacher

def test_positions_are_balanced_seeded_and_parse_is_strict():
    ids = [f"n{k}" for k in range(9)]
    first = positions(ids, 0)
    assert first == positions(list(reversed(ids)), 0)  # the order given does not matter, the seed does
    assert sum(v == "A" for v in first.values()) == 5 and positions(ids, 1) != first
    assert (parse_winner('{"winner": "B"}') == ("B", None)
            and parse_winner("```json\n{\"winner\":\"tie\"}\n```")[0] == "tie")
    assert parse_winner(" a. ") == ("A", None)
    assert parse_winner("Output A is better") == (None, "invalid_json")
    assert parse_winner('{"winner": "C"}') == (None, "unknown_winner:C")
    rate, low, high = win_rate_ci([1.0] * 6 + [0.0] * 4)
    assert rate == pytest.approx(0.6) and low < 0.6 < high and 0.2 < low and high <= 0.9


# ---------------------------------------------------------------- through the runner

def test_fair_judge_sees_the_candidate_on_both_sides_and_a_rerun_pays_nothing(tmp_path, monkeypatch, examples):
    suite, exs = examples
    server = start(monkeypatch, fair=True)
    project = Project(tmp_path / "proj")
    cand, base = texts(exs)
    try:
        judged, spent = pairwise(suite, exs, cand, base, instruction=INSTRUCTION, baseline_key="base", privacy=DEFAULTS,
                                 project=project)
        assert judged["wins"] == 8 and judged["n"] == 8 and judged["win_rate"] == 1.0 and judged["failed"] == 0
        assert judged["ci_low"] == judged["ci_high"] == 1.0
        assert judged["candidate_as_a"] == 4 and judged["position_a_rate"] == 0.5  # the order was randomised ...
        seen = set()
        for body in server.bodies:  # ... and the candidate sat where the record says
            outputs = dict(OUTPUT.findall(body["messages"][-1]["content"]))
            where, k = next((pos, int(re.match(r"GOOD (\d+):", text).group(1)))
                            for pos, text in outputs.items() if text.startswith("GOOD"))
            assert judged["per_example"][k]["candidate_position"] == where
            seen.add(k)
        assert seen == set(range(8))
        assert spent["calls"] == 8 and spent["spend_usd"] > 0 and judged["spend_usd"] == spent["spend_usd"]
        assert judged["template"].startswith("pairwise/v1-") and judged["stopped"] is None
        assert spent["egress"]["rows_left_machine"] == 8 and spent["egress"]["rows_redacted"] == 8

        calls = len(server.model_calls())
        again, spent2 = pairwise(suite, exs, cand, base, instruction=INSTRUCTION, baseline_key="base", privacy=DEFAULTS,
                                 project=project)
        assert len(server.model_calls()) == calls and spent2["calls"] == 0 and spent2["cached"] == 8
        assert spent2["spend_usd"] == 0 and again["win_rate"] == 1.0
        from assay.curation.synth.runner import open_state

        assert open_state(project)[1].spend().calls == 8  # the ledger paid once
    finally:
        server.close()


def test_a_judge_that_always_says_a_gives_half_because_the_order_is_balanced(tmp_path, monkeypatch, examples):
    suite, exs = examples
    server = start(monkeypatch, fair=False)
    try:
        cand, base = texts(exs)
        judged, _ = pairwise(suite, exs, cand, base, instruction=INSTRUCTION, baseline_key="base", privacy=DEFAULTS,
                             project=Project(tmp_path / "proj"))
        assert judged["position_a_rate"] == 1.0 and judged["win_rate"] == 0.5 and judged["wins"] == 4
        assert judged["ci_low"] < 0.5 < judged["ci_high"]  # no preference the data can support
    finally:
        server.close()


def test_the_budget_stops_the_judge_and_says_so(tmp_path, monkeypatch, examples):
    suite, exs = examples
    server = start(monkeypatch, fair=True)
    cand, base = texts(exs)
    try:
        full, _ = pairwise(suite, exs, cand, base, instruction=INSTRUCTION, baseline_key="base", privacy=DEFAULTS,
                           project=Project(tmp_path / "calibrate"))
        # calls reserve their worst case (a token per byte of prompt, every max_tokens) before they leave, so a
        # budget of what all 8 calls really cost lets some through and stops the rest
        budget = full["spend_usd"]
        capped = suite.model_copy(update={"judge": suite.judge.model_copy(update={"budget_usd": budget})})
        project = Project(tmp_path / "proj")
        judged, spent = pairwise(capped, exs, cand, base, instruction=INSTRUCTION, baseline_key="base",
                                 privacy=DEFAULTS, project=project)
        assert judged["stopped"] and "budget" in judged["stopped"]
        assert 1 <= judged["n"] < 8 and judged["failed"] == 8 - judged["n"]
        assert all(r["reason"] == "not_sent:budget" for r in judged["per_example"] if r["winner"] is None)
        assert spent["spend_usd"] <= budget and judged["budget_usd"] == budget
        assert judged["win_rate"] == 1.0  # what was judged is reported, over n
    finally:
        server.close()


def test_eval_adds_the_judge_and_its_spend_to_the_results(tmp_path, monkeypatch, assay_cache):
    import torch
    from tiny_student import register_student

    from assay.evals.run import evaluate

    server = start(monkeypatch, fair=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads fight on the shared 2-core box
    try:
        project = Project(tmp_path / "proj")
        register_student(project)
        suite = load_suite("summarize", ["data.limit=4", "generation.max_new_tokens=8", "metrics=[rougeL]",
                                         f"judge.teacher={JUDGE}", "judge.against=rule:lead"])
        results = evaluate(suite, "notes-student@v1.0.0", against=["rule:lead"], project=project).results
        judged = results["judge"]
        assert judged["baseline"] == "rule:lead" and judged["teacher"] == JUDGE and judged["examples"] == 4
        assert judged["n"] + judged["failed"] == 4 and judged["calls"] == len(server.model_calls())
        assert results["lineage"]["eval_teacher_calls"][f"judge:{JUDGE}"]["calls"] == judged["calls"]
        assert results["lineage"]["egress"]["eval"][f"judge:{JUDGE}"]["rows_left_machine"] == judged["calls"]
        stored = json.loads((project.reports / results["run_id"] / "results.json").read_text())
        assert stored["judge"]["per_example"] == judged["per_example"]
        with pytest.raises(ConfigError, match="judge.against: 'previous' is not a baseline"):
            evaluate(suite.model_copy(update={"judge": suite.judge.model_copy(update={"against": "previous"})}),
                     "notes-student@v1.0.0", against=["rule:lead"], project=project)
    finally:
        torch.set_num_threads(threads)
        server.close()
