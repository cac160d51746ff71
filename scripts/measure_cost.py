"""Measure a trained network's inference cost per sample on its evaluation data (bidl.cost.model_cost):
MACs, event-driven accumulates from the measured spike rates, element-wise neuron / gate ops, parameters,
and the per-layer breakdown; writes a cost JSON."""

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from bidl.cli import add_trained_arguments, trained_from_args, trained_from_snakemake
from bidl.cost import model_cost
from bidl.data.catalog import open_split
from bidl.io import atomic_write_json, redirect_output
from bidl.models import load_trained


def main(
    *,
    experiment: dict[str, Any],
    name: str,
    model_file: Path,
    test_file: Path,
    out_file: Path,
    max_samples: int = 64,
    threads: int = 1,
    batch_size: int = 16,
    loader: dict[str, Any] | None = None,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model = load_trained(experiment, model_file)
    test_set = open_split(experiment["dataset"], test_file, **dict(loader or {}))
    subset = Subset(test_set, range(min(max_samples, len(test_set))))
    cost = model_cost(model, DataLoader(subset, batch_size=batch_size, shuffle=False))
    cost = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cost.items()}
    result = {
        "experiment": name,
        "model": experiment["model"],
        "dataset": experiment["dataset"],
        "baseline_of": experiment.get("baseline_of"),
        "measured_on": f"the first {len(subset)} samples of the evaluation split",
        **cost,
    }
    atomic_write_json(out_file, result)
    print(json.dumps({k: v for k, v in result.items() if k != "layers"}, indent=1), flush=True)
    return result


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(**trained_from_snakemake(smk, "cost"), max_samples=smk.params.max_samples)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_trained_arguments(parser)
    parser.add_argument("--max-samples", type=int, default=64)
    args = parser.parse_args()
    main(**trained_from_args(args), max_samples=args.max_samples)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
