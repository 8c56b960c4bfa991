"""A stage's code version: the source it runs, not the whole tree's.

A stage's functions (its configure, run and check, and the helpers of assay/stages.py they call) name the
modules they import; every assay module reached is followed through all of its own imports, at top level or
inside a function, with the package `__init__` files on the way and the folders of files the module reads
(DATA). So an edit changes the version of exactly the stages that run the edited code: a report template
edit reruns only `report`, a metrics change reruns what scores with it, and an upgrade that leaves the
training code alone keeps the trained model.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from assay.shipped import PACKAGES, folder

# the folders of files a module reads at run time (templates it renders, word lists it draws from)
DATA = {"assay.evals.report": ("templates",), "assay.curation.synth.tasks": ("templates",),
        "assay.curation.synth.names": ("data",)}
DATA_SUFFIXES = (".j2", ".html", ".js", ".css", ".txt")


def module_file(name: str) -> Path | None:
    """The source file of an assay module (its __init__.py for a package), or None when there is none."""
    if name != "assay" and not name.startswith("assay."):
        return None
    packages = {pkg: repo for repo, pkg in PACKAGES.items()}
    owner = max((p for p in packages if name == p or name.startswith(p + ".")), key=len)
    base = folder(packages[owner]).joinpath(*name[len(owner):].lstrip(".").split(".")) if name != owner \
        else folder(packages[owner])
    for found in (base / "__init__.py", base.with_suffix(".py")):
        if found.is_file():
            return found
    return None


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                base = ".".join(anchor[:len(anchor) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, when it is one
    return {name for name in found if module_file(name) is not None}


@lru_cache(maxsize=None)
def _module_imports(name: str) -> frozenset[str]:
    path = module_file(name)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(_imports(tree, name, path.name == "__init__.py"))


def closure(roots: Iterable[str]) -> set[str]:
    """Every assay module the roots reach, with their parent packages."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        todo += _module_imports(name)
    return seen


def _function_sources(functions: Iterable[Callable]) -> tuple[list[str], set[str]]:
    """The source of each function and of the module-level helpers it calls (same module), and the modules
    they import plus the top-level imports of their modules."""
    sources, modules, seen = [], set(), set()
    todo = list(functions)
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        text = textwrap.dedent(inspect.getsource(fn))
        sources.append(f"{fn.__module__}.{fn.__qualname__}\n{text}")
        tree = ast.parse(text)
        modules |= _imports(tree, fn.__module__, False)
        top = ast.parse(inspect.getsource(inspect.getmodule(fn)))
        modules |= _imports(ast.Module(body=[n for n in top.body if isinstance(n, (ast.Import, ast.ImportFrom))],
                                       type_ignores=[]), fn.__module__, False)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                helper = fn.__globals__.get(node.id)
                if inspect.isfunction(helper) and helper.__module__ == fn.__module__:
                    todo.append(helper)
    return sorted(sources), modules


def version_of(functions: Iterable[Callable], release: str) -> str:
    """`release+src.<digest>` of the functions' own source and everything they reach."""
    sources, roots = _function_sources(functions)
    h = hashlib.sha256()
    for text in sources:
        h.update(text.encode() + b"\0")
    for name in sorted(closure(roots)):
        path = module_file(name)
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        for sub in DATA.get(name, ()):
            for data in sorted((path.parent / sub).rglob("*")):
                if data.suffix in DATA_SUFFIXES:
                    h.update(f"{name}/{sub}/{data.relative_to(path.parent / sub).as_posix()}".encode() + b"\0"
                             + data.read_bytes() + b"\0")
    return f"{release}+src.{h.hexdigest()[:12]}"
