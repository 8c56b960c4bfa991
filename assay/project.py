"""Where a project's files live: datasets, models, reports and the SQLite state.

The project root is $ASSAY_HOME when set, else the current folder, so the CLI works
from a clone and tests point it at a temp folder.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assay.errors import StoreError
from assay.schema import ensure


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def current(cls) -> "Project":
        return cls(Path(os.environ.get("ASSAY_HOME") or Path.cwd()).resolve())

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def state(self) -> Path:
        return self.root / ".assay"

    def db(self) -> sqlite3.Connection:
        """The project's SQLite state (teacher cache, spend ledger, model registry).

        WAL mode and a busy timeout let a second process read while a run writes;
        every table is created and migrated in one place, assay/schema.py.
        """
        self.state.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.state / "state.db", timeout=30, isolation_level=None)
        # switching a new file to WAL needs an exclusive lock and SQLite does not wait for it (no busy
        # handler): two processes opening a fresh project at once saw "database is locked". WAL persists in
        # the file, so only the first opener switches; the others retry until it has.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                if "readonly" in str(e) or "unable to open" in str(e):  # a read-only project or state file
                    conn.close()
                    raise StoreError(f"{self.state / 'state.db'}: cannot write the project's state ({e}); "
                                     "is the project folder writable?") from None
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = sqlite3.Row
        try:
            ensure(conn)  # every table, at this release's schema version (assay/schema.py)
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.OperationalError) and "readonly" in str(e):
                raise StoreError(f"{self.state / 'state.db'}: cannot write the project's state ({e}); "
                                 "is the project folder writable?") from None
            raise
        return conn

    @contextmanager
    def lock(self, on_wait=None):
        """Hold the project's run lock (one `assay run` at a time per project). A second holder waits, after
        `on_wait(line)` says who holds it; the lock goes with its process, so a killed run leaves none behind."""
        import fcntl

        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "run.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if on_wait:
                    on_wait(f"another assay run holds this project ({holder}); waiting for it to finish")
                fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
