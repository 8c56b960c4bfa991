"""The model registry: models/<name>/<version>/ folders and a SQLite table that never loses a row.

Versions are semantic: a new base model or architecture bumps the major, a new dataset the minor,
anything else (hyper-parameters, a rerun) the patch. A version folder is assembled in a temp folder
and renamed into place inside the same SQLite write transaction that records it, so a killed run
leaves either a registered version or nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from assay.errors import NotFoundError, StoreError
from assay.project import Project

SEMVER_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")



@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path
    parent: str | None
    recipe: str
    base_model: str
    architecture: str
    dataset: str
    dataset_hash: str
    teachers: list[str]
    metrics: dict[str, Any]
    wall_time_s: float
    device: str
    cost_usd: float
    created_at: str
    verdict: str | None = None  # the latest `assay eval` decision (all of them: evals.lineage.verdicts)
    report: str | None = None  # that eval's index.html

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _connect(project: Project) -> sqlite3.Connection:
    return project.db()  # its tables are assay/schema.py's


def _key(version: str) -> tuple[int, int, int]:
    match = SEMVER_RE.match(version)
    if not match:
        raise StoreError(f"model version {version!r} is not semantic (vMAJOR.MINOR.PATCH)")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def _row(row: sqlite3.Row) -> ModelVersion:
    return ModelVersion(
        name=row["name"], version=row["version"], path=Path(row["path"]), parent=row["parent"],
        recipe=row["recipe"], base_model=row["base_model"], architecture=row["architecture"],
        dataset=row["dataset"], dataset_hash=row["dataset_hash"], teachers=json.loads(row["teachers"]),
        metrics=json.loads(row["metrics"]), wall_time_s=row["wall_time_s"], device=row["device"],
        cost_usd=row["cost_usd"], created_at=row["created_at"], verdict=row["verdict"], report=row["report"])


def versions(project: Project, name: str) -> list[ModelVersion]:
    with _connect(project) as conn:
        rows = conn.execute("SELECT * FROM model_registry WHERE name = ?", (name,)).fetchall()
    return sorted((_row(r) for r in rows), key=lambda m: _key(m.version))


def get(project: Project, ref: str) -> ModelVersion:
    """`name` (latest) or `name@vX.Y.Z`."""
    name, _, version = ref.partition("@")
    found = versions(project, name)
    if not found:
        raise NotFoundError("model", name, sorted({m["name"] for m in list_models(project)}))
    if not version:
        return found[-1]
    for model in found:
        if model.version == version:
            return model
    raise NotFoundError(f"version of model {name}", version, [m.version for m in found])


def list_models(project: Project | None = None) -> list[dict[str, Any]]:
    """One dict per registered version, newest first, for `assay models list`."""
    project = project or Project.current()
    with _connect(project) as conn:
        rows = conn.execute("SELECT * FROM model_registry ORDER BY created_at DESC, name").fetchall()
    return [{
        "name": r["name"], "version": r["version"], "parent": r["parent"], "recipe": r["recipe"],
        "base_model": r["base_model"], "dataset": r["dataset"], "teachers": json.loads(r["teachers"]),
        "metrics": json.loads(r["metrics"]), "wall_time_s": r["wall_time_s"], "device": r["device"],
        "cost_usd": r["cost_usd"], "created_at": r["created_at"], "path": r["path"],
        "verdict": r["verdict"], "report": r["report"],
    } for r in rows]


def set_verdict(project: Project, ref: str, decision: str, report: Path) -> None:
    """The latest eval's decision and report path on the version's registry row."""
    name, _, version = ref.partition("@")
    with _connect(project) as conn:
        conn.execute("UPDATE model_registry SET verdict = ?, report = ? WHERE name = ? AND version = ?",
                     (decision, str(report), name, version))


def next_version(parent: ModelVersion | None, *, base_model: str, architecture: str,
                 dataset: str, dataset_hash: str) -> str:
    if parent is None:
        return "v1.0.0"
    major, minor, patch = _key(parent.version)
    if base_model != parent.base_model or architecture != parent.architecture:
        return f"v{major + 1}.0.0"
    if dataset != parent.dataset or dataset_hash != parent.dataset_hash:
        return f"v{major}.{minor + 1}.0"
    return f"v{major}.{minor}.{patch + 1}"


def register(project: Project, name: str, fill: Callable[[Path, str, str | None], None], *, recipe: str,
             base_model: str, architecture: str, dataset: str, dataset_hash: str, teachers: list[str],
             metrics: dict[str, Any], config: dict[str, Any], wall_time_s: float, device: str,
             cost_usd: float) -> ModelVersion:
    """Write a new version: `fill(folder, version, parent)` writes the files, then rename + insert, atomically."""
    base = project.models / name
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    conn = _connect(project)
    try:
        # BEGIN IMMEDIATE holds the write lock while the version number is chosen and claimed
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute("SELECT * FROM model_registry WHERE name = ?", (name,)).fetchall()
        existing = sorted((_row(r) for r in rows), key=lambda m: _key(m.version))
        parent = existing[-1] if existing else None
        version = next_version(parent, base_model=base_model, architecture=architecture,
                               dataset=dataset, dataset_hash=dataset_hash)
        fill(tmp, version, parent.ref if parent else None)
        target = base / version
        if target.exists():  # a folder the table does not know: a crash between rename and commit
            raise StoreError(f"{target} exists but is not registered; move it away and rerun")
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        conn.execute(
            "INSERT INTO model_registry (name, version, parent, recipe, base_model, architecture, dataset, "
            "dataset_hash, teachers, path, metrics, config, wall_time_s, device, cost_usd, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, version, parent.ref if parent else None, recipe, base_model, architecture, dataset,
             dataset_hash, json.dumps(teachers), str(target), json.dumps(metrics), json.dumps(config, default=str),
             wall_time_s, device, cost_usd, created))
        os.rename(tmp, target)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return get(project, f"{name}@{version}")
