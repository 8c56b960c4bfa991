"""What concurrent synth runs share through the project's SQLite state: who is running, leases, one budget.

Every `run_requests` call registers a run (id, host, pid, and an expiry its heartbeat keeps ahead).
Before a request leaves, the run claims the request's cache key; another run that finds the claim held by a
live run waits for the reply to appear in the cache instead of paying for it again. A run is dead once its
process is gone (same host) or its expiry has passed (any host: the state may sit on shared storage); its
claims are taken over and what it had reserved against a budget is released.

Budgets are shared by pools. A run joins the pool of the runs alive when it starts, or opens a new one, and
its budget caps the whole pool: what every member has paid, plus what the live ones hold for calls in flight.
Two runs with --budget 1 started together spend at most 1 in all; a run that starts after every other has
ended has its budget to itself. A run id used again (one synth command, teacher after teacher) keeps its spend.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

from assay.curation.synth.cache import transaction
from assay.schema import ensure

TTL_S = 60.0  # a run not heard from for this long is dead, wherever it runs
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal answered


def alive(row: sqlite3.Row, now: float | None = None) -> bool:
    if row["active"] <= 0 or row["expires"] < (now or time.time()):
        return False
    return row["host"] != HOST or pid_alive(row["pid"])


class Shared:
    """One run's hold on the shared state: registration and heartbeat, leases on keys, budget reservations."""

    def __init__(self, conn: sqlite3.Connection, run_id: str, ttl_s: float = TTL_S):
        self.conn, self.run_id, self.ttl_s = conn, run_id, ttl_s
        self.pool = ""
        self.claimed: set[str] = set()  # this call's leases (calls of one run id may run side by side)
        ensure(conn)

    def start(self) -> None:
        """Register this run (again) and join the pool of the live runs, or open one."""
        now = time.time()
        with transaction(self.conn):
            mine = self.conn.execute("SELECT * FROM synth_runs WHERE run_id=?", (self.run_id,)).fetchone()
            if mine is not None and alive(mine, now):  # another call of this run is going: same pool
                self.pool = mine["pool"]
                self.conn.execute("UPDATE synth_runs SET active=active+1, expires=? WHERE run_id=?",
                                  (now + self.ttl_s, self.run_id))
                return
            live = [r for r in self.conn.execute("SELECT * FROM synth_runs WHERE active > 0 ORDER BY started")
                    if alive(r, now)]
            self.pool = live[0]["pool"] if live else uuid.uuid4().hex[:16]
            if mine is None:
                self.conn.execute("INSERT INTO synth_runs (run_id, pool, host, pid, started, expires, active) "
                                  "VALUES (?,?,?,?,?,?,1)", (self.run_id, self.pool, HOST, os.getpid(), now,
                                                              now + self.ttl_s))
            else:  # a run id used again keeps what it spent; what it held died with its last call
                self.conn.execute("UPDATE synth_runs SET pool=?, host=?, pid=?, expires=?, active=1, held=0 "
                                  "WHERE run_id=?", (self.pool, HOST, os.getpid(), now + self.ttl_s, self.run_id))

    def end(self) -> None:
        with transaction(self.conn):
            for key in self.claimed:
                self.conn.execute("DELETE FROM synth_leases WHERE key=? AND run_id=?", (key, self.run_id))
            self.conn.execute("UPDATE synth_runs SET active=MAX(0, active-1) WHERE run_id=?", (self.run_id,))

    async def heartbeat(self) -> None:
        """Keep this run's expiry ahead while it works; cancelled when the run ends."""
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            self.conn.execute("UPDATE synth_runs SET expires=? WHERE run_id=?", (time.time() + self.ttl_s,
                                                                                 self.run_id))

    # -- leases on cache keys
    def claim(self, key: str) -> str:
        """"mine" (send it), "cached" (answered meanwhile) or "busy" (a live run is answering it: wait)."""
        with transaction(self.conn):
            if self.conn.execute("SELECT 1 FROM synth_cache WHERE key=?", (key,)).fetchone():
                return "cached"
            holder = self.conn.execute("SELECT r.* FROM synth_leases l JOIN synth_runs r USING (run_id) "
                                       "WHERE l.key=?", (key,)).fetchone()
            if holder is not None and holder["run_id"] != self.run_id and alive(holder):
                return "busy"
            self.conn.execute("INSERT OR REPLACE INTO synth_leases VALUES (?,?,?)", (key, self.run_id, time.time()))
            self.claimed.add(key)
            return "mine"

    def release(self, key: str) -> None:
        self.conn.execute("DELETE FROM synth_leases WHERE key=? AND run_id=?", (key, self.run_id))
        self.claimed.discard(key)

    def busy(self, keys: list[str]) -> set[str]:
        """The keys among these that a live other run holds."""
        held: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.conn.execute(
                "SELECT l.key, r.* FROM synth_leases l JOIN synth_runs r USING (run_id) "
                f"WHERE l.key IN ({','.join('?' * len(chunk))}) AND l.run_id != ?", [*chunk, self.run_id])
            now = time.time()
            held.update(r["key"] for r in rows if alive(r, now))
        return held

    # -- the pool's budget
    def reserve(self, amount: float, limit: float | None) -> bool | None:
        """True: held. False: can never fit, stop. None: fits once calls in flight (in any run) settle."""
        with transaction(self.conn):
            spent, held = self._pool()
            fits = limit is None or spent + held + amount <= limit + 1e-12
            if fits:
                self.conn.execute("UPDATE synth_runs SET held=held+? WHERE run_id=?", (amount, self.run_id))
                return True
            return False if spent + amount > limit + 1e-12 or held <= 0 else None

    def hold(self, amount: float) -> None:
        """Hold without asking: the call is already at the provider (a batch found again)."""
        self.conn.execute("UPDATE synth_runs SET held=held+? WHERE run_id=?", (amount, self.run_id))

    def settle(self, reserved: float, charged: float) -> None:
        self.conn.execute("UPDATE synth_runs SET held=MAX(0, held-?), spent=spent+? WHERE run_id=?",
                          (reserved, charged, self.run_id))

    def pool_spent(self) -> float:
        return self._pool()[0]

    def _pool(self) -> tuple[float, float]:
        """Spent by every member of the pool, held by its live members (a dead one's reservations are released)."""
        now, spent, held = time.time(), 0.0, 0.0
        for row in self.conn.execute("SELECT * FROM synth_runs WHERE pool=?", (self.pool,)):
            spent += row["spent"]
            if row["run_id"] == self.run_id or alive(row, now):
                held += row["held"]
        return spent, held


@asynccontextmanager
async def running(conn: sqlite3.Connection, run_id: str) -> AsyncIterator[Shared]:
    """A registered run with its heartbeat, for the length of the block."""
    shared = Shared(conn, run_id)
    shared.start()
    heartbeat = asyncio.create_task(shared.heartbeat())
    try:
        yield shared
    finally:
        heartbeat.cancel()
        shared.end()
