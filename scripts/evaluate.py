"""Evaluate a trained experiment: top-1 in IIM and EIM, their agreement and the time-shuffled control;
writes a metrics JSON (speed is measured by measure_latency.py, alone on the machine)."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.evaluation import evaluate_model
from bidl.io import atomic_write_json, redirect_output
from bidl.models import count_parameters, load_trained
from bidl.neurons import LIF
from bidl.pipeline.cli import add_trained_arguments, trained_from_args, trained_from_snakemake


def describe_neurons(model: torch.nn.Module) -> dict[str, str]:
    """Neuron kinds and sharing modes used in ``model``, e.g. ``{"neuron": "LIF", "sharing": "ASM"}``."""
    neurons = [m for m in model.modules() if isinstance(m, LIF)]
    if not neurons:  # a conventional network (Table 3's baselines)
        return {"neuron": "none", "sharing": "-", "reset": "-"}
    kinds = sorted({type(m).__name__ for m in neurons})
    sharing = sorted({"CSM" if m.sharing == "channel" else "ASM" for m in neurons})
    resets = sorted({m.reset for m in neurons})
    return {"neuron": "+".join(kinds), "sharing": "+".join(sharing), "reset": "+".join(resets)}


def main(
    *,
    experiment: dict[str, Any],
    name: str,
    model_file: Path,
    test_file: Path,
    out_file: Path,
    seed: int = 0,
    threads: int = 1,
    device: str = "cpu",
    loader: dict[str, Any] | None = None,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model = load_trained(experiment, model_file)
    test_set = open_split(experiment["dataset"], test_file, **dict(loader or {}))
    batch_size = experiment.get("eval_batch_size", 64)
    metrics = evaluate_model(model, test_set, batch_size=batch_size, device=device, shuffle_seed=seed)
    sample, _ = test_set[0]
    result = {
        "experiment": name,
        "seed": seed,  # the training seed of the model (and of the time-shuffled control's permutations)
        "dataset": experiment["dataset"],
        "model": experiment["model"],
        "model_kwargs": experiment.get("model_kwargs", {}),
        "parameters": count_parameters(model),
        "input_shape": ["B", *sample.shape],
        **describe_neurons(model),
        "iteration_modes": "train IIM; eval IIM + EIM",
        **metrics,
    }
    atomic_write_json(out_file, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("confusion",)}, indent=1), flush=True)
    return result


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(**trained_from_snakemake(smk, "metrics"), seed=smk.params.seed)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_trained_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(**trained_from_args(args), seed=args.seed)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
