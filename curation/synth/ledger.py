"""The spend ledger: one row per teacher call, failed ones and cache hits included.

A call's row is written before it is sent (status "sent") and completed when it returns, in the
same transaction as its cache entry. After a kill, a row still "sent" is a call that was in flight:
the only kind a rerun may repeat. Nothing secret is written: every text goes through `scrub`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass

from assay.curation.synth.contract import Reply
from assay.schema import ensure

_SECRET_NAMES = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)$")
_KEY_SHAPES = re.compile(r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,})")


def scrub(text: str | None) -> str | None:
    """Replace every secret from the environment, and anything shaped like an API key, with [REDACTED]."""
    if not text:
        return text
    for name, value in os.environ.items():
        if value and len(value) >= 8 and _SECRET_NAMES.search(name) and value in text:
            text = text.replace(value, "[REDACTED]")
    return _KEY_SHAPES.sub("[REDACTED]", text)


@dataclass
class Spend:
    calls: int
    ok: int
    failed: int
    cache_hits: int
    in_flight: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_unknown_calls: int


class Ledger:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        ensure(conn)

    def sent(self, *, run_id: str, teacher: str, key: str, attempt: int, mode: str = "sync",
             metadata: dict | None = None) -> int:
        """Write-ahead: the call is about to leave. Returns the row to complete."""
        cur = self.conn.execute(
            "INSERT INTO synth_ledger (ts, run_id, teacher, key, mode, attempt, status, metadata) "
            "VALUES (?,?,?,?,?,?,'sent',?)",
            (time.time(), run_id, scrub(teacher), key, mode, attempt, _meta(metadata)))
        return int(cur.lastrowid)

    def complete(self, row: int, reply: Reply, latency_s: float) -> None:
        self.conn.execute(
            "UPDATE synth_ledger SET status=?, finish_reason=?, error=?, input_tokens=?, output_tokens=?, "
            "cost_usd=?, cost_known=?, latency_s=? WHERE id=?",
            ("ok" if reply.error is None else "failed", reply.finish_reason, scrub(reply.error),
             reply.usage.get("input_tokens", 0), reply.usage.get("output_tokens", 0), reply.cost_usd,
             int(reply.cost_known), latency_s, row))

    def record(self, *, run_id: str, teacher: str, key: str | None, mode: str, status: str,
               reply: Reply | None = None, attempt: int = 1, metadata: dict | None = None) -> None:
        """A row that needs no write-ahead: cache hits, batch submissions and batch results."""
        usage = reply.usage if reply else {}
        self.conn.execute(
            "INSERT INTO synth_ledger (ts, run_id, teacher, key, mode, attempt, status, finish_reason, error, "
            "input_tokens, output_tokens, cost_usd, cost_known, cached, metadata) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), run_id, scrub(teacher), key, mode, attempt, status,
             reply.finish_reason if reply else None, scrub(reply.error) if reply else None,
             usage.get("input_tokens", 0), usage.get("output_tokens", 0), reply.cost_usd if reply else 0.0,
             int(reply.cost_known) if reply else 1, int(status == "cache_hit"), _meta(metadata)))

    def spend(self, *, run_id: str | None = None, teacher: str | None = None) -> Spend:
        where, args = [], []
        if run_id:
            where.append("run_id = ?")
            args.append(run_id)
        if teacher:
            where.append("teacher = ?")
            args.append(teacher)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        row = self.conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status NOT IN ('cache_hit', 'batch_submitted')), "
            "COUNT(*) FILTER (WHERE status = 'ok'), COUNT(*) FILTER (WHERE status = 'failed'), "
            "COUNT(*) FILTER (WHERE status = 'cache_hit'), COUNT(*) FILTER (WHERE status = 'sent'), "
            "TOTAL(input_tokens) FILTER (WHERE NOT cached), TOTAL(output_tokens) FILTER (WHERE NOT cached), "
            "TOTAL(cost_usd), COUNT(*) FILTER (WHERE cost_known = 0) "
            f"FROM synth_ledger {clause}", args).fetchone()
        return Spend(row[0], row[1], row[2], row[3], row[4], int(row[5]), int(row[6]), float(row[7]), row[8])


def _meta(metadata: dict | None) -> str | None:
    return scrub(json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str)) if metadata else None
