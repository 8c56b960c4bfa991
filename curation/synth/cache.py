"""The content-addressed teacher cache in the project's SQLite state.

Key: sha256 of provider, model, generation parameters and the rendered messages. Request
metadata (note id, task, prompt version) is not part of it: the same prompt gets the same reply.
A reply is stored the moment it arrives, in its own transaction, so a killed run loses nothing paid.
Transient faults are not stored (they are retried); refusals and max-token stops are, since asking
again would pay again for the same answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator

from assay.curation.synth.contract import Reply, Request
from assay.schema import ensure

KEY_VERSION = 1



def cache_key(provider: str, model: str, request: Request) -> str:
    canon = json.dumps({"v": KEY_VERSION, "provider": provider, "model": model,
                        "params": {"max_tokens": request.max_tokens, "temperature": request.temperature},
                        "messages": [[m["role"], m["content"]] for m in request.messages]},
                       ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def cacheable(reply: Reply) -> bool:
    """A completed answer (even a refusal or a cut-off one); not a transient fault."""
    return not reply.retryable and reply.finish_reason in ("stop", "length", "refusal")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One commit for several writes (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Cache:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        ensure(conn)

    def get_many(self, keys: list[str]) -> dict[str, Reply]:
        found: dict[str, Reply] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = self.conn.execute(
                f"SELECT * FROM synth_cache WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for row in rows:
                found[row["key"]] = Reply(
                    text=row["text"], finish_reason=row["finish_reason"],
                    usage={"input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"]},
                    cost_usd=0.0, cached=True, error=row["error"], teacher=row["teacher"],
                    cost_known=bool(row["cost_known"]), attempts=0)
        return found

    def put(self, key: str, reply: Reply) -> None:
        """Store (or replace) a reply; call inside a transaction to pair it with its ledger row."""
        self.conn.execute(
            "INSERT OR REPLACE INTO synth_cache VALUES (?,?,?,?,?,?,?,?,?,?)",
            (key, reply.teacher, reply.text, reply.finish_reason, reply.error, reply.usage.get("input_tokens", 0),
             reply.usage.get("output_tokens", 0), reply.cost_usd, int(reply.cost_known), time.time()))

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM synth_cache").fetchone()[0]
