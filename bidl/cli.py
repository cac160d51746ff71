"""Small helpers shared by the pipeline's scripts: logging to a rule's log file and ``KEY=VALUE`` options."""

import argparse
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["add_param_option", "cli_params", "parse_params", "setup_logging"]


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
