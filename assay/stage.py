"""The one stage contract: `stage(inputs, cfg, ctx) -> Outcome`, recorded by `publish()` as a typed manifest.

A stage's fingerprint hashes its name, its inputs' content hashes, its resolved config and the code
version. `find()` returns the manifest of an earlier run with the same fingerprint whose output still
exists, so an unchanged stage is reused instead of run again (and says so); `publish()` records a run.
Manifests live in the project's SQLite state (table `stage_runs`); dataset versions also carry the
fingerprint in their own manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from assay.project import Project
from assay.redact import mask_urls_in


def digest(obj: Any) -> str:
    """sha256 of a JSON-able value with sorted keys (configs, input lists)."""
    return "sha256:" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_hash(path: str | Path) -> str:
    """Content hash of a file, or of a folder's files (relative paths and bytes, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


class Input(BaseModel):
    ref: str  # dataset:notes@v3, model:notes-student@v1.0.0, file:datasets/sample/notes.json, ...
    hash: str


class Seal(BaseModel):
    """An output's content when its stage published it: a cheap stamp (each file's size and mtime) and a hash.
    Reuse compares the stamp, and on a mismatch the hash: a truncated or edited output is never reused."""

    hash: str
    stamp: list[tuple[str, int, int]]


class Manifest(BaseModel):
    """What one stage run read, how it was configured, what it wrote, and what it cost."""

    stage: str
    fingerprint: str
    inputs: list[Input]
    config_hash: str
    code_version: str
    output: str | None = None  # dataset:NAME@vN, model:NAME@vX.Y.Z, results:FOLDER, report:FOLDER, argilla:NAME
    rows_in: int | None = None
    rows_out: int | None = None
    spend_usd: float = 0.0
    verdict: str | None = None
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)
    created_at: str = ""
    output_seal: Seal | None = None  # the output's content as written: a reuse checks it is still that


# files a later stage adds to an output without changing what it is: the model card (eval verdicts), the
# exports folder (export stage) and on-device figures (eval); a report's page (report stage re-renders it)
_NOT_SEALED = ("README.md", "exports", "ondevice.json", "index.html")


def _output_root(project: Project, ref: str) -> Path | None:
    """Where an output reference lives on disk (None: not a file output, e.g. argilla:NAME); NotFoundError
    when its dataset version or model version is no longer registered."""
    kind, rest = split_ref(ref)
    if kind == "dataset":
        from assay.store import DatasetStore

        return DatasetStore(project.datasets).get(rest).path
    if kind == "model":
        from assay import registry

        return registry.get(project, rest).path
    return Path(rest) if kind in ("report", "results", "export") else None


def _sealed_files(project: Project, ref: str | None) -> tuple[Path, list[Path]] | None:
    """(root, files) of an output reference whose content a seal covers; None when it has no files here."""
    root = None if ref is None else _output_root(project, ref)
    if root is None:
        return None
    if split_ref(ref)[0] in ("report", "results"):
        return root, [root / "results.json"]
    if root.is_file():
        return root.parent, [root]
    files = [f for f in sorted(root.rglob("*")) if f.is_file()
             and not any(part in _NOT_SEALED or part.startswith(".") for part in f.relative_to(root).parts)]
    return root, files


def _stamp(root: Path, files: list[Path]) -> list[tuple[str, int, int]]:
    found = []
    for f in files:
        st = f.stat()
        found.append((str(f.relative_to(root)), st.st_size, st.st_mtime_ns))
    return found


def _hash(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0")
        if f.name == "results.json":  # people's answers (`assay review pull-eval`) join a run's results later
            h.update(_results_without_human(f))
        else:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def _results_without_human(path: Path) -> bytes:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return path.read_bytes()  # unreadable JSON: its bytes, which no seal of a good file matches
    if isinstance(results, dict):
        results.pop("human", None)
    return json.dumps(results, sort_keys=True).encode()


def seal(project: Project, ref: str | None) -> Seal | None:
    found = _sealed_files(project, ref)
    if found is None:
        return None
    return Seal(hash=_hash(*found), stamp=_stamp(*found))


def changed_since_published(project: Project, manifest: Manifest) -> str | None:
    """Why a recorded output no longer is what its stage wrote (None: it still is, or it has no seal)."""
    if manifest.output_seal is None:
        return None
    try:
        found = _sealed_files(project, manifest.output)
        if found is None:
            return None
        if [list(s) for s in _stamp(*found)] == [list(s) for s in manifest.output_seal.stamp]:
            return None
        if _hash(*found) == manifest.output_seal.hash:
            return None
    except OSError as exc:
        return f"its output {manifest.output} cannot be read ({exc.strerror})"
    return f"its output {manifest.output} changed since it was written (content hash differs)"


def fingerprint(stage: str, inputs: list[Input], config: Any, code: str) -> tuple[str, str]:
    """(fingerprint, config hash) of a stage run; `code` is the stage's own code version (stages.code_of)."""
    config_hash = digest(config)
    return digest([stage, [(i.ref, i.hash) for i in inputs], config_hash, code]), config_hash


@dataclass
class Outcome:
    """What a stage function returns: its output reference and the figures for the summary."""

    output: str | None
    rows_in: int | None = None
    rows_out: int | None = None
    spend_usd: float = 0.0
    verdict: str | None = None
    notes: list[str] = field(default_factory=list)


def no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda advance=1: None


@dataclass
class Context:
    """What every stage gets besides its inputs and config: the project, progress bars and the run log."""

    project: Project
    track: Callable[[str, int | None], Callable[..., None]] = no_progress
    log: Callable[[str], None] = lambda line: None
    fingerprint: str | None = None  # of the stage being run; outputs record it


def _connect(project: Project):
    return project.db()  # its tables are assay/schema.py's


def find(ctx: Context, fp: str) -> tuple[Manifest | None, str | None]:
    """(the recorded run with this fingerprint when its output still exists as written, else why not)."""
    with _connect(ctx.project) as conn:
        row = conn.execute("SELECT manifest FROM stage_runs WHERE fingerprint = ?", (fp,)).fetchone()
    if row is None:
        return None, None
    manifest = Manifest.model_validate_json(row["manifest"])
    if not output_exists(ctx.project, manifest.output):
        return None, "the earlier output is gone"
    problem = changed_since_published(ctx.project, manifest)
    return (None, problem) if problem else (manifest, None)


def publish(ctx: Context, manifest: Manifest) -> Manifest:
    """Record a finished stage run (the latest run of a fingerprint wins), URLs in its notes masked."""
    manifest.created_at = manifest.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest.output_seal = manifest.output_seal or seal(ctx.project, manifest.output)
    manifest = Manifest.model_validate(mask_urls_in(manifest.model_dump(mode="json")))
    with _connect(ctx.project) as conn:
        conn.execute("INSERT OR REPLACE INTO stage_runs VALUES (?, ?, ?, ?, ?)",
                     (manifest.fingerprint, manifest.stage, manifest.output, manifest.model_dump_json(),
                      manifest.created_at))
    return manifest


def history(project: Project, stage: str | None = None) -> list[Manifest]:
    """Recorded stage runs, oldest first."""
    with _connect(project) as conn:
        rows = conn.execute("SELECT manifest FROM stage_runs" + (" WHERE stage = ?" if stage else "")
                            + " ORDER BY created_at, rowid", (stage,) if stage else ()).fetchall()
    return [Manifest.model_validate_json(r["manifest"]) for r in rows]


def split_ref(ref: str) -> tuple[str, str]:
    kind, _, rest = ref.partition(":")
    return kind, rest


def output_exists(project: Project, ref: str | None) -> bool:
    """Whether a recorded output is still there (a deleted version or report is made again); argilla:NAME is
    checked by the stage that reads it."""
    from assay.errors import NotFoundError

    try:
        root = None if ref is None else _output_root(project, ref)
    except NotFoundError:
        return False
    if root is None:
        return True
    if split_ref(ref)[0] == "results":  # an eval run
        return (root / "results.json").is_file()
    if split_ref(ref)[0] == "report":  # its page
        return (root / "results.json").is_file() and (root / "index.html").is_file()
    return root.is_dir() if split_ref(ref)[0] == "model" else root.exists()
