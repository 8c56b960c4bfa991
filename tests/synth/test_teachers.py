"""Each teacher kind, through the real SDKs against the fake provider; the registry; prices."""

from __future__ import annotations

import asyncio

import pytest
from conftest import ANTHROPIC_KEY, OPENAI_KEY
from fake_provider import expected_text

from assay.curation.synth import MissingKeyError, Price, PriceTable, Request, get_teacher
from assay.curation.synth.prices import estimate_input_tokens, max_input_tokens
from assay.curation.synth.teachers import keywords, lead, note_text
from assay.errors import NotFoundError

MESSAGES = [{"role": "system", "content": "You summarise notes."},
            {"role": "user", "content": "<note>Call the plumber on Monday.</note>"}]


def _generate(teacher, requests):
    async def go():
        try:
            return await teacher.generate(requests)
        finally:
            if hasattr(teacher, "aclose"):
                await teacher.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("spec", ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"])
def test_remote_teacher_through_sdk(env, spec):
    teacher = get_teacher(spec)
    assert teacher.is_remote and teacher.price is not None
    replies = _generate(teacher, [Request(MESSAGES, max_tokens=50), Request(MESSAGES[1:], max_tokens=50)])
    assert [r.text for r in replies] == [expected_text(MESSAGES), expected_text(MESSAGES[1:])]
    for reply in replies:
        assert reply.ok and reply.finish_reason == "stop" and reply.teacher == spec and not reply.cached
        assert reply.usage["input_tokens"] > 0 and reply.usage["output_tokens"] > 0
        assert reply.cost_usd == pytest.approx(teacher.price.cost(reply.usage["input_tokens"],
                                                                  reply.usage["output_tokens"]))
    calls = env.model_calls()
    assert len(calls) == 2 and {c["model"] for c in calls} == {spec.split(":")[1]}
    assert {c["api_key"] for c in calls} == {ANTHROPIC_KEY if spec.startswith("anthropic") else OPENAI_KEY}


def test_wire_formats(env):
    _generate(get_teacher("anthropic:claude-haiku-4-5"), [Request(MESSAGES, max_tokens=33, temperature=0.5)])
    _generate(get_teacher("anthropic:claude-opus-4-7"), [Request(MESSAGES, max_tokens=33, temperature=0.5)])
    _generate(get_teacher("openai:gpt-4o-mini"), [Request(MESSAGES, max_tokens=33, temperature=0.5)])
    _generate(get_teacher("openai:gpt-5-mini"), [Request(MESSAGES, max_tokens=33, temperature=0.5)])
    haiku, opus, mini, five = (c["body"] for c in env.model_calls())
    # the system prompt travels as `system`; temperature in the body although the SDK dropped the argument
    assert haiku["system"] == MESSAGES[0]["content"] and haiku["messages"] == MESSAGES[1:]
    assert haiku["temperature"] == 0.5 and haiku["max_tokens"] == 33
    assert "temperature" not in opus  # Opus 4.7+ rejects sampling parameters
    assert mini["messages"] == MESSAGES and mini["max_completion_tokens"] == 33 and mini["temperature"] == 0.5
    assert "temperature" not in five  # reasoning models reject it too


def test_openai_compatible_with_and_without_key(env, monkeypatch):
    spec = f"openai-compatible:qwen2.5@{env.url}/v1"
    teacher = get_teacher(spec)
    assert not teacher.is_remote and teacher.price == Price(0, 0)  # a server on this machine
    assert _generate(teacher, [Request(MESSAGES)])[0].text == expected_text(MESSAGES)
    assert env.model_calls()[-1]["api_key"] == "no-key"
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "compat-secret-123456")
    assert _generate(get_teacher(spec), [Request(MESSAGES)])[0].ok
    assert env.model_calls()[-1]["api_key"] == "compat-secret-123456"
    remote = get_teacher("openai-compatible:llama@https://inference.example.com/v1")
    assert remote.is_remote and remote.price is None  # unknown, never assumed free


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        get_teacher("anthropic:claude-haiku-4-5")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        get_teacher("openai:gpt-4o-mini")


def test_registry_did_you_mean():
    with pytest.raises(NotFoundError, match="Did you mean 'anthropic'"):
        get_teacher("antropic:claude-haiku-4-5")
    with pytest.raises(NotFoundError, match="Did you mean 'lead'"):
        get_teacher("rule:leed")
    with pytest.raises(NotFoundError):
        get_teacher("openai")


def test_rule_teachers():
    request = Request([{"role": "user", "content": "Summarise: <note>Buy milk. Then call Bob about the fence. "
                                                   "Fence posts are rotten.</note>"}])
    assert note_text(request).startswith("Buy milk.")
    lead_reply, kw_reply = (_generate(get_teacher(s), [request])[0] for s in ("rule:lead", "rule:keywords"))
    assert lead_reply.text == "Buy milk. Then call Bob about the fence."
    assert kw_reply.text.split(", ")[0] == "fence"
    assert not get_teacher("rule:lead").is_remote and lead_reply.cost_usd == 0
    assert lead("One long first sentence that is certainly more than eighty characters in length, really. Two.") \
        .endswith("really.")
    assert keywords("the the and") == ""
    empty = _generate(get_teacher("rule:lead"), [Request([{"role": "user", "content": "  "}])])[0]
    assert empty.error == "empty_input"


def test_prices():
    table = PriceTable({"openai:my-model": (0.3, 1.2), "anthropic:claude-haiku-4-5": {"input": 2, "output": 6}})
    assert table.lookup("openai", "my-model") == Price(0.3, 1.2)
    assert table.lookup("anthropic", "claude-haiku-4-5-20251001") == Price(2, 6)  # dated snapshot: family price
    assert table.lookup("openai", "gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert table.lookup("openai", "gpt-4o-2024-08-06") == Price(2.5, 10)
    assert table.lookup("openai", "gpt-5.1") is None  # not silently priced as gpt-5
    assert Price(1, 5).cost(1_000_000, 100_000, batch=True) == pytest.approx(0.75)
    messages = [{"role": "user", "content": "é" * 100}]
    assert max_input_tokens(messages) >= 200 > estimate_input_tokens(messages)


def test_credentials_in_a_base_url_stay_out_of_the_spec(env):
    teacher = get_teacher("openai-compatible:llama@https://user:hunter2-secret@inference.example.com:8443/v1")
    assert "hunter2" not in teacher.spec and teacher.spec.endswith("@https://***@inference.example.com:8443/v1")
    assert "hunter2" in teacher.base_url
