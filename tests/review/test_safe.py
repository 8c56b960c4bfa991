"""Suggestion agents Argilla accepts, made from any teacher spec (no server: the browser test sends them)."""

from __future__ import annotations

import re

from assay.curation.review.safe import agent_names, field_text

AGENT = re.compile(r"^[a-zA-Z0-9\-_:./\s]*[a-zA-Z0-9][a-zA-Z0-9\-_:./\s]*$")  # argilla-server's AGENT_REGEX


def test_agents_are_accepted_readable_and_distinct():
    specs = ["rule:lead", "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku@2024",
             "openai-compatible:qwen2.5@http://user:s3cret@gpu-box:8000/v1?api_key=abc",
             "openai-compatible:qwen2.5@http://other:pw@gpu-box:8000/v1", "local:/models/my model (v2)",
             "openai-compatible:" + "m" * 300 + "@http://h/v1", "@@@"]
    agents = agent_names(specs)
    assert all(AGENT.match(a) and len(a) <= 200 for a in agents.values()), agents
    assert len(set(agents.values())) == len(specs)  # same model and host, other credentials: still told apart
    assert agents["rule:lead"] == "rule:lead" and agents["openai:gpt-4o-mini"] == "openai:gpt-4o-mini"
    assert agents["anthropic:claude-3-5-haiku@2024"] == "anthropic:claude-3-5-haiku at 2024"
    assert not any("s3cret" in a or "abc" in a or "user" in a for a in agents.values())  # no credentials
    assert agents["openai-compatible:qwen2.5@http://user:s3cret@gpu-box:8000/v1?api_key=abc"].startswith(
        "openai-compatible:qwen2.5 at gpu-box:8000/v1-")


def test_field_text_escapes_markup_only():
    assert field_text("<img src=x onerror=alert(1)> AT&T \"quoted\" 'single'") == \
        "&lt;img src=x onerror=alert(1)&gt; AT&amp;T \"quoted\" 'single'"
