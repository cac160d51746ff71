"""Loading and validating pipeline configurations against a JSON schema, with errors naming the key."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
"""The repository's config schema (``workflow/schemas/config.schema.yaml``)."""

__all__ = [
    "load_yaml",
    "validate_config",
    "validate_section",
    "SCHEMA",
    "load_config",
    "model_problems",
    "check_machine",
    "check_interpreter",
    "key_path",
    "resolve_experiment",
    "network_names",
    "variant_names",
    "apply_variant",
    "VARIANT_SEPARATOR",
    "table3_names",
    "smoke_form",
]


def load_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` a file; a syntax error becomes a :class:`ConfigError` naming the file, the line and
    the column (``config/paper.yaml, line 12, column 3: not valid YAML: ...``)."""
    path = Path(path)
    try:
        with path.open() as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.MarkedYAMLError as err:
        raise ConfigError(f"{path}{_yaml_error(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def _yaml_error(err: yaml.MarkedYAMLError) -> str:
    """``, line 3, column 7: not valid YAML: <problem> (<context> at line 2, column 1)``; lines and columns
    counted from 1."""
    mark = err.problem_mark or err.context_mark
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = err.problem or err.context or "syntax error"
    context = ""
    if err.context and err.problem:
        context = f" ({err.context}"
        if err.context_mark and err.context_mark is not mark:
            context += f" at line {err.context_mark.line + 1}, column {err.context_mark.column + 1}"
        context += ")"
    return f"{where}: not valid YAML: {problem}{context}"


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
    problem, each prefixed with the dotted key it concerns. A config the schema accepts is then checked for
    names that refer to nothing (datasets, experiments) and for models that cannot be built from it
    (:func:`model_problems`)."""
    if not isinstance(schema, Mapping):
        schema = load_yaml(schema)
    problems = _schema_problems(schema, config)
    if not problems:
        problems = _dangling_references(config) + _variant_recipe_problems(config, schema)
    if not problems:
        # what the schema cannot say (a range's min above its max)
        from ..data.augment import augment_problems

        problems = model_problems(config) + augment_problems(config)
    if problems:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems))


def _schema_problems(schema: Mapping[str, Any], instance: Any, prefix: tuple = ()) -> list[str]:
    """What ``schema`` finds wrong with ``instance``, each problem prefixed with its dotted key (``prefix``
    first: the key ``instance`` sits at in the whole config)."""
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        where = key_path([*prefix, *error.absolute_path])
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            allowed = sorted(error.schema.get("properties", {}))
            problems.append(f"{where}: unknown key(s) {extra}; allowed: {allowed}")
        else:
            problems.append(f"{where}: {error.message}")
    return problems


def validate_section(
    section: Any, definition: str, where: str, schema: Mapping[str, Any] | None = None
) -> None:
    """Validate one section of a config (``section``, found at the dotted key ``where``) against the schema's
    ``$defs/<definition>`` (``schema``: the repository's :data:`SCHEMA` unless given); raise one ConfigError
    listing every problem with its dotted key. For the code that takes a section alone (a script's
    ``params:``, a test): the whole config is validated by :func:`validate_config`."""
    schema = load_yaml(SCHEMA) if schema is None else schema
    defs = schema.get("$defs") or {}
    if definition not in defs:
        raise KeyError(f"the config schema defines no {definition!r} (it defines: {sorted(defs)})")
    problems = _schema_problems({**defs[definition], "$defs": defs}, section, tuple(where.split(".")))
    if problems:
        raise ConfigError(f"{where}: invalid configuration:\n  " + "\n  ".join(problems))


def _variant_recipe_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Each experiment variant's recipe, the experiment's updated by the variant's, checked against the
    schema's recipe (a variant names only the keys it changes, so the schema cannot check it alone)."""
    recipe_schema = (schema.get("$defs") or {}).get("recipe")
    if recipe_schema is None:
        return []
    validator = jsonschema.Draft202012Validator({**recipe_schema, "$defs": schema["$defs"]})
    problems = []
    for name, exp in config["experiments"].items():
        for variant, spec in (exp.get("variants") or {}).items():
            if "recipe" not in spec:
                continue
            merged = apply_variant(exp, spec)["recipe"]
            for error in validator.iter_errors(merged):
                key = key_path([f"experiments.{name}.variants.{variant}.recipe", *error.absolute_path])
                problems.append(f"{key}: {error.message}")
        # an experiment's (and its variants') loader keywords: those its dataset's loader takes
        dataset_schema = (schema.get("$defs") or {}).get(str(exp.get("dataset")), {})
        takes = set(((dataset_schema.get("properties") or {}).get("loader") or {}).get("properties") or {})
        given = [(f"experiments.{name}.loader", exp.get("loader") or {})] + [
            (f"experiments.{name}.variants.{v}.loader", spec.get("loader") or {})
            for v, spec in (exp.get("variants") or {}).items()
        ]
        for where, loader in given:
            for key in sorted(set(loader) - takes):
                problems.append(
                    f"{where}.{key}: dataset {exp.get('dataset')!r} takes no loader keyword {key!r}"
                    f" (it takes: {sorted(takes) or 'none'})"
                )
    return problems


def _dangling_references(config: Mapping[str, Any]) -> list[str]:
    """Experiments of the pipeline config whose ``dataset`` is not declared under ``datasets``, or whose
    ``init_from`` names no other experiment; a bench whose DVS128 experiment is not one of this config on
    ``dvs128_gesture``; baselines whose ``of`` names no experiment or whose name is an experiment's."""
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
    name = _bench_experiment(config)
    if name is not None:
        if name not in experiments:
            problems.append(f"bench.dvs128.experiment: {name!r} is not an experiment of this config")
        elif experiments[name].get("dataset") != "dvs128_gesture":
            problems.append(
                f"bench.dvs128.experiment: {name!r} trains on {experiments[name].get('dataset')}, "
                "not dvs128_gesture"
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


def _bench_experiment(config: Mapping[str, Any]) -> str | None:
    """The experiment the bench's DVS128 part times (``bench.dvs128.experiment`` or its default); ``None``
    where the config has no bench."""
    if config.get("bench") is None:
        return None
    from .bench import BenchSettings

    return (config["bench"].get("dvs128") or {}).get("experiment", BenchSettings.dvs128_experiment)


def _model_uses(config: Mapping[str, Any]):
    """Every model the pipeline builds from ``config``, as ``(entry, model, model key, kwargs, origins,
    kwargs key)``: the experiments, Table 3's baselines (the experiment's structural keywords, then their
    own), the LIF+ study's variants (the experiment's keywords, LIF+ neurons, the variant's stages) and the
    bench's DVS128 network (the experiment's keywords, then the bench's); ``origins`` maps each keyword to
    the dotted key it comes from, ``kwargs key`` is the key of the keywords together."""
    experiments = config["experiments"]
    for name, exp in experiments.items():
        kwargs = dict(exp.get("model_kwargs") or {})
        where = f"experiments.{name}"
        origins = {k: f"{where}.model_kwargs.{k}" for k in kwargs}
        yield where, exp["model"], f"{where}.model", kwargs, origins, f"{where}.model_kwargs"
        for variant, spec in (exp.get("variants") or {}).items():
            own = spec.get("model_kwargs") or {}
            if not own:
                continue
            vwhere = f"{where}.variants.{variant}"
            vkwargs = {**kwargs, **own}
            vorigins = origins | {k: f"{vwhere}.model_kwargs.{k}" for k in own}
            yield vwhere, exp["model"], f"{where}.model", vkwargs, vorigins, f"{vwhere}.model_kwargs"
    for name, spec in (config.get("baselines") or {}).items():
        where = f"baselines.{name}"
        kwargs = resolve_experiment(config, name)["model_kwargs"]
        own = spec.get("model_kwargs") or {}
        origins = {
            k: f"{where}.model_kwargs.{k}" if k in own else f"experiments.{spec['of']}.model_kwargs.{k}"
            for k in kwargs
        }
        yield where, spec["model"], f"{where}.model", kwargs, origins, f"{where}.model_kwargs"
    study = config.get("lifplus_study")
    if study and study["experiment"] in experiments:
        base = experiments[study["experiment"]]
        for variant, stages in study["variants"].items():
            where = f"lifplus_study.variants.{variant}"
            kwargs = {**(base.get("model_kwargs") or {}), "neuron": "lifplus", **stages}
            origins = {k: f"experiments.{study['experiment']}.model_kwargs.{k}" for k in kwargs}
            origins |= {"neuron": "lifplus_study.experiment"} | {k: f"{where}.{k}" for k in stages}
            yield where, base["model"], f"experiments.{study['experiment']}.model", kwargs, origins, where
    name = _bench_experiment(config)
    if name is not None:
        overrides = (config["bench"].get("dvs128") or {}).get("model_kwargs") or {}
        if name in experiments and overrides:
            base = experiments[name]
            kwargs = {**(base.get("model_kwargs") or {}), **overrides}
            origins = {
                k: f"bench.dvs128.model_kwargs.{k}"
                if k in overrides
                else f"experiments.{name}.model_kwargs.{k}"
                for k in kwargs
            }
            where = "bench.dvs128"
            yield where, base["model"], f"experiments.{name}.model", kwargs, origins, f"{where}.model_kwargs"


def model_problems(config: Mapping[str, Any]) -> list[str]:
    """The models of a pipeline ``config`` (the schema's shape) that cannot be built, each problem prefixed
    with the dotted key at fault: an unknown ``model`` (with the registered names), and in ``model_kwargs``
    a keyword the model does not take (with those it takes) or a value of the wrong type (with the type
    expected) or one the model refuses when it is built (:func:`bidl.models.registry.check_model_kwargs`;
    every model is built once on the CPU: 0.15 s for the default preset's 25 networks, about a second for the
    paper's 29 at full width, on 2 cores). A keyword that reaches several models (an experiment's, in its
    baselines and the LIF+ study) is named once, where it is written."""
    from ..models import list_models  # importing bidl.models registers every network
    from ..models.registry import check_model_kwargs

    registered = list_models()
    problems, reported = [], set()
    for where, model, model_key, kwargs, origins, kwargs_key in _model_uses(config):
        if model not in registered:
            if model_key not in reported:
                reported.add(model_key)
                close = difflib.get_close_matches(str(model), registered, n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"{model_key}: unknown model {model!r}{guess}; registered: {registered}")
            continue
        for keyword, problem in check_model_kwargs(model, kwargs):
            key = origins.get(keyword, kwargs_key) if keyword else kwargs_key
            if key in reported:
                continue
            reported.add(key)
            via = "" if key == where or key.startswith(f"{where}.") else f" (in {where})"
            problems.append(f"{key}{via}: {problem}")
    return problems


def check_machine(config: Mapping[str, Any], cuda_devices: int | None, source: str = "config") -> None:
    """Check the config's ``device`` and ``distributed`` section against the machine the jobs run on, which
    has ``cuda_devices`` CUDA devices (``torch.cuda.device_count()``; ``None`` where the jobs run elsewhere,
    on a cluster's nodes: then only what holds on any machine is checked). ``device: cuda`` needs a CUDA
    device (``auto`` takes the CPU where there is none); the nccl backend needs CUDA devices, never with
    ``device: cpu``; on CUDA, ``distributed.nproc_per_node`` processes started here (``launcher: local``) need
    as many devices, one each. Raise one ConfigError listing every problem, each naming its key."""
    device = config.get("device", "auto")
    distributed = config.get("distributed") or {}
    backend = distributed.get("backend", "auto")
    problems = []
    if device == "cuda" and cuda_devices == 0:
        problems.append(
            "device: 'cuda', but this machine has no CUDA device (torch.cuda.is_available() is False); use "
            "'auto' (CUDA where there is a device, else the CPU) or 'cpu'"
        )
    if backend == "nccl":
        if device == "cpu":
            problems.append(
                "distributed.backend: 'nccl' runs on CUDA devices only, and device is 'cpu'; use 'gloo' or "
                "'auto' (nccl on CUDA, gloo on the CPU)"
            )
        elif cuda_devices == 0:
            problems.append(
                "distributed.backend: 'nccl' runs on CUDA devices only, and this machine has none"
                + (" (device 'auto' trains on the CPU here)" if device == "auto" else "")
                + "; use 'gloo' or 'auto' (nccl on CUDA, gloo on the CPU)"
            )
    processes = distributed.get("nproc_per_node", 1)
    on_cuda = device == "cuda" or (device == "auto" and bool(cuda_devices))
    if (
        on_cuda
        and cuda_devices
        and distributed.get("launcher", "local") == "local"
        and processes > cuda_devices
    ):
        problems.append(
            f"distributed.nproc_per_node: {processes} processes on CUDA take a device each, and this machine "
            f"has {cuda_devices}; use at most {cuda_devices}"
        )
    if problems:
        raise ConfigError(f"{source}: invalid configuration for this machine:\n  " + "\n  ".join(problems))


def check_interpreter(executable: str) -> None:
    """Refuse an interpreter path that a shell would split: Snakemake starts every ``script:`` rule as
    ``<python> <script>`` without quoting the interpreter (an open Snakemake bug,
    snakemake/snakemake#2645), so a virtual environment in a folder whose path holds a space fails every
    job with exit status 127."""
    import shlex

    from ..errors import SetupError

    if shlex.quote(executable) != executable:
        raise SetupError(
            f"the Python interpreter {executable!r} has a space or another character a shell splits in its "
            "path; Snakemake runs script rules with it unquoted (snakemake/snakemake#2645), so every job "
            "would fail. Create the virtual environment in a folder whose path has none (the repository "
            "itself may stay where it is), e.g. python3 -m venv ~/.venvs/bidl, install there, and run "
            "~/.venvs/bidl/bin/snakemake from the repository"
        )


def load_config(path: str | Path, schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Load a YAML config and validate it."""
    config = load_yaml(path)
    validate_config(config, schema, source=str(path))
    return config


def resolve_experiment(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config entry of experiment ``name``, or the experiment-like entry of baseline ``name``: the
    experiment it is compared with (``of``), with the baseline's model, the experiment's structural model
    keywords (neuron keywords dropped; a non-spiking twin takes them all) and recipe, each updated by the
    baseline's own, and ``baseline_of``."""
    if name in config["experiments"]:
        entry = dict(config["experiments"][name])
        entry.pop("variants", None)
        return entry
    base_name, dot, variant = name.partition(VARIANT_SEPARATOR)
    if dot and base_name in config["experiments"]:
        variants = config["experiments"][base_name].get("variants") or {}
        if variant not in variants:
            raise KeyError(
                f"experiments.{base_name}.variants: no variant {variant!r} (variants: {sorted(variants)})"
            )
        return apply_variant(config["experiments"][base_name], variants[variant]) | {
            "variant_of": base_name,
            "variant": variant,
        }
    baselines = config.get("baselines") or {}
    if name not in baselines:
        raise KeyError(f"{name!r} is neither an experiment nor a baseline of config {config.get('name')!r}")
    from ..models.baselines import baseline_kind, structural_kwargs

    spec = baselines[name]
    base = config["experiments"][spec["of"]]
    own = base.get("model_kwargs", {})
    if baseline_kind(spec["model"]) != "relu":  # a non-spiking twin takes all its network's keywords
        own = structural_kwargs(own)
    return {
        "dataset": base["dataset"],
        "model": spec["model"],
        "model_kwargs": {**own, **spec.get("model_kwargs", {})},
        "recipe": {**base["recipe"], **spec.get("recipe", {})},
        "baseline_of": spec["of"],
    }


VARIANT_SEPARATOR = "."
"""Joins an experiment and one of its named variants into a network name: ``jester_v1.eq11_readout``."""


def apply_variant(base: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """An experiment entry with a named variant applied: its ``model_kwargs``, ``recipe`` and ``loader``
    update the experiment's key by key; its ``description`` is kept as ``variant_description``."""
    entry = {k: v for k, v in base.items() if k != "variants"}
    for key in ("model_kwargs", "recipe", "loader"):
        if key in variant:
            entry[key] = {**(base.get(key) or {}), **variant[key]}
    if "description" in variant:
        entry["variant_description"] = variant["description"]
    return entry


def variant_names(config: Mapping[str, Any]) -> list[str]:
    """Every named variant of every experiment (``<experiment>.<variant>``), sorted: networks trained on
    request (``snakemake results/<preset>/experiments/<experiment>.<variant>/metrics.json``), not by
    default."""
    return sorted(
        f"{name}{VARIANT_SEPARATOR}{variant}"
        for name, exp in config["experiments"].items()
        for variant in (exp.get("variants") or {})
    )


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _cut_recipe(recipe: Mapping[str, Any], epochs: int, max_batch_size: int) -> dict[str, Any]:
    return {
        **recipe,
        "epochs": min(recipe["epochs"], epochs),
        "batch_size": min(recipe["batch_size"], max_batch_size),
    }


def smoke_form(config: Mapping[str, Any]) -> dict[str, Any]:
    """The smoke form of a preset (``snakemake --configfile <preset> --config smoke=true``): every job of its
    DAG but the downloads, with its networks, input sizes and recipes, on stand-ins in the real raw formats
    cut to a handful of samples, for ``smoke_form.epochs`` epochs in batches of at most
    ``smoke_form.max_batch_size``.

    From the preset's ``smoke_form`` section: every dataset's source becomes ``standin`` with the keywords
    of ``smoke_form.standin.<dataset>`` (its preprocessing stays the preset's), written under
    ``resources/<dataset>/standin-<name>_smoke``; every recipe (experiments, their variants, baselines, the
    co-learning fine-tunings) is cut to those epochs and batches; ``smoke_form.set`` is merged over the rest
    (e.g. the cost, export and bench sizes); the name becomes ``<name>_smoke``, so that the outputs go to
    ``results/<name>_smoke/`` beside, never over, a real run's.

    Raises ConfigError naming the key where the preset has no ``smoke_form`` or it lacks a dataset's stand-in.
    """
    form = config.get("smoke_form")
    if not isinstance(form, Mapping):
        raise ConfigError(
            f"smoke: preset {config.get('name')!r} has no smoke_form section (the smoke run's stand-in "
            "sizes, epochs and batch size); add one or drop --config smoke=true"
        )
    epochs, max_batch = int(form.get("epochs", 1)), int(form.get("max_batch_size", 4))
    standins = form.get("standin") or {}
    smoke = {k: copy.deepcopy(v) for k, v in config.items() if k not in ("smoke", "smoke_form")}
    smoke["name"] = f"{config['name']}_smoke"
    smoke["description"] = f"Smoke form of preset {config['name']!r}: {config.get('description', '')}".strip()
    smoke["standin_folder"] = f"standin-{smoke['name']}"
    for dataset, entry in smoke["datasets"].items():
        if dataset not in standins:
            raise ConfigError(
                f"smoke_form.standin.{dataset}: missing (the stand-in keywords of the smoke run; the preset "
                f"declares datasets {sorted(smoke['datasets'])})"
            )
        entry["source"] = "standin"
        entry["standin"] = dict(standins[dataset] or {})
    for exp in smoke["experiments"].values():
        exp["recipe"] = _cut_recipe(exp["recipe"], epochs, max_batch)
        for variant in (exp.get("variants") or {}).values():
            for key in ("epochs", "batch_size"):
                variant.get("recipe", {}).pop(key, None)
    for spec in (smoke.get("baselines") or {}).values():
        recipe = spec.setdefault("recipe", {})
        recipe["epochs"] = min(recipe.get("epochs", epochs), epochs)
        recipe.pop("batch_size", None)
    colearning = smoke.get("colearning")
    if colearning:
        colearning["bptt"] = _cut_recipe(colearning["bptt"], epochs, max_batch)
        colearning["rstdp"]["epochs"] = min(colearning["rstdp"].get("epochs", 1), epochs)
    return _deep_merge(smoke, form.get("set") or {})


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


def main(argv: list[str] | None = None) -> int:
    """``python -m bidl.pipeline.config PRESET...``: check presets as the pipeline does before any job (YAML
    syntax with the line, the schema, references, models, the device against this machine); 0 where all
    pass."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bidl.pipeline.config", description=main.__doc__)
    parser.add_argument("presets", nargs="+", type=Path, metavar="PRESET", help="YAML config files")
    parser.add_argument(
        "--schema",
        type=Path,
        default=SCHEMA,
        help="the config schema (default: the repository's workflow/schemas/config.schema.yaml)",
    )
    parser.add_argument(
        "--elsewhere",
        action="store_true",
        help="the jobs run on other machines (a cluster's nodes): do not check the device against this one",
    )
    args = parser.parse_args(argv)
    failed = 0
    for preset in args.presets:
        try:
            config = load_config(preset, args.schema)
            if not args.elsewhere:
                import torch

                check_machine(config, torch.cuda.device_count(), source=str(preset))
        except ConfigError as err:
            print(f"ConfigError: {err}")
            failed += 1
        else:
            print(f"{preset}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
