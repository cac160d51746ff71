"""Latency and throughput of a trained network on this machine: batch-1 EIM streaming (per-timestep latency
median and 95th percentile, samples/s, timesteps/s) by the network and by its compiled stream
(bidl.stream.compile_stream: the single-step function traced and frozen, with its compile time), batched IIM
throughput, with the device and threads recorded (bidl.latency), and the exported ONNX step graph streamed
with ONNX Runtime beside them, on the same samples. The pipeline runs it with all the job's cores and nothing
beside it."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.io import atomic_write_json, redirect_output
from bidl.latency import measure_latency, measure_onnxruntime
from bidl.models import load_trained
from bidl.pipeline.cli import add_trained_arguments, trained_from_args, trained_from_snakemake
from bidl.training import resolve_device


def _step_medians(result: dict[str, Any]) -> str:
    """One line: the batch-1 EIM step medians of the eager network, its compiled stream and ONNX Runtime."""
    ort = result.get("onnxruntime")
    records = {
        "eager": result["eim"],
        "compiled": result["eim_compiled"],
        "ONNX Runtime": ort["eim"] if isinstance(ort, dict) else ort,
    }
    parts = [
        f"{label} {r['step_ms_median']:.3f} ms" if isinstance(r, dict) else f"{label} -"
        for label, r in records.items()
    ]
    return f"{result['experiment']}: EIM step median (batch 1): " + ", ".join(parts)


def main(
    *,
    experiment: dict[str, Any],
    name: str,
    model_file: Path,
    test_file: Path,
    out_file: Path,
    threads: int = 1,
    device: str = "auto",
    loader: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    timestep_hz: float | None = None,
    onnx_file: Path | None = None,
) -> dict[str, Any]:
    settings = dict(settings or {})
    torch.set_num_threads(settings.pop("threads", None) or threads)
    n_samples = settings.pop("samples", 5)
    model = load_trained(experiment, model_file)
    test_set = open_split(experiment["dataset"], test_file, **dict(loader or {}))
    samples = [test_set[i][0] for i in range(min(n_samples, len(test_set)))]
    where = torch.device(resolve_device(device))
    result = {
        "experiment": name,
        "model": experiment["model"],
        **measure_latency(model, samples, device=where, timestep_hz=timestep_hz, **settings),
    }
    if where.type == "cuda":  # the CPU figures too, for a peer measured in the same run
        result["cpu"] = measure_latency(model, samples, device="cpu", timestep_hz=timestep_hz, **settings)
    if onnx_file is not None:  # the exported step graph, streamed the same way (a peer in the same run)
        result["onnxruntime"] = measure_onnxruntime(
            onnx_file, samples, threads=torch.get_num_threads(), warmup=settings.get("warmup", 1)
        )
    else:
        result["onnxruntime"] = (
            "not measured: this network is not exported (the export rule covers experiments)"
        )
    atomic_write_json(out_file, result)
    print(json.dumps(result, indent=1))
    print(_step_medians(result), flush=True)
    return result


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            **trained_from_snakemake(smk, "latency"),
            device=smk.params.device,
            settings=smk.params.settings,
            timestep_hz=smk.params.timestep_hz,
            onnx_file=Path(smk.input.export[0]) / "model.onnx" if smk.input.export else None,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_trained_arguments(parser)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--settings-json", default="{}", help="cost.latency of the config, as JSON")
    parser.add_argument("--timestep-hz", type=float, default=None, help="the sensor's timesteps per second")
    parser.add_argument(
        "--onnx", type=Path, default=None, help="its exported model.onnx, timed with ONNX Runtime"
    )
    args = parser.parse_args()
    main(
        **trained_from_args(args),
        device=args.device,
        settings=json.loads(args.settings_json),
        timestep_hz=args.timestep_hz,
        onnx_file=args.onnx,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
