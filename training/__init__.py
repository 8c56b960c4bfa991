"""Training recipes: LoRA SFT (sft.py) and distillation (distill.py), configs under training/configs/.

`run(config_path, overrides, resume)` is what `assay train` calls: it validates everything first
(config fields, cross-field rules, this machine, the dataset), then hands the config to its recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from assay.config import load_config
from assay.errors import ConfigError, NotFoundError
from assay.project import Project
from assay.registry import ModelVersion, list_models
from assay.training.config import RECIPES, DistillRunConfig, SFTRunConfig

__all__ = ["load", "run", "list_models", "ModelVersion", "SFTRunConfig", "DistillRunConfig"]


def load(config_path: str | Path | None, overrides: list[str] | None = None, *,
         project: Project | None = None) -> SFTRunConfig | DistillRunConfig:
    """The typed config of a training YAML, or ConfigError listing every problem (nothing is loaded yet)."""
    from assay.store import DatasetStore

    overrides = list(overrides or [])
    source = str(config_path) if config_path else "defaults"
    cfg, problems = checked(config_path, overrides)
    try:
        DatasetStore((project or Project.current()).datasets).get(cfg.data.dataset)
    except NotFoundError as exc:
        problems.append(f"data.dataset: {exc}")
    if problems:
        raise ConfigError(source + (" + overrides" if overrides else ""), problems)
    return cfg


def checked(config_path: str | Path | None, overrides: list[str]) -> tuple[SFTRunConfig | DistillRunConfig, list[str]]:
    """The typed config and its problems that do not depend on the data (ConfigError when it does not parse):
    what `assay run` checks for every stage before the first one starts."""
    from assay.training.common import environment_problems

    recipe = _recipe_name(config_path, overrides)
    if recipe not in RECIPES:
        raise ConfigError(str(config_path) if config_path else "defaults",
                          [f"recipe: unknown recipe {recipe!r}; known: {', '.join(sorted(RECIPES))}"])
    cfg = load_config(RECIPES[recipe], config_path, overrides)
    problems = cfg.problems() + environment_problems(cfg.model)
    problems += _model_problems("model.base", cfg.model.base)
    if isinstance(cfg, DistillRunConfig) and cfg.teacher.model:
        problems += _model_problems("teacher.model", cfg.teacher.model)
    if cfg.eval.gate:
        from assay.training.gatecheck import load as load_gate

        try:
            load_gate(cfg.eval.gate)
        except ConfigError as exc:
            problems += [f"eval.gate: {exc}"]
    return cfg, problems


def run(config_path: str | Path | None, overrides: list[str] | None = None, resume: bool = False, *,
        project: Project | None = None) -> ModelVersion:
    """Validate, train, register; returns the new model version (name, version, path, metrics, ...)."""
    cfg = load(config_path, overrides, project=project)
    if isinstance(cfg, DistillRunConfig):
        from assay.training.distill import train as distill

        return distill(cfg, project=project, resume=resume)
    from assay.training.sft import train as sft

    return sft(cfg, project=project, resume=resume)


def _recipe_name(config_path: str | Path | None, overrides: list[str]) -> Any:
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "recipe":
            return value.strip()
    if config_path:
        try:
            data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return "sft"  # load_config reports the unreadable file with its reason
        if isinstance(data, dict) and "recipe" in data:
            return data["recipe"]
    return "sft"


def _model_problems(field: str, name: str) -> list[str]:
    """A base that is neither in the catalogue, nor a local folder, nor cached from the Hub, and no Hub to ask."""
    from assay import models

    if name in models.CATALOGUE or Path(name).expanduser().is_dir():
        return []
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return []
    unreachable = models.hub_unreachable()
    if not unreachable:
        return []  # it may download; load time reports a failure with its reason
    causal = [n for n, e in models.CATALOGUE.items() if e.kind == "causal-lm"]
    return [f"{field}: {name!r} is not in the catalogue, not a local folder and not cached, and the Hub cannot "
            f"be reached ({unreachable}); catalogue models that work offline: {', '.join(causal)}"]
