"""Every table of the project's SQLite state (.assay/state.db), and the migrations between its versions.

The one place the schema lives: `ensure(conn)` brings a database to the current version, recorded in
`PRAGMA user_version`, inside one immediate transaction (two processes opening a fresh project at once
migrate it once). Version 1 is the layout the releases before this module created table by table, each
with CREATE TABLE IF NOT EXISTS where it was used; a database they made has user_version 0 and whichever
tables its commands touched, and migrating it creates the others and adds the registry's later columns.
A new table or column is a new entry at the end of MIGRATIONS, never an edit of an old one.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

# the layout of the releases before user_version was recorded (some projects lack some tables)
V1 = (
    """CREATE TABLE IF NOT EXISTS stage_runs (
    fingerprint TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    output TEXT,
    manifest TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS model_registry (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    parent TEXT,
    recipe TEXT NOT NULL,
    base_model TEXT NOT NULL,
    architecture TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_hash TEXT NOT NULL,
    teachers TEXT NOT NULL,
    path TEXT NOT NULL,
    metrics TEXT NOT NULL,
    config TEXT NOT NULL,
    wall_time_s REAL NOT NULL,
    device TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    created_at TEXT NOT NULL,
    verdict TEXT,
    report TEXT,
    PRIMARY KEY (name, version)
)""",
    """CREATE TABLE IF NOT EXISTS synth_cache (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    text TEXT,
    finish_reason TEXT NOT NULL,
    error TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    cost_known INTEGER NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS synth_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    run_id TEXT NOT NULL,
    teacher TEXT NOT NULL,
    key TEXT,
    mode TEXT NOT NULL,          -- sync, batch, dry_run
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,        -- sent, ok, failed, cache_hit, batch_submitted
    finish_reason TEXT,
    error TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    cost_known INTEGER NOT NULL DEFAULT 1,
    cached INTEGER NOT NULL DEFAULT 0,
    latency_s REAL,
    metadata TEXT
)""",
    """CREATE INDEX IF NOT EXISTS synth_ledger_key ON synth_ledger(key)""",
    """CREATE TABLE IF NOT EXISTS synth_runs (
        run_id TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started REAL NOT NULL,
        expires REAL NOT NULL,
        active INTEGER NOT NULL,       -- run_requests calls of this run now going (0: ended)
        spent REAL NOT NULL DEFAULT 0, -- settled costs, uncertain faults at their reserved worst case
        held REAL NOT NULL DEFAULT 0   -- worst-case costs reserved for calls in flight
    )""",
    """CREATE INDEX IF NOT EXISTS synth_runs_pool ON synth_runs(pool)""",
    """CREATE TABLE IF NOT EXISTS synth_leases (
        key TEXT PRIMARY KEY,          -- a synth_cache key being answered
        run_id TEXT NOT NULL,
        since REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS synth_batches (
        submission_id TEXT PRIMARY KEY,
        batch_id TEXT,
        teacher TEXT NOT NULL,
        created_at REAL NOT NULL,
        n INTEGER NOT NULL,
        status TEXT NOT NULL          -- submitting, open, done, failed, lost
    )""",
    """CREATE TABLE IF NOT EXISTS synth_batch_items (
        submission_id TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (submission_id, key)
    )""",
    """CREATE INDEX IF NOT EXISTS synth_batch_items_key ON synth_batch_items(key)""",
    """CREATE TABLE IF NOT EXISTS eval_predictions (
    model_key TEXT NOT NULL,
    suite_key TEXT NOT NULL,
    example_key TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (model_key, suite_key, example_key)
)""",
    """CREATE TABLE IF NOT EXISTS eval_runs (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    suite_key TEXT NOT NULL,
    headline TEXT NOT NULL,
    value REAL,
    decision TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id)
)""",
    """CREATE TABLE IF NOT EXISTS duplicate_reviews (
    note_id_a TEXT NOT NULL, note_id_b TEXT NOT NULL, decision TEXT NOT NULL, keep TEXT, votes TEXT NOT NULL,
    reviewers TEXT NOT NULL, argilla_dataset TEXT NOT NULL, pulled_at TEXT NOT NULL,
    PRIMARY KEY (note_id_a, note_id_b))"""
)


def _registry_columns(conn: sqlite3.Connection) -> None:
    """Registries written before the model card's eval columns existed lack them."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(model_registry)")}
    for column in ("verdict", "report"):
        if column not in have:
            conn.execute(f"ALTER TABLE model_registry ADD COLUMN {column} TEXT")


def _v1(conn: sqlite3.Connection) -> None:
    for statement in V1:
        conn.execute(statement)
    _registry_columns(conn)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
VERSION = len(MIGRATIONS)


def ensure(conn: sqlite3.Connection) -> None:
    """Migrate `conn`'s database to VERSION (no write when it is there already); a database from a newer
    release is refused rather than written with an older layout."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == VERSION:
        return
    if found > VERSION:
        from assay.errors import StoreError

        raise StoreError(f"the project's state is schema version {found}, newer than this assay's {VERSION}; "
                         "upgrade assay")
    in_transaction = conn.in_transaction
    if not in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
        for step in MIGRATIONS[found:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        if not in_transaction:
            conn.execute("ROLLBACK")
        raise
    if not in_transaction:
        conn.execute("COMMIT")
