"""Files that ship inside the package: suites, gates, training configs, templates and the sample export.

They are named as in the repository (`evals/gates/default.yaml`, `datasets/sample/pipeline.yaml`) and found
through importlib.resources of the subpackage that holds them, so the same name works from a checkout, an
editable install and a wheel installed anywhere.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path, PurePosixPath

# the repository's folders and the packages they install as (pyproject.toml: package-dir)
PACKAGES = {"assay": "assay", "curation": "assay.curation", "training": "assay.training", "evals": "assay.evals",
            "datasets/sample": "assay.sample"}


def folder(name: str) -> Path:
    """The installed folder of a repository folder in PACKAGES ("evals", "datasets/sample")."""
    return Path(str(files(PACKAGES[name])))


def shipped(path: str | Path) -> Path | None:
    """The shipped file a repository-relative name refers to, or None when the name is no shipped file."""
    parts = PurePosixPath(str(path).replace("\\", "/")).parts
    for name in sorted(PACKAGES, key=len, reverse=True):
        head = tuple(name.split("/"))
        if parts[:len(head)] == head and len(parts) > len(head):
            found = folder(name).joinpath(*parts[len(head):])
            return found if exists(found) else None
    return None


def resolve(path: str | Path, here: Path | None = None) -> Path:
    """A file a config names: absolute as is; else relative to `here` (the naming file's folder; default the
    working folder), else the shipped file of that name; else the path as given, for the error to name."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    if exists((here or Path.cwd()) / given):
        return ((here or Path.cwd()) / given).resolve()
    return shipped(given) or given


def exists(path: Path) -> bool:
    """Whether a path names a file or folder; a name the system refuses (too long) names none."""
    try:
        return path.exists()
    except OSError:
        return False
