"""Measure a trained network's inference cost per sample on its evaluation data (bidl.cost.model_cost):
MACs (dense and with zero inputs skipped), event-driven accumulates from the measured spike rates,
element-wise neuron / gate ops by class, multiplications, parameters, the per-layer breakdown and, given
per-operation energies (the config's ``energy`` section), the energy per sample (bidl.cost.energy); writes a
cost JSON."""

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from bidl.cost import ENERGY_KEYS, energy, model_cost
from bidl.data.catalog import open_split
from bidl.io import atomic_write_json, redirect_output
from bidl.models import load_trained
from bidl.pipeline.cli import add_trained_arguments, trained_from_args, trained_from_snakemake


def energy_record(cost: dict[str, Any], per_op: dict[str, Any]) -> dict[str, Any]:
    """The energy per sample of a :func:`bidl.cost.model_cost` result (picojoules, dense and zero-skipped, by
    operation) with the per-operation energies it was computed from and their source and note."""
    return {
        "per_op": {key: per_op[key] for key in ENERGY_KEYS},
        "source": per_op.get("source"),
        "note": per_op.get("note"),
        **energy(cost, per_op),
    }


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
    energy_per_op: dict[str, Any] | None = None,
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
        "energy": energy_record(cost, energy_per_op) if energy_per_op is not None else None,
    }
    atomic_write_json(out_file, result)
    print(json.dumps({k: v for k, v in result.items() if k != "layers"}, indent=1), flush=True)
    return result


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            **trained_from_snakemake(smk, "cost"),
            max_samples=smk.params.max_samples,
            energy_per_op=smk.params.energy,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_trained_arguments(parser)
    parser.add_argument("--max-samples", type=int, default=64)
    parser.add_argument(
        "--energy-json",
        default=None,
        help="per-operation energies as JSON, the config's energy section (mac_pj, ac_pj, mul_pj, add_pj, "
        "nonlinear_pj, source); absent: no energy is written",
    )
    args = parser.parse_args()
    per_op = json.loads(args.energy_json) if args.energy_json else None
    main(**trained_from_args(args), max_samples=args.max_samples, energy_per_op=per_op)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
