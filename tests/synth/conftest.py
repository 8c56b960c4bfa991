"""Fixtures: the fake provider, the environment pointing the real SDKs at it, and a fresh project state."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_provider import FakeProvider  # noqa: E402

ANTHROPIC_KEY = "sk-ant-TESTKEY-must-never-be-written-0123456789"
OPENAI_KEY = "sk-TESTKEY-must-never-be-written-0123456789abcdef"


@pytest.fixture
def fake():
    with FakeProvider(hang_s=5.0) as server:
        yield server


@pytest.fixture
def env(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    monkeypatch.setenv("ASSAY_HOME", str(tmp_path / "project"))
    return fake


@pytest.fixture
def state(env):
    from assay.curation.synth import open_state

    cache, ledger = open_state()
    yield cache, ledger
    cache.conn.close()
