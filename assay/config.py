"""Typed configs: pydantic models loaded from YAML, overridden with key=value, all problems at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from assay.errors import ConfigError, beyond_python, short
from assay.redact import mask_urls, mask_urls_in

T = TypeVar("T", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def load_config(model: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Read YAML (optional), apply dotted key=value overrides, validate; raise ConfigError with every problem."""
    source = str(path) if path else "defaults"
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = safe_yaml(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"invalid YAML: {_yaml_problem(exc)}"]) from None
        except (RecursionError, ValueError) as exc:
            raise ConfigError(source, [f"invalid YAML: {beyond_python(exc)}"]) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(source, [f"top level must be a mapping, got {type(loaded).__name__}"])
        data = loaded or {}
    problems: list[str] = []
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            problems.append(f"override {item!r} is not key=value")
            continue
        try:
            value = safe_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problems.append(f"override {item!r}: invalid YAML value: {_yaml_problem(exc)}")
            continue
        except (RecursionError, ValueError) as exc:
            problems.append(f"override {item!r}: invalid YAML value: {beyond_python(exc)}")
            continue
        _set_dotted(data, key.strip(), value)
    if overrides:
        source += " + overrides"
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(err) for err in exc.errors()]
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return config


MAX_YAML_DEPTH = 100  # levels of nesting; configs and front matter use a handful
MAX_YAML_NODES = 100_000  # values once every alias is expanded; a pipeline with shared anchors has hundreds


class YAMLRefused(yaml.YAMLError):
    """YAML that parses but is refused before anything is built from it."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def safe_yaml(text: str, *, aliases: bool = True) -> Any:
    """yaml.safe_load, after a pass over the events that refuses deep nesting (building recurses once per
    level: thousands crash the loader, and the pure-Python scanner takes seconds over them) and aliases
    (*name), or, where they are allowed, aliases that expand past MAX_YAML_NODES values: a few lines of
    anchors of anchors spell gigabytes, which the loader shares but validation, an error message or a
    written manifest walks in full."""
    depth = expanded = 0
    sizes: dict[str, int] = {}  # anchor -> values in its node, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, `expanded` when the node began)
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if not aliases:
                raise YAMLRefused("YAML aliases (*name) are not allowed")
            expanded += sizes.get(event.anchor, 1)  # an unknown anchor is the composer's error to report
        elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            expanded += 1
            if isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                open_nodes.append((event.anchor, expanded - 1))
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise YAMLRefused(f"nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, began = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = expanded - began
            depth -= 1
        if expanded > MAX_YAML_NODES:
            raise YAMLRefused(f"more than {MAX_YAML_NODES:,} values once its aliases (*name) are expanded")
    return yaml.safe_load(text)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (its own str spans several lines)."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(problem.split()) + where


def _describe(err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    # a teacher spec may carry user:password@ or ?api_key=: quote it masked, and mask before cutting it short
    message = mask_urls(" ".join(str(err["msg"]).split()))
    return f"{where}: {message} (got {short(mask_urls_in(err.get('input')))})"
