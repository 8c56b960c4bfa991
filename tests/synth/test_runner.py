"""The runner: cache first, order kept, duplicates sent once, limits held, the budget never exceeded."""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_provider import expected_text

from assay.curation.synth import (
    BudgetExceeded,
    Limits,
    PriceTable,
    Request,
    UnknownPriceError,
    cache_key,
    estimate,
    get_teacher,
    run_requests,
)


def _req(i: int, size: int = 40, max_tokens: int = 40) -> Request:
    return Request([{"role": "user", "content": f"note {i} " + "x" * size}], max_tokens=max_tokens,
                   metadata={"note_id": f"n{i}", "task": "summary"})


def _run(spec, requests, state, **kw):
    cache, ledger = state

    async def go():
        teacher = get_teacher(spec, **kw.pop("teacher_options", {}))
        try:
            return await run_requests(teacher, requests, cache=cache, ledger=ledger, **kw)
        finally:
            if hasattr(teacher, "aclose"):
                await teacher.aclose()
    return asyncio.run(go())


def test_cache_order_and_duplicates(fake, state):
    requests = [_req(i) for i in range(10)] + [_req(3), _req(0)]
    replies = _run("openai:gpt-4o-mini", requests, state)
    assert [r.text for r in replies] == [expected_text(r.messages) for r in requests]
    assert len(fake.model_calls()) == 10  # a duplicate is sent once
    again = _run("openai:gpt-4o-mini", list(reversed(requests)), state)
    assert len(fake.model_calls()) == 10 and all(r.cached and r.cost_usd == 0 for r in again)
    assert [r.text for r in again] == [r.text for r in reversed(replies)]
    spend = state[1].spend()
    assert (spend.ok, spend.cache_hits, spend.in_flight) == (10, 12, 0)
    assert spend.cost_usd == pytest.approx(sum(r.cost_usd for r in replies[:10]))
    # metadata is not part of the key; model and parameters are
    same = Request(_req(1).messages, max_tokens=40, metadata={"note_id": "other"})
    assert cache_key("openai", "gpt-4o-mini", same) == cache_key("openai", "gpt-4o-mini", _req(1))
    assert cache_key("openai", "gpt-4o", same) != cache_key("openai", "gpt-4o-mini", same)
    assert cache_key("openai", "gpt-4o-mini", Request(same.messages, max_tokens=41)) != \
        cache_key("openai", "gpt-4o-mini", same)


def test_ledger_rows_carry_metadata_and_cost(fake, state):
    _run("anthropic:claude-haiku-4-5", [_req(0)], state)
    row = state[1].conn.execute("SELECT * FROM synth_ledger").fetchone()
    assert row["status"] == "ok" and row["teacher"] == "anthropic:claude-haiku-4-5" and row["cost_usd"] > 0
    assert '"note_id": "n0"' in row["metadata"] and row["latency_s"] >= 0 and row["input_tokens"] > 0


@pytest.mark.parametrize("budget", [0.0, 0.0004, 0.002])
def test_budget_is_never_exceeded(fake, state, budget):
    # haiku: $1 / $5 per Mtok; each request reserves its worst case (bytes + max_tokens)
    requests = [_req(i, size=400, max_tokens=100) for i in range(40)]
    with pytest.raises(BudgetExceeded) as info:
        _run("anthropic:claude-haiku-4-5", requests, state, budget_usd=budget,
             limits=Limits(concurrency=8))
    err = info.value
    spend = state[1].spend()
    assert spend.cost_usd <= budget and err.spent_usd == pytest.approx(spend.cost_usd)
    assert err.done == spend.ok == len(fake.model_calls()) < 40 and err.remaining == 40 - err.done
    assert sum(r is not None for r in err.replies) == err.done
    # a bigger budget goes on from the cache, paying only for the rest
    _run("anthropic:claude-haiku-4-5", requests, state, budget_usd=1.0, limits=Limits(concurrency=8))
    assert len(fake.model_calls()) == 40


def test_unknown_price_refuses_a_budget_unless_given(fake, state):
    with pytest.raises(UnknownPriceError, match="no price known for openai:my-finetune"):
        _run("openai:my-finetune", [_req(0)], state, budget_usd=1.0)
    assert fake.model_calls() == []
    [reply] = _run("openai:my-finetune", [_req(0)], state)  # no budget: runs, cost flagged unknown
    assert reply.ok and not reply.cost_known and reply.cost_usd == 0
    assert state[1].spend().cost_unknown_calls == 1
    [reply] = _run("openai:my-finetune", [_req(1)], state, budget_usd=1.0,
                   teacher_options={"prices": PriceTable({"openai:my-finetune": (1.0, 2.0)})})
    assert reply.cost_known and reply.cost_usd > 0


def test_dry_run_counts_cached_hits_as_free(fake, state):
    _run("openai:gpt-4o-mini", [_req(0)], state)
    requests = [_req(i) for i in range(3)]
    replies = _run("openai:gpt-4o-mini", requests, state, dry_run=True)
    assert len(fake.model_calls()) == 1
    assert replies[0].cached and replies[0].cost_usd == 0
    assert [r.finish_reason for r in replies[1:]] == ["dry_run", "dry_run"] and all(r.cost_usd > 0 for r in replies[1:])
    est = estimate(get_teacher("openai:gpt-4o-mini"), requests, cache=state[0])
    assert (est.cached, est.to_send, est.cost_known) == (1, 2, True)
    assert est.cost_usd == pytest.approx(sum(r.cost_usd for r in replies[1:]))
    unknown = estimate(get_teacher("openai:mystery"), requests, cache=state[0])
    assert not unknown.cost_known and unknown.cost_usd == 0


def test_concurrency_is_held(fake, state):
    fake.latency = 0.05
    _run("openai:gpt-4o-mini", [_req(i) for i in range(24)], state, limits=Limits(concurrency=4))
    calls = fake.model_calls()
    peak = max(sum(1 for o in calls if o["t_start"] <= c["t_start"] < o["t_end"]) for c in calls)
    assert peak <= 4


def test_rpm_paces_requests(fake, state):
    started = time.monotonic()
    _run("openai:gpt-4o-mini", [_req(i) for i in range(11)], state, limits=Limits(concurrency=8, rpm=600))
    starts = sorted(c["t_start"] for c in fake.model_calls())
    assert (starts[-1] - starts[0]) >= 0.95  # 10 gaps at 10 per second
    assert time.monotonic() - started < 5


def test_progress_and_rule_teacher_in_chunks(state):
    seen = []
    requests = [Request([{"role": "user", "content": f"First sentence {i}. Second one."}]) for i in range(600)]
    replies = _run("rule:lead", requests, state, progress=lambda done, total: seen.append((done, total)))
    assert replies[5].text == "First sentence 5. Second one." and seen[-1] == (600, 600)
    assert state[1].spend().ok == 600 and len(state[0]) == 600


def test_limits_survive_separate_event_loops(fake, state):
    limits = Limits(concurrency=2, rpm=6000, tpm=10**6)
    for i in range(2):  # one Limits shared by two asyncio.run() calls
        _run("openai:gpt-4o-mini", [_req(10 * i + j) for j in range(4)], state, limits=limits)
    assert len(fake.model_calls()) == 8
