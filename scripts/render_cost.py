"""Render the cost and speed of every trained network (paper experiments and Table 3's baselines): parameters,
MACs and accumulates per sample (measured on the evaluation data), multiplications, zero-skipped MACs, energy
per sample (dense and zero-skipped), spike rate, batch-1 EIM latency (the network, its compiled stream and the
exported graph under ONNX Runtime) and batched IIM throughput on this machine; Markdown, CSV and LaTeX."""

import argparse
from pathlib import Path
from typing import Any

from bidl.cost import energy_note, shared_energy_settings
from bidl.data.catalog import describe_source
from bidl.io import load_runs, redirect_output
from bidl.latency import real_time_cells
from bidl.pipeline.config import network_names, resolve_experiment
from bidl.pipeline.tables import source_note, write_table

COLUMNS = (
    "network",
    "model",
    "compared with",
    "dataset",
    "neuron",
    "parameters",
    "MMACs / sample",
    "MACs / sample",
    "ACs / sample",
    "multiplications / sample",
    "zero-skipped MACs / sample",
    "energy dense (uJ / sample)",
    "energy zero-skipped (uJ / sample)",
    "input spike rate",
    "top-1 (IIM)",
    "EIM step ms (median)",
    "EIM step ms (p95)",
    "compiled EIM step ms (median)",
    "compiled EIM step ms (p95)",
    "EIM samples/s",
    "EIM timesteps/s",
    "real-time factor (throughput)",
    "real-time factor (p95 step)",
    "real-time factor (max step)",
    "IIM samples/s",
    "ORT EIM step ms (median)",
    "ORT EIM step ms (p95)",
    "ORT vs PyTorch EIM step",
    "ORT vs compiled EIM step",
    "data source",
)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _energy(cost: dict[str, Any]) -> dict[str, str]:
    """Energy per sample in microjoules, dense and zero-skipped; '-' where none was computed."""
    record = cost.get("energy")
    if record is None:
        return dict.fromkeys(("energy dense (uJ / sample)", "energy zero-skipped (uJ / sample)"), "-")
    return {
        "energy dense (uJ / sample)": f"{record['dense_pj'] / 1e6:.3f}",
        "energy zero-skipped (uJ / sample)": f"{record['zero_skipped_pj'] / 1e6:.3f}",
    }


def _compiled(speed: dict[str, Any]) -> dict[str, str]:
    """The compiled stream's batch-1 EIM step (bidl.stream), where it was measured."""
    compiled = speed.get("eim_compiled")
    if not isinstance(compiled, dict):
        return dict.fromkeys(("compiled EIM step ms (median)", "compiled EIM step ms (p95)"), "-")
    return {
        "compiled EIM step ms (median)": f"{compiled['step_ms_median']:.3f}",
        "compiled EIM step ms (p95)": f"{compiled['step_ms_p95']:.3f}",
    }


def _onnxruntime(speed: dict[str, Any]) -> dict[str, str]:
    """The exported graph's batch-1 EIM step under ONNX Runtime, and its ratios to PyTorch's eager and
    compiled steps (same run)."""
    ort = speed.get("onnxruntime")
    compiled = speed.get("eim_compiled")
    if not isinstance(ort, dict):
        return dict.fromkeys(
            (
                "ORT EIM step ms (median)",
                "ORT EIM step ms (p95)",
                "ORT vs PyTorch EIM step",
                "ORT vs compiled EIM step",
            ),
            "-",
        )
    median = ort["eim"]["step_ms_median"]
    return {
        "ORT EIM step ms (median)": f"{median:.3f}",
        "ORT EIM step ms (p95)": f"{ort['eim']['step_ms_p95']:.3f}",
        "ORT vs PyTorch EIM step": f"{median / speed['eim']['step_ms_median']:.2f}x",
        "ORT vs compiled EIM step": (
            f"{median / compiled['step_ms_median']:.2f}x" if isinstance(compiled, dict) else "-"
        ),
    }


def cost_rows(
    metrics: dict[str, dict[str, Any]],
    costs: dict[str, dict[str, Any]],
    latency: dict[str, dict[str, Any]],
    compared: dict[str, str | None],
    sources: dict[str, str],
) -> list[dict[str, Any]]:
    rows = []
    for name in metrics:
        m, c, speed = metrics[name], costs[name], latency[name]
        rate = c.get("spike_rate")
        rows.append(
            {
                "network": name,
                "model": m["model"],
                "compared with": compared.get(name) or "-",
                "dataset": m["dataset"],
                "neuron": m["neuron"],
                "parameters": f"{c['params']:,}",
                "MMACs / sample": f"{(c['macs'] + c['acs']) / 1e6:.2f}",
                "MACs / sample": _count(c["macs"]),
                "ACs / sample": _count(c["acs"]),
                "multiplications / sample": _count(c["multiplications"]),
                "zero-skipped MACs / sample": _count(c["macs_zero_skipped"]),
                **_energy(c),
                "input spike rate": f"{rate:.4f}" if rate is not None else "-",
                "top-1 (IIM)": f"{m['top1_iim']:.1f}",
                "EIM step ms (median)": f"{speed['eim']['step_ms_median']:.3f}",
                "EIM step ms (p95)": f"{speed['eim']['step_ms_p95']:.3f}",
                **_compiled(speed),
                "EIM samples/s": f"{speed['eim']['samples_per_s']:.1f}",
                "EIM timesteps/s": f"{speed['eim']['timesteps_per_s']:.0f}",
                **real_time_cells(speed),
                "IIM samples/s": f"{speed['iim']['samples_per_s']:.1f} (batch {speed['iim']['batch_size']})",
                **_onnxruntime(speed),
                "data source": sources[name],
            }
        )
    return rows


def config_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """What the table reads of a config, as the cost_table rule passes it in ``params``: the preset's name
    and description, for every trained network (bidl.pipeline.config.network_names) the experiment a baseline
    is compared with (None for an experiment) and its data source in words, and the ``energy`` section."""
    entries = {name: resolve_experiment(config, name) for name in network_names(config)}
    return {
        "preset": config["name"],
        "description": config.get("description", ""),
        "compared": {name: e.get("baseline_of") for name, e in entries.items()},
        "sources": {
            name: describe_source(e["dataset"], config["datasets"][e["dataset"]]["source"])
            for name, e in entries.items()
        },
        "energy": config.get("energy"),
    }


def render(
    metrics_files: list[Path],
    cost_files: list[Path],
    latency_files: list[Path],
    stem: Path,
    *,
    preset: str,
    description: str,
    compared: dict[str, str | None],
    sources: dict[str, str],
    energy: dict[str, Any] | None,
) -> list[Path]:
    """The cost table of the networks' metrics, cost and latency files, as ``<stem>.md``, ``.csv`` and
    ``.tex`` (returned): ``compared[name]`` the experiment a baseline is compared with (None for an
    experiment), ``sources[name]`` the network's data source in words, ``energy`` the config's energy
    section (None: none), ``preset`` and ``description`` the preset's name and description."""
    metrics, costs, latency = load_runs(metrics_files), load_runs(cost_files), load_runs(latency_files)
    if not (set(metrics) == set(costs) == set(latency)):
        raise ValueError(
            f"cost table: metrics, cost and latency files name different networks: {sorted(metrics)} / "
            f"{sorted(costs)} / {sorted(latency)}"
        )
    unknown = sorted(set(metrics) - set(sources))
    if unknown:
        raise ValueError(f"cost table: no data source given for {unknown} (given: {sorted(sources)})")
    settings = shared_energy_settings(costs, energy)
    sources = {name: sources[name] for name in metrics}
    rows = cost_rows(metrics, costs, latency, compared, sources)
    where = next(iter(latency.values()))
    samples = sorted({c["n_samples"] for c in costs.values()})
    notes = [
        source_note({"name": preset, "description": description}, sources.values()),
        "Every figure of a row, top-1 included, is of the same model: the first training seed's (Tables 2 "
        "and 3 give top-1 over all the seeds).",
        "Per sample (all timesteps), counted by bidl.cost.model_cost over the first "
        f"{'/'.join(map(str, samples))} evaluation samples in IIM: MACs = multiply-accumulates of synapses "
        "(conv / linear) whose input is not binary, every synapse (dense); ACs = accumulates of synapses fed "
        "by binary spikes, one per active input and output it reaches (measured spike rates); MMACs / sample "
        "= (MACs + ACs) / 1e6; zero-skipped MACs = the MACs left when every zero input is skipped (a ReLU's "
        "or LIAF's zeros, ConvLSTM's zero state at t = 0), as the ACs skip silent spikes; multiplications = "
        "one per dense MAC (an AC has none) and the neurons' and gates' element-wise multiplications (3 per "
        "LIF or LIAF neuron and step, its leak and reset; 3 per LSTM hidden element and step). BatchNorm "
        "(foldable) and pooling are not counted.",
        energy_note(settings),
        f"Speed measured alone on {where['device_name']} ({where['device']}, {where['threads']} threads, "
        f"torch {where['torch']}): EIM = batch-1 streaming, one call per timestep (latency per timestep) "
        "of the PyTorch network as it is (eager: every module's Python forward per step); IIM = whole "
        "batches. Real-time factor (throughput) = EIM timesteps/s over the sensor's timesteps per second:"
        " the steps fit the sensor's rate on average; (p95 step) and (max step) = the sensor's step "
        "period over the 95th percentile and the slowest of the measured EIM steps: >= 1x, every step but"
        " the slowest 5 % (every step) is done before the next frame arrives, the test of a real-time "
        "stream. Compiled EIM: the same samples streamed the same way through bidl.stream.compile_stream "
        "(the single-step function traced and frozen with TorchScript, one call per timestep, the same "
        "outputs as the eager network), in the same job, after the same warm-up. ORT: the exported "
        "single-step ONNX graph (bidl.export, the paper networks; baselines are not exported) streamed at"
        " batch 1 by bidl's ONNX Runtime runtime in the same job, the states fed back each step; ORT vs "
        "PyTorch and ORT vs compiled = the ratios of the median step times (< 1: ONNX Runtime is faster)."
        " '-': not measured (the network's latency.json says why).",
    ]
    paths = write_table(stem, f"Cost and speed per network (preset `{preset}`)", COLUMNS, rows, notes)
    print(f"cost table: {len(rows)} networks -> {', '.join(map(str, paths))}", flush=True)
    return paths


def main(
    config: dict[str, Any],
    metrics_files: list[Path],
    cost_files: list[Path],
    latency_files: list[Path],
    stem: Path,
) -> list[Path]:
    """The cost table with what it reads of ``config`` taken from it (:func:`config_inputs`)."""
    return render(metrics_files, cost_files, latency_files, stem, **config_inputs(config))


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        render(
            [Path(p) for p in smk.input.metrics],
            [Path(p) for p in smk.input.cost],
            [Path(p) for p in smk.input.latency],
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
            compared=smk.params.compared,
            sources=smk.params.sources,
            energy=smk.params.energy,
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="results/<preset>")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    config = load_yaml(args.config)
    runs = [args.results / "experiments" / n for n in network_names(config)]
    main(
        config,
        [r / f"seed{config['seeds'][0]}" / "metrics.json" for r in runs],
        [r / "cost.json" for r in runs],
        [r / "latency.json" for r in runs],
        args.out,
    )
