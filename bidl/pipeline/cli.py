"""Small helpers shared by the pipeline's scripts: logging to a rule's log file and ``KEY=VALUE`` options."""

import argparse
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "add_param_option",
    "add_trained_arguments",
    "cli_params",
    "parse_params",
    "setup_logging",
    "trained_from_args",
    "trained_from_snakemake",
]


def setup_logging(log_file: str | Path | None) -> None:
    """Log INFO and above to stderr and, when given, to ``log_file`` (overwritten)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["seed=1", "layout=ibm_aedat31"]`` -> ``{"seed": 1, "layout": "ibm_aedat31"}``; values are read as
    JSON where they parse (numbers, booleans, null, lists) and kept as strings otherwise."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def add_param_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the repeatable ``--param KEY=VALUE`` option; ``what`` says whose keyword arguments they are."""
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what}, VALUE read as JSON where it parses (repeatable)",
    )


def cli_params(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The ``--param`` options of ``args`` as keyword arguments; a malformed one exits through ``parser``."""
    try:
        return parse_params(args.param)
    except ValueError as err:
        parser.error(str(err))


def add_trained_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a script that runs a trained network on its evaluation split (evaluate, measure_cost,
    measure_latency): ``--experiment-json --name --model --test --out --threads --loader-json``."""
    parser.add_argument("--experiment-json", required=True, help="the experiment's config entry, as JSON")
    parser.add_argument("--name", required=True, help="the experiment's (or baseline's) name")
    parser.add_argument("--model", type=Path, required=True, help="its trained model.pt")
    parser.add_argument("--test", type=Path, required=True, help="the dataset's cached test split")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loader-json", default="{}", help="dataset class keywords, as JSON")


def trained_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments :func:`add_trained_arguments` parsed, as the scripts' ``main`` takes them."""
    return {
        "experiment": json.loads(args.experiment_json),
        "name": args.name,
        "model_file": args.model,
        "test_file": args.test,
        "out_file": args.out,
        "threads": args.threads,
        "loader": json.loads(args.loader_json),
    }


def trained_from_snakemake(smk: Any, output: str) -> dict[str, Any]:
    """The same keyword arguments from a rule (``params.experiment/name/loader``, ``input.model/test``,
    ``output.<output>``, its threads)."""
    return {
        "experiment": smk.params.experiment,
        "name": smk.params.name,
        "model_file": Path(smk.input.model),
        "test_file": Path(smk.input.test),
        "out_file": Path(smk.output[output]),
        "threads": smk.threads,
        "loader": smk.params.loader,
    }
