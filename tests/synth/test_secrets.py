"""No API key in anything written: the state folder, logs, ledger, exceptions."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from conftest import ANTHROPIC_KEY, OPENAI_KEY

from assay.curation.synth import Limits, Request, TeacherError, get_teacher, run_requests, scrub


def test_no_key_in_state_logs_or_errors(fake, state, tmp_path):
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the SDKs log requests at DEBUG
    cache, ledger = state
    fake.push("rate_limit:0", "server_error:500", "truncated", "reset")
    requests = [Request([{"role": "user", "content": f"note {i}"}], metadata={"note_id": i}) for i in range(6)]
    errors = []

    async def go():
        for spec in ("anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"):
            teacher = get_teacher(spec)
            await run_requests(teacher, requests, cache=cache, ledger=ledger,
                               limits=Limits(concurrency=2, backoff_base_s=0.01))
            await run_requests(teacher, requests[:2] + [Request([{"role": "user", "content": "b"}])], cache=cache,
                               ledger=ledger, batch=True, poll_s=0.05)
            fake.push("unauthorized")
            try:
                await run_requests(teacher, [Request([{"role": "user", "content": "x"}])], cache=cache,
                                   ledger=ledger, limits=Limits(concurrency=1))
            except TeacherError as exc:
                errors.append(str(exc))
            await teacher.aclose()

    try:
        asyncio.run(go())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert len(errors) == 2 and all("auth_failed" in e for e in errors)
    assert fake.calls() and all(c["api_key"] in (ANTHROPIC_KEY, OPENAI_KEY) for c in fake.calls())
    cache.conn.execute("PRAGMA wal_checkpoint(FULL)")
    written = [p for p in Path(os.environ["ASSAY_HOME"]).rglob("*") if p.is_file()] + [log_file]
    assert len(written) >= 2 and log_file.stat().st_size > 0
    for path in written:
        data = path.read_bytes()
        for key in (ANTHROPIC_KEY, OPENAI_KEY):
            assert key.encode() not in data, f"{key[:10]}... found in {path}"
            assert key[-16:].encode() not in data, f"part of {key[:10]}... found in {path}"
    for text in errors:
        assert ANTHROPIC_KEY not in text and OPENAI_KEY not in text


def test_scrub(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefghijkl")
    text = f"key {ANTHROPIC_KEY} other sk-proj-abcdefghijklmnopqrstuv token tok-abcdefghijkl Bearer abc.def-ghijk"
    cleaned = scrub(text)
    assert ANTHROPIC_KEY not in cleaned and "sk-proj" not in cleaned and "tok-abc" not in cleaned
    assert "abc.def" not in cleaned and cleaned.count("[REDACTED]") == 4


def test_missing_key_error_is_one_line(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from assay.curation.synth import MissingKeyError
    with pytest.raises(MissingKeyError) as info:
        get_teacher("openai:gpt-4o-mini")
    assert "\n" not in str(info.value) and "OPENAI_API_KEY" in str(info.value)
