"""One module owns the SQLite schema: a project made by an earlier release (tables created one by one where
they were used, no user_version) is migrated in place, its rows kept; a newer one is refused."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from assay import schema
from assay.errors import StoreError
from assay.project import Project

# what a project made before assay/schema.py holds after one curate and one train: the stage runs and the
# model registry as those releases first wrote it (without the later verdict and report columns)
OLD = [
    """CREATE TABLE stage_runs (fingerprint TEXT PRIMARY KEY, stage TEXT NOT NULL, output TEXT,
       manifest TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE model_registry (name TEXT NOT NULL, version TEXT NOT NULL, parent TEXT, recipe TEXT NOT NULL,
       base_model TEXT NOT NULL, architecture TEXT NOT NULL, dataset TEXT NOT NULL, dataset_hash TEXT NOT NULL,
       teachers TEXT NOT NULL, path TEXT NOT NULL, metrics TEXT NOT NULL, config TEXT NOT NULL,
       wall_time_s REAL NOT NULL, device TEXT NOT NULL, cost_usd REAL NOT NULL, created_at TEXT NOT NULL,
       PRIMARY KEY (name, version))""",
    "INSERT INTO stage_runs VALUES ('fp1', 'curate', 'dataset:notes@v1', '{}', '2026-12-01T00:00:00')",
    """INSERT INTO model_registry VALUES ('notes-student', 'v1.0.0', NULL, 'sft', 'smollm2-135m-instruct', 'llama',
       'notes@v2', 'sha256:x', '[]', '/p', '{}', '{}', 12.5, 'cpu', 0.0, '2026-12-01T00:00:00')""",
]


def _old_project(tmp_path) -> Project:
    project = Project(tmp_path)
    project.state.mkdir(parents=True)
    with sqlite3.connect(project.state / "state.db") as conn:
        for statement in OLD:
            conn.execute(statement)
    return project


def _tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_project_of_the_earlier_release_is_migrated_with_its_rows(tmp_path):
    project = _old_project(tmp_path)
    conn = project.db()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert {"stage_runs", "model_registry", "synth_cache", "synth_ledger", "synth_runs", "synth_leases",
            "synth_batches", "synth_batch_items", "eval_predictions", "eval_runs", "duplicate_reviews"} <= _tables(conn)
    row = conn.execute("SELECT name, version, wall_time_s, verdict, report FROM model_registry").fetchone()
    assert tuple(row) == ("notes-student", "v1.0.0", 12.5, None, None)  # kept, with the later columns added
    assert conn.execute("SELECT output FROM stage_runs").fetchone()[0] == "dataset:notes@v1"
    conn.close()

    from assay import registry

    assert [m.version for m in registry.versions(project, "notes-student")] == ["v1.0.0"]


def test_a_migrated_project_is_not_written_again_and_a_newer_one_is_refused(tmp_path):
    project = _old_project(tmp_path)
    project.db().close()
    conn = project.db()
    changes = conn.total_changes
    schema.ensure(conn)
    assert conn.total_changes == changes  # nothing to do: a read-only project can still be opened
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this assay's"):
        project.db()


def test_two_processes_opening_a_fresh_project_migrate_it_once(tmp_path):
    project = Project(tmp_path)
    errors = []

    def open_it():
        try:
            project.db().close()
        except Exception as exc:  # noqa: BLE001 - any failure is the test's
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sqlite3.connect(project.state / "state.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
