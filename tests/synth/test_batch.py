"""Batch mode through both batch APIs: submit, poll, results, resubmit only what expired or errored, resume."""

from __future__ import annotations

import asyncio

import pytest
from fake_provider import expected_text

from assay.curation.synth import BudgetExceeded, Request, cache_key, get_teacher, run_requests
from assay.curation.synth.batch import BatchStore

SPECS = ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]


def _req(i: int, marker: str = "") -> Request:
    return Request([{"role": "system", "content": "Summarise."},
                    {"role": "user", "content": f"note {i} {marker}".strip()}], max_tokens=30)


def _run(spec, requests, state, **kw):
    cache, ledger = state

    async def go():
        teacher = get_teacher(spec)
        try:
            return await run_requests(teacher, requests, cache=cache, ledger=ledger, batch=True, poll_s=0.05, **kw)
        finally:
            await teacher.aclose()
    return asyncio.run(go())


def _batches(fake, api):
    return sorted((b for b in fake.batches.values() if b["api"] == api), key=lambda b: b["created"])


@pytest.mark.parametrize("spec", SPECS)
def test_batch_round_trip_resubmits_only_failures(fake, state, spec):
    requests = [_req(0), _req(1, "[[batch:expire_once]]"), _req(2, "[[batch:error_once]]"), _req(3, "[[refuse]]"),
                _req(4), _req(0)]
    replies = _run(spec, requests, state)
    for request, reply in zip(requests[:3] + requests[4:], replies[:3] + replies[4:]):
        assert reply.ok and reply.text == expected_text(request.messages)
    assert replies[3].error == "refusal" and replies[3].finish_reason == "refusal"
    first, second = _batches(fake, spec.split(":")[0])
    teacher = get_teacher(spec)
    keys = {cache_key(teacher.provider, teacher.model, r) for r in requests}
    assert {cid for cid, _ in first["requests"]} == keys  # custom_id is the cache key; the duplicate sent once
    assert {cid for cid, _ in second["requests"]} == {cache_key(teacher.provider, teacher.model, r)
                                                     for r in requests[1:3]}
    # billed at the batch price
    assert replies[0].cost_usd == pytest.approx(teacher.price.cost(
        replies[0].usage["input_tokens"], replies[0].usage["output_tokens"]) / 2)
    assert fake.model_calls() == []  # nothing went through the synchronous API
    rows = state[1].conn.execute("SELECT status, error FROM synth_ledger WHERE mode='batch' AND key IS NOT NULL "
                                 "ORDER BY id").fetchall()
    assert sorted(e for _, e in rows if e) == sorted(["batch_expired", _errored(spec), "refusal"])
    # a rerun is all cache
    again = _run(spec, requests, state)
    assert all(r.cached for r in again) and len(_batches(fake, spec.split(":")[0])) == 2


def _errored(spec):
    return "batch_errored:api_error" if spec.startswith("anthropic") else "server_error:500"


@pytest.mark.parametrize("spec", SPECS)
def test_batch_resumes_after_interruption_without_resubmitting(fake, state, spec):
    fake.batch_delay = 1.0
    requests = [_req(i) for i in range(5)]
    cache, ledger = state

    async def interrupted():
        teacher = get_teacher(spec)
        task = asyncio.create_task(run_requests(teacher, requests, cache=cache, ledger=ledger, batch=True,
                                                poll_s=0.05))
        while not fake.batches:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        task.cancel()  # as if killed while polling: the database holds what it held
        with pytest.raises(asyncio.CancelledError):
            await task
        await teacher.aclose()

    asyncio.run(interrupted())
    assert len(fake.batches) == 1 and len(cache) == 0
    replies = _run(spec, requests, state)
    assert len(fake.batches) == 1  # the same batch, polled again
    assert [r.text for r in replies] == [expected_text(r.messages) for r in requests]


@pytest.mark.parametrize("spec", SPECS)
def test_batch_created_but_id_never_stored_is_found(fake, state, spec):
    requests = [_req(i) for i in range(3)]
    cache, ledger = state
    store = BatchStore(ledger.conn)

    async def killed_mid_create():
        teacher = get_teacher(spec)
        keys = [cache_key(teacher.provider, teacher.model, r) for r in requests]
        submission = store.intent(teacher.spec, keys)
        await teacher.submit_batch(list(zip(keys, requests)), submission)  # the provider has it; we never learn
        await teacher.aclose()

    asyncio.run(killed_mid_create())
    replies = _run(spec, requests, state)
    assert len(fake.batches) == 1 and all(r.ok for r in replies)


def test_batch_budget(fake, state):
    # worst case reserved per request ~$0.0001 at the batch price, actual ~$0.00002: the budget is
    # used up over several rounds, each submitting what fits once the previous round's real cost is known
    requests = [_req(i) for i in range(30)]
    with pytest.raises(BudgetExceeded) as info:
        _run("anthropic:claude-haiku-4-5", requests, state, budget_usd=0.0003)
    assert state[1].spend().cost_usd <= 0.0003 and 3 < info.value.done < 30
    assert sum(len(b["requests"]) for b in fake.batches.values()) == info.value.done


def test_batch_gives_up_after_max_rounds_and_a_rerun_tries_again(fake, state):
    requests = [_req(0), _req(1, "[[batch:errored]]")]
    replies = _run("anthropic:claude-haiku-4-5", requests, state)
    assert replies[0].ok and replies[1].error == "batch_errored:api_error"
    rounds = [b for b in _batches(fake, "anthropic")]
    assert [len(b["requests"]) for b in rounds] == [2, 1, 1]  # the failure alone, max_rounds=3 in all
    again = _run("anthropic:claude-haiku-4-5", requests, state)
    assert again[0].cached and again[1].error == "batch_errored:api_error"
    assert len(_batches(fake, "anthropic")) == 6
