"""A stage's code version covers the source it runs: an edit reruns the stages whose code it touches.

The stages' modules are read from a copy of the package folders (codeversion.folder pointed at it), so the
edits below never touch the checkout."""

from __future__ import annotations

import shutil

import pytest

from assay import codeversion, stages
from assay.shipped import PACKAGES, folder


@pytest.fixture
def versions(tmp_path, monkeypatch):
    copies = {}
    for name in PACKAGES:
        copies[name] = tmp_path / name.replace("/", "_")
        shutil.copytree(folder(name), copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codeversion, "folder", lambda name: copies[name])

    def now() -> dict[str, str]:
        codeversion._module_imports.cache_clear()
        stages.code_of.cache_clear()
        return {name: stages.code_of(name) for name in stages.ORDER}

    yield now, copies
    codeversion._module_imports.cache_clear()
    stages.code_of.cache_clear()


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def _edit(path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_a_report_template_edit_reruns_only_the_report(versions):
    now, copies = versions
    before = now()
    _edit(copies["evals"] / "templates" / "report.css")
    assert _changed(before, now()) == {"report"}


def test_a_training_edit_keeps_curation_and_synthesis(versions):
    now, copies = versions
    before = now()
    _edit(copies["training"] / "sft.py")
    changed = _changed(before, now())
    assert "train" in changed and not changed & {"curate", "synth", "report"}


def test_a_metrics_edit_reruns_what_scores_with_it(versions):
    now, copies = versions
    before = now()
    _edit(copies["evals"] / "metrics.py")
    assert {"eval", "train"} <= _changed(before, now())  # training picks its checkpoint by ROUGE-L


def test_a_judge_edit_reruns_only_the_eval(versions):
    now, copies = versions
    before = now()
    _edit(copies["evals"] / "judge.py")
    assert _changed(before, now()) == {"eval"}


def test_a_curation_step_edit_reruns_curation(versions):
    now, copies = versions
    before = now()
    _edit(copies["curation"] / "dedupe.py")
    changed = _changed(before, now())
    assert "curate" in changed and "report" not in changed
