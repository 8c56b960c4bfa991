"""`assay init` writes a starter pipeline next to an export, and `assay run` reads every config the stages
name before the first stage starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assay.errors import AssayError
from assay.init import STARTER, init


def _export(folder: Path, name: str = "my-notes.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"id": "1", "text": "Met Ana about the roof on Friday."}) + "\n", encoding="utf-8")
    return path


def test_init_names_the_one_export_and_refuses_to_overwrite(tmp_path):
    _export(tmp_path)
    written, source = init(tmp_path)
    assert [p.name for p in written] == list(STARTER) and source == "my-notes.jsonl"
    assert 'source: "my-notes.jsonl"' in (tmp_path / "pipeline.yaml").read_text()
    assert "written by `assay init`" in (tmp_path / "train.yaml").read_text()
    (tmp_path / "synth.yaml").write_text("teachers: [mine]\n")
    with pytest.raises(AssayError, match="already there; nothing written"):
        init(tmp_path)
    assert (tmp_path / "synth.yaml").read_text() == "teachers: [mine]\n"  # untouched
    init(tmp_path, force=True)
    assert "task: summarize" in (tmp_path / "synth.yaml").read_text()


def test_init_asks_which_export_when_it_cannot_tell(tmp_path):
    with pytest.raises(AssayError, match="no export here"):
        init(tmp_path)
    _export(tmp_path, "a.csv")
    _export(tmp_path, "b.json")
    with pytest.raises(AssayError, match=r"several possible exports \(a.csv, b.json\)"):
        init(tmp_path)
    assert not (tmp_path / "pipeline.yaml").exists()
    outside = _export(tmp_path / "elsewhere", 'odd "name": x.jsonl')
    _, source = init(tmp_path / "project", export=outside)
    assert source == str(outside)
    # a quote and a colon in the name stay one YAML string
    import yaml

    assert yaml.safe_load((tmp_path / "project" / "pipeline.yaml").read_text())["curate"]["source"] == str(outside)


def test_a_typo_in_a_later_config_stops_the_run_before_curation(tmp_path, assay):
    _export(tmp_path)
    assay("init", str(tmp_path), home=tmp_path)
    train = tmp_path / "train.yaml"
    train.write_text(train.read_text().replace("  rank: 16", "  rnak: 16"))
    gate = tmp_path / "gate.yaml"
    gate.write_text(gate.read_text().replace("against: base, must", "against: base, mustt"))
    done = assay("run", str(tmp_path / "pipeline.yaml"), home=tmp_path, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    # the pipeline's own overrides (its eval gate) are named with the file
    assert re.search(r"train\.yaml( \+ overrides)?: lora\.rnak: unknown key", done.stderr), done.stderr
    assert "gate.yaml" in done.stderr and "mustt" in done.stderr
    assert not (tmp_path / "datasets").exists()  # nothing ran
