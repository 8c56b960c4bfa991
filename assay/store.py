"""Versioned, immutable datasets: datasets/<name>/<version>/{data.parquet, manifest.json, ...}.

A version is written into a hidden temp folder and renamed into place, so a killed
process leaves either the whole new version or nothing; earlier versions are never touched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from assay.errors import NotFoundError, StoreError

VERSION_RE = re.compile(r"^v(\d+)$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 255  # bytes: what file systems take for one folder name


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: str | None = None  # None means the latest

    @classmethod
    def parse(cls, text: str) -> "DatasetRef":
        name, _, version = text.partition("@")
        return cls(name, version or None)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass
class Version:
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.manifest['name']}@{self.manifest['version']}"

    def data(self) -> pl.DataFrame:
        return _read(self.path / "data.parquet", self.ref)

    def table(self, name: str) -> pl.DataFrame | None:
        """A side table written with the version (rejects, clusters, ...), or None."""
        path = self.path / f"{name}.parquet"
        return _read(path, self.ref) if path.exists() else None


def _read(path: Path, ref: str) -> pl.DataFrame:
    """A version's parquet file; a truncated or edited one is one line naming it, never a traceback later."""
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise StoreError(f"{path}: {ref} cannot be read ({str(exc).splitlines()[0]}); versions are never edited "
                         "in place: restore it, or delete the folder and run the step that made it again") from None


def content_hash(df: pl.DataFrame) -> str:
    """Hash of the rows' content, independent of parquet writer details."""
    digest = hashlib.sha256()
    digest.update(json.dumps([(c, str(t)) for c, t in df.schema.items()]).encode())
    for start in range(0, df.height, 50_000):
        digest.update(df.slice(start, 50_000).write_ndjson().encode())
    return "sha256:" + digest.hexdigest()


class DatasetStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p.name))

    def versions(self, name: str) -> list[Version]:
        self._inside(name)
        return [self._load(self.root / name / v) for v in self._versions(name)]

    def get(self, ref: str | DatasetRef) -> Version:
        ref = DatasetRef.parse(ref) if isinstance(ref, str) else ref
        self._inside(str(ref))
        versions = self._versions(ref.name)
        if not versions:
            raise NotFoundError("dataset", ref.name, self.names())
        version = ref.version or versions[-1]
        if version not in versions:
            raise NotFoundError(f"version of {ref.name}", version, versions)
        return self._load(self.root / ref.name / version)

    def write(self, name: str, data: pl.DataFrame, *, step: str, config: dict[str, Any],
              parents: list[str] | None = None, tables: dict[str, pl.DataFrame] | None = None,
              **fields: Any) -> Version:
        """Write a new version atomically; returns it. `fields` go into the manifest as they are."""
        self.check_writable(name)
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        _sweep_dead_temps(base)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=base))
        try:
            data.write_parquet(tmp / "data.parquet")
            for table_name, table in (tables or {}).items():
                table.write_parquet(tmp / f"{table_name}.parquet")
            manifest = {
                "name": name,
                "version": None,  # filled in once the rename has claimed a number
                "parents": parents or [],
                "step": step,
                "config": config,
                "rows": data.height,
                "content_hash": content_hash(data),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "tables": sorted(tables or {}),
                **fields,
            }
            return self._claim(base, tmp, manifest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def check_writable(self, name: str) -> None:
        """Raise StoreError now, before any work, if a new version of `name` could not be written."""
        if not NAME_RE.match(name):
            raise StoreError(f"dataset name {name!r} must match {NAME_RE.pattern} "
                             "(letters, digits, '_', '.', '-'; starting with a letter or digit)")
        if len(name.encode("utf-8")) > MAX_NAME:
            raise StoreError(f"dataset name {name[:40]}... is {len(name.encode('utf-8'))} bytes; file systems take "
                             f"at most {MAX_NAME} for a folder name")
        folder = self.root / name
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file, not a dataset folder; move it away or pick another --name")
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if VERSION_RE.match(path.name) and not (path / "manifest.json").is_file():
                    raise _incomplete(path)

    def _inside(self, ref: str) -> None:
        """A reference names a dataset folder of this store, never a path: '/data/x' or '../x' would read a
        version from outside the project as if it were one of its own."""
        name = ref.partition("@")[0]
        if not NAME_RE.match(name) or len(name.encode("utf-8")) > MAX_NAME:
            raise StoreError(f"dataset reference {ref!r} is not NAME or NAME@vN of a dataset in {self.root} "
                             "(a name is letters, digits, '_', '.', '-'; no path)")

    def _claim(self, base: Path, tmp: Path, manifest: dict[str, Any]) -> Version:
        # rename() of a folder onto an existing non-empty one fails, so two writers never share a number
        for _ in range(100):
            existing = self._versions(base.name)
            number = int(existing[-1][1:]) + 1 if existing else 1
            manifest["version"] = f"v{number}"
            _write_json(tmp / "manifest.json", manifest)
            _fsync_tree(tmp)
            target = base / manifest["version"]
            try:
                os.rename(tmp, target)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    raise StoreError(f"cannot write {target}: {exc.strerror}") from None
                if not (target / "manifest.json").is_file():  # writers rename whole versions: a leftover
                    raise _incomplete(target) from None
                continue  # another writer took this number a moment ago: take the next
            _fsync_dir(base)
            return Version(target, manifest)
        raise StoreError(f"could not claim a new version number under {base}")

    def _versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if VERSION_RE.match(p.name) and (p / "manifest.json").exists()]
        return sorted(found, key=lambda v: int(v[1:]))

    def _load(self, path: Path) -> Version:
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path / 'manifest.json'}: unreadable manifest ({exc})") from exc
        return Version(path, manifest)


def _incomplete(path: Path) -> StoreError:
    # versions are renamed into place only once whole, so this folder is left over from something else
    return StoreError(f"{path} is not a complete version (no manifest.json); move it out of {path.parent} "
                      "(or delete it) and run again")


def _sweep_dead_temps(base: Path) -> None:
    """Remove temp folders left by writers that were killed (their pid no longer runs)."""
    for path in base.glob(".tmp-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
