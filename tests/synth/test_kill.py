"""kill -9 at a random moment, then the same command again: no paid call repeated, the same final replies."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_provider import digest, expected_text
from synth_worker import requests as worker_requests

from assay.curation.synth import cache_key

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).parent / "synth_worker.py"
N = 200


def _start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), "--n", str(N), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


# a fixed kill point, and a fresh one each run (its seed is in any failure message)
@pytest.mark.parametrize("seed", [pytest.param(1, id="fixed"), pytest.param(random.randrange(10**6), id="random")])
def test_kill_9_then_rerun_repeats_no_paid_call(env, seed):
    fake = env
    fake.latency = 0.04
    fake.push(*random.Random(seed).choices(["ok"] * 6 + ["rate_limit:0.05", "server_error:503", "reset"], k=60))
    kill_after = random.Random(seed).randint(20, 160)  # model calls the server has seen
    worker = _start(_env())
    deadline = time.monotonic() + 60
    while len(fake.model_calls()) < kill_after and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert worker.poll() is None, f"seed {seed}: " + worker.communicate()[1][-2000:]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    seen_before_kill = len(fake.model_calls())

    rerun = _start(_env())
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-3000:]
    replies = [json.loads(line) for line in out.splitlines()]
    requests = worker_requests(N)
    assert [r["text"] for r in replies] == [expected_text(r.messages) for r in requests]
    assert any(r["cached"] for r in replies) and not all(r["cached"] for r in replies)

    conn = sqlite3.connect(Path(os.environ["ASSAY_HOME"]) / ".assay" / "state.db")
    rows = conn.execute("SELECT key, status FROM synth_ledger WHERE status IN ('ok', 'sent')").fetchall()
    paid = Counter(k for k, s in rows if s == "ok")
    lost = {k for k, s in rows if s == "sent"}  # in flight at the kill: the answer died with the process
    assert set(paid.values()) == {1} and len(paid) == N, f"seed {seed}"  # every request paid for exactly once

    # the server's view: a request answered twice must be one whose first answer never reached our disk
    key_of = {digest(r.messages): cache_key("anthropic", "claude-haiku-4-5", r) for r in requests}
    answered = Counter(key_of[c["digest"]] for c in fake.model_calls() if c["outcome"] == "ok")
    repeated = {k for k, n in answered.items() if n > 1}
    assert repeated <= lost and len(lost) <= 8, f"seed {seed}"  # at most one concurrency's worth was in the air
    assert seen_before_kill >= kill_after


def test_kill_9_in_batch_mode_polls_the_same_batch(env):
    fake = env
    fake.batch_delay = 1.5
    worker = _start(_env(), "--batch")
    deadline = time.monotonic() + 60
    while not fake.batches and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(random.uniform(0, 0.3))  # anywhere from mid-create to mid-poll
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    rerun = _start(_env(), "--batch")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-3000:]
    assert len(fake.batches) == 1  # found again, not paid for twice
    replies = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in replies] == [expected_text(r.messages) for r in worker_requests(N)]
