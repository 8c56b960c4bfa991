import pytest

from assay.config import load_config
from assay.curation.config import CurateConfig
from assay.errors import ConfigError


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# assay curate EXPORT --config c.yaml\ndedupe:\n  near:\n    threshold: 0.7\n"
                    "balance:\n  max_per_cell: 50\n")
    cfg = load_config(CurateConfig, path, ["dedupe.near.ngram=4", "balance.dimensions=[category, month]"])
    assert cfg.dedupe.near.threshold == 0.7 and cfg.dedupe.near.ngram == 4
    assert cfg.balance.max_per_cell == 50 and cfg.balance.dimensions == ["category", "month"]


def test_every_problem_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("clean:\n  min_chars: -1\n  colour: red\nsplit:\n  train: 0.9\n")
    with pytest.raises(ConfigError) as err:
        load_config(CurateConfig, path, ["dedupe.near.threshold=2", "nonsense"])
    message = str(err.value)
    for needle in ("bad.yaml", "clean.min_chars", "clean.colour: unknown key", "must be 1.0",
                   "dedupe.near.threshold", "'nonsense' is not key=value"):
        assert needle in message
    assert len(err.value.problems) == 5


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("dedupe: [unclosed\n")
    with pytest.raises(ConfigError, match="(?s)broken.yaml.*invalid YAML"):
        load_config(CurateConfig, path)
