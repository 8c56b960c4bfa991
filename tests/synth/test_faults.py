"""Every fault the providers throw, through the runner: retried with its reason in the ledger, or a failed Reply."""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_provider import expected_text

from assay.curation.synth import Limits, Request, TeacherError, get_teacher, run_requests
from assay.curation.synth.faults import retry_after_seconds

SPECS = ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]


def _req(i: int = 0, text: str = "note") -> Request:
    return Request([{"role": "user", "content": f"{text} {i}"}], max_tokens=40)


def _run(spec, requests, state, **kw):
    cache, ledger = state
    limits = kw.pop("limits", None) or Limits(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05)

    async def go():
        teacher = get_teacher(spec, timeout_s=kw.pop("timeout_s", 10.0))
        try:
            return await run_requests(teacher, requests, cache=cache, ledger=ledger, limits=limits, **kw)
        finally:
            await teacher.aclose()
    return asyncio.run(go())


def _attempts(ledger):
    return [(r["status"], r["error"]) for r in ledger.conn.execute(
        "SELECT status, error FROM synth_ledger WHERE status != 'cache_hit' ORDER BY id")]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("fault,reason", [
    ("overloaded", "overloaded"), ("server_error:500", "server_error:500"), ("server_error:503", "server_error:503"),
    ("reset", "connection_reset"), ("truncated", "malformed_body"), ("hang", "timeout")])
def test_transient_fault_is_retried(fake, state, spec, fault, reason):
    fake.push(fault)
    [reply] = _run(spec, [_req()], state, timeout_s=0.5 if fault == "hang" else 10.0)
    assert reply.ok and reply.text == expected_text(_req().messages) and reply.attempts == 2
    assert _attempts(state[1]) == [("failed", reason), ("ok", None)]
    assert len(fake.model_calls()) == 2


@pytest.mark.parametrize("spec", SPECS)
def test_rate_limit_honours_retry_after_seconds_and_date(fake, state, spec):
    fake.push("rate_limit:0.4")
    started = time.monotonic()
    [reply] = _run(spec, [_req()], state)
    assert reply.ok and time.monotonic() - started >= 0.4
    calls = fake.model_calls()
    assert calls[1]["t_start"] - calls[0]["t_end"] >= 0.39  # waited as asked, not the tiny backoff
    fake.push("rate_limit_date:1")
    [reply] = _run(spec, [_req(1)], state)
    assert reply.ok and [e for _, e in _attempts(state[1])].count("rate_limited") == 2


def test_rate_limit_pauses_every_worker(fake, state):
    fake.push("rate_limit:0.5")
    _run("openai:gpt-4o-mini", [_req(i) for i in range(6)], state,
         limits=Limits(concurrency=2, backoff_base_s=0.01))
    calls = fake.model_calls()
    limited = next(c for c in calls if c["outcome"].startswith("rate_limit"))
    later = [c for c in calls if c["t_start"] > limited["t_end"] + 0.05]
    assert later and min(c["t_start"] for c in later) >= limited["t_end"] + 0.45


@pytest.mark.parametrize("spec", SPECS)
def test_refusal_and_max_tokens_are_failed_replies_not_retried(fake, state, spec):
    fake.push("refusal")
    replies = _run(spec, [_req(0), _req(1, "[[long]]")], state, limits=Limits(concurrency=1))
    assert (replies[0].finish_reason, replies[0].error) == ("refusal", "refusal")
    assert (replies[1].finish_reason, replies[1].error) == ("length", "max_tokens") and replies[1].text
    assert len(fake.model_calls()) == 2  # no retry: asking again would pay again for the same answer
    # both are cached: a rerun pays nothing
    again = _run(spec, [_req(0), _req(1, "[[long]]")], state)
    assert all(r.cached for r in again) and len(fake.model_calls()) == 2
    assert [r.error for r in again] == ["refusal", "max_tokens"]


def test_gives_up_after_max_attempts(fake, state):
    fake.push(*["server_error:503"] * 3)
    [reply] = _run("anthropic:claude-haiku-4-5", [_req()], state,
                   limits=Limits(max_attempts=3, backoff_base_s=0.01))
    assert reply.error == "server_error:503" and reply.attempts == 3 and not reply.cached
    assert len(fake.model_calls()) == 3 and len(state[0]) == 0  # a transient failure is not cached
    [reply] = _run("anthropic:claude-haiku-4-5", [_req()], state)  # so a rerun tries again
    assert reply.ok


def test_too_long_retry_after_fails_the_request(fake, state):
    fake.push("rate_limit:600")
    [reply] = _run("openai:gpt-4o-mini", [_req()], state, limits=Limits(max_retry_after_s=5))
    assert reply.error == "rate_limited" and reply.retry_after == pytest.approx(600) and reply.attempts == 1


def test_auth_failure_stops_the_run(fake, state):
    fake.push("unauthorized")
    with pytest.raises(TeacherError, match="auth_failed.*ANTHROPIC_API_KEY"):
        _run("anthropic:claude-haiku-4-5", [_req(i) for i in range(5)], state, limits=Limits(concurrency=1))
    assert len(fake.model_calls()) == 1


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
