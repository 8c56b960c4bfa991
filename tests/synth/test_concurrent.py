"""Two synth processes at once over one project: each request is paid for once, and one budget holds for both."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_provider import expected_text
from synth_worker import requests as worker_requests

from assay.curation.synth import Limits, get_teacher, open_state, run_requests
from assay.curation.synth.leases import TTL_S, Shared
from assay.curation.synth.prices import max_input_tokens

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).parent / "synth_worker.py"
N = 30


def _start(go: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, str(WORKER), "--n", str(N), "--concurrency", "4", "--go", str(go),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _both(tmp_path: Path, args_a: list[str], args_b: list[str]) -> list[tuple[int, list, str]]:
    """Start two workers, let them go at the same moment, and wait for both."""
    go = tmp_path / "go"
    workers = [_start(go, *args_a), _start(go, *args_b)]
    go.touch()
    out = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=180)
        out.append((worker.returncode, [json.loads(line) for line in stdout.splitlines()], stderr))
    return out


def _ledger() -> sqlite3.Connection:
    return sqlite3.connect(Path(os.environ["ASSAY_HOME"]) / ".assay" / "state.db")


def test_two_processes_send_each_request_once(env, tmp_path):
    fake = env
    fake.latency = 0.15  # 30 requests at concurrency 4: each process alone would take over a second
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = _both(tmp_path, [], [])
    assert rc_a == 0 and rc_b == 0, err_a[-2000:] + err_b[-2000:]
    expected = [expected_text(r.messages) for r in worker_requests(N)]
    assert [r["text"] for r in out_a] == expected and [r["text"] for r in out_b] == expected

    seen = Counter(c["digest"] for c in fake.model_calls())
    assert len(seen) == N and set(seen.values()) == {1}  # the server answered each request exactly once
    # each process did part of the work and waited for the other's replies instead of sending again
    fresh = [sum(not r["cached"] for r in out) for out in (out_a, out_b)]
    assert sum(fresh) == N and min(fresh) > 0, fresh
    rows = _ledger().execute("SELECT status, COUNT(*) FROM synth_ledger GROUP BY status").fetchall()
    assert dict(rows) == {"ok": N, "cache_hit": N}


def _cost_of_n(offset: int) -> float:
    """What N worker requests really cost at the fake, paid once in this process."""
    cache, ledger = open_state()

    async def go() -> float:
        teacher = get_teacher("anthropic:claude-haiku-4-5")
        try:
            replies = await run_requests(teacher, worker_requests(N, offset), cache=cache, ledger=ledger,
                                         limits=Limits(concurrency=8))
        finally:
            await teacher.aclose()
        return sum(r.cost_usd for r in replies)
    try:
        return asyncio.run(go())
    finally:
        cache.conn.close()


def test_two_processes_share_one_budget(env, tmp_path):
    fake = env
    fake.latency = 0.15
    # the same token counts at offsets that are multiples of 13 (the worker's words repeat every 13 notes)
    cost = _cost_of_n(offset=13 * 100)
    already = _ledger().execute("SELECT TOTAL(cost_usd) FROM synth_ledger").fetchone()[0]
    budget = cost / 0.8  # either process alone finishes within it; both together would need 1.6 budgets
    results = _both(tmp_path, ["--offset", "0", "--budget", f"{budget:.10f}"],
                    ["--offset", str(13 * 10), "--budget", f"{budget:.10f}"])
    for rc, _, err in results:
        assert rc in (0, 3), err[-2000:]
    assert any(rc == 3 for rc, _, _ in results)  # one of them was stopped by the other's spending

    spent = _ledger().execute("SELECT TOTAL(cost_usd) FROM synth_ledger").fetchone()[0] - already
    assert spent <= budget + 1e-12, (spent, budget)
    assert spent >= budget / 2  # the budget was used, not refused
    answered = sum(1 for _, out, _ in results for r in out if r is not None)
    assert len(fake.model_calls()) == N + answered  # the calibration run, then each answered request once


def test_a_dead_process_s_leases_and_reservations_are_taken_over(env, tmp_path):
    fake = env
    fake.hang_s = 30.0
    cost = _cost_of_n(offset=13 * 100)
    worst = get_teacher("anthropic:claude-haiku-4-5").price.cost(
        max_input_tokens(worker_requests(1)[0].messages), 64)
    budget = cost + 2 * worst  # enough for all N, not if the four worst cases the dead process held still counted
    fake.push(*["hang"] * 4)  # the first process's first four calls never come back
    go = tmp_path / "go"
    go.touch()
    first = _start(go, "--budget", f"{budget:.10f}")
    deadline = time.monotonic() + 60
    while len(fake.model_calls()) < N + 4 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, first.communicate()[1][-2000:]
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    started = time.monotonic()
    second = _start(go, "--budget", f"{budget:.10f}")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-2000:]
    assert time.monotonic() - started < TTL_S / 2  # the dead owner was seen dead, not waited out
    assert [json.loads(line)["text"] for line in out.splitlines()] == \
        [expected_text(r.messages) for r in worker_requests(N)]
    answered = Counter(c["digest"] for c in fake.model_calls()[N:] if c["outcome"] == "ok")
    assert len(answered) == N and set(answered.values()) == {1}


def test_expired_lease_is_taken_over_and_a_live_one_is_not(env):
    cache, ledger = open_state()
    try:
        owner, other = Shared(ledger.conn, "owner", ttl_s=0.2), Shared(ledger.conn, "other")
        owner.start()
        other.start()
        assert owner.claim("k1") == "mine" and other.claim("k1") == "busy"
        assert other.busy(["k1", "k2"]) == {"k1"}
        time.sleep(0.3)  # the owner's heartbeat did not run: expired, though its process lives
        assert other.busy(["k1"]) == set() and other.claim("k1") == "mine"
        # one budget for the pool: what a run spent stays counted after it ends, what it held does not
        assert other.reserve(1.0, limit=1.5) is True and owner.reserve(0.4, limit=1.5) is True
        assert owner.reserve(0.4, limit=1.5) is None  # fits once the other's call settles
        other.settle(1.0, 0.9)
        assert owner.reserve(0.4, limit=1.5) is None
        other.reserve(0.1, limit=1.5)
        other.end()  # ended holding 0.1: released
        assert owner.reserve(0.2, limit=1.5) is True  # 0.9 spent + 0.4 + 0.2 held
        assert owner.reserve(0.2, limit=1.5) is None and owner.reserve(0.7, limit=1.5) is False
        owner.end()
        # every run has ended: a new one has its budget to itself, a run id used again keeps its spend
        fresh, again = Shared(ledger.conn, "fresh"), Shared(ledger.conn, "other")
        fresh.start()
        assert fresh.pool_spent() == 0.0
        again.start()
        assert again.pool == fresh.pool and again.pool_spent() == pytest.approx(0.9)
    finally:
        cache.conn.close()
