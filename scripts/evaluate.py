"""Evaluate a trained experiment: top-1 in IIM and EIM, their agreement, the time-shuffled control and
batch-1 streaming throughput; writes a metrics JSON."""

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.evaluation import evaluate_model, streaming_throughput
from bidl.io import atomic_write_json, load_checkpoint, redirect_output
from bidl.models import count_parameters, create_model
from bidl.neurons import LIF


def describe_neurons(model: torch.nn.Module) -> dict[str, str]:
    """Neuron kinds and sharing modes used in ``model``, e.g. ``{"neuron": "LIF", "sharing": "ASM"}``."""
    neurons = [m for m in model.modules() if isinstance(m, LIF)]
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
    timestep_hz: float | None = None,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model = create_model(experiment["model"], **experiment.get("model_kwargs", {}))
    model.load_state_dict(load_checkpoint(model_file))
    test_set = open_split(experiment["dataset"], test_file, **dict(loader or {}))
    batch_size = experiment.get("eval_batch_size", 64)
    metrics = evaluate_model(model, test_set, batch_size=batch_size, device=device, shuffle_seed=seed)
    sample, _ = test_set[0]
    speed = streaming_throughput(model, sample, repeats=3, device=device)
    result = {
        "experiment": name,
        "dataset": experiment["dataset"],
        "model": experiment["model"],
        "model_kwargs": experiment.get("model_kwargs", {}),
        "parameters": count_parameters(model),
        "input_shape": ["B", *sample.shape],
        **describe_neurons(model),
        "iteration_modes": "train IIM; eval IIM + EIM",
        **metrics,
        "streaming_batch1": {
            **{k: round(v, 4) for k, v in speed.items()},
            "device": device,
            "threads": threads,
            "machine": platform.machine(),
            "processor": platform.processor() or "unknown",
            # the sensor's timesteps per second, and how many times faster than that the stream is processed
            "sensor_timesteps_per_s": timestep_hz,
            "real_time_factor": round(speed["timesteps_per_s"] / timestep_hz, 3) if timestep_hz else None,
        },
    }
    atomic_write_json(out_file, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("confusion",)}, indent=1), flush=True)
    return result


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            experiment=smk.params.experiment,
            name=smk.params.name,
            model_file=Path(smk.input.model),
            test_file=Path(smk.input.test),
            out_file=Path(smk.output.metrics),
            seed=smk.params.seed,
            threads=smk.threads,
            loader=smk.params.loader,
            timestep_hz=smk.params.timestep_hz,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment-json", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loader-json", default="{}", help="dataset class keywords, as JSON")
    parser.add_argument("--timestep-hz", type=float, default=None, help="the sensor's timesteps per second")
    args = parser.parse_args()
    main(
        experiment=json.loads(args.experiment_json),
        name=args.name,
        model_file=args.model,
        test_file=args.test,
        out_file=args.out,
        seed=args.seed,
        threads=args.threads,
        loader=json.loads(args.loader_json),
        timestep_hz=args.timestep_hz,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
