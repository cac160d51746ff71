"""Loading and validating pipeline configurations against a JSON schema, with errors naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

__all__ = [
    "load_yaml",
    "validate_config",
    "load_config",
    "key_path",
    "resolve_experiment",
    "network_names",
    "table3_names",
]


def load_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` a file; a syntax error becomes a :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        with path.open() as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def key_path(parts) -> str:
    """``['experiments', 'a', 'recipe', 'lr']`` -> ``experiments.a.recipe.lr``; list indices in brackets."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def validate_config(
    config: Mapping[str, Any], schema: Mapping[str, Any] | str | Path, source: str = "config"
) -> None:
    """Validate ``config`` against ``schema`` (a mapping or a YAML file); raise one ConfigError listing every
    problem, each prefixed with the dotted key it concerns."""
    if not isinstance(schema, Mapping):
        schema = load_yaml(schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = key_path(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            allowed = sorted(error.schema.get("properties", {}))
            problems.append(f"{where}: unknown key(s) {extra}; allowed: {allowed}")
        else:
            problems.append(f"{where}: {error.message}")
    if not problems:
        problems = _dangling_references(config)
    if problems:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems))


def _dangling_references(config: Mapping[str, Any]) -> list[str]:
    """Experiments of the pipeline config whose ``dataset`` is not declared under ``datasets``, or whose
    ``init_from`` names no other experiment; baselines whose ``of`` names no experiment or whose name is an
    experiment's."""
    datasets = config.get("datasets") if isinstance(config, Mapping) else None
    experiments = config.get("experiments") if isinstance(config, Mapping) else None
    if not isinstance(datasets, Mapping) or not isinstance(experiments, Mapping):
        return []
    problems = []
    for name, exp in experiments.items():
        if not isinstance(exp, Mapping):
            continue
        if "dataset" in exp and exp["dataset"] not in datasets:
            problems.append(
                f"experiments.{name}.dataset: {exp['dataset']!r} is not declared under datasets "
                f"(declared: {sorted(datasets)})"
            )
        source = exp.get("init_from")
        if source is not None and (source == name or source not in experiments):
            problems.append(
                f"experiments.{name}.init_from: {source!r} is not another experiment of this config "
                f"(experiments: {sorted(experiments)})"
            )
    for name, baseline in (config.get("baselines") or {}).items():
        if not isinstance(baseline, Mapping):
            continue
        if name in experiments:
            problems.append(f"baselines.{name}: the name is already an experiment's; choose another")
        if baseline.get("of") not in experiments:
            problems.append(
                f"baselines.{name}.of: {baseline.get('of')!r} is not an experiment of this config "
                f"(experiments: {sorted(experiments)})"
            )
    return problems


def load_config(path: str | Path, schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Load a YAML config and validate it."""
    config = load_yaml(path)
    validate_config(config, schema, source=str(path))
    return config


def resolve_experiment(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config entry of experiment ``name``, or the experiment-like entry of baseline ``name``: the
    experiment it is compared with (``of``), with the baseline's model, the experiment's structural model
    keywords (neuron keywords dropped) and recipe, each updated by the baseline's own, and ``baseline_of``."""
    if name in config["experiments"]:
        return dict(config["experiments"][name])
    baselines = config.get("baselines") or {}
    if name not in baselines:
        raise KeyError(f"{name!r} is neither an experiment nor a baseline of config {config.get('name')!r}")
    from .models.baselines import structural_kwargs

    spec = baselines[name]
    base = config["experiments"][spec["of"]]
    return {
        "dataset": base["dataset"],
        "model": spec["model"],
        "model_kwargs": {**structural_kwargs(base.get("model_kwargs", {})), **spec.get("model_kwargs", {})},
        "recipe": {**base["recipe"], **spec.get("recipe", {})},
        "baseline_of": spec["of"],
    }


def network_names(config: Mapping[str, Any]) -> list[str]:
    """Every network the pipeline trains: the experiments, then Table 3's baselines (each sorted)."""
    return sorted(config["experiments"]) + sorted(config.get("baselines") or {})


def table3_names(config: Mapping[str, Any]) -> list[str]:
    """Table 3's rows: each experiment that has baselines, followed by its baselines."""
    baselines = config.get("baselines") or {}
    names = []
    for name in sorted(config["experiments"]):
        own = sorted(b for b, spec in baselines.items() if spec["of"] == name)
        if own:
            names += [name, *own]
    return names
