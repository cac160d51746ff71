"""Render the paper's Table 2 (ours vs paper) from the experiments' metrics JSON files, as Markdown, CSV and
LaTeX."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.data.catalog import describe_source
from bidl.io import load_seeded_runs
from bidl.latency import real_time_cells
from bidl.stats import seed_cells, seed_columns, seeds_cell
from bidl.tables import write_table

COLUMNS = (
    "experiment",
    "dataset",
    "network",
    "input shape",
    "neuron",
    "sharing",
    "iteration mode",
    "parameters",
    *seed_columns("top-1 ours (IIM)"),
    "top-1 ours (EIM)",
    "top-1 time-shuffled",
    "top-1 paper",
    "seeds",
    "batch-1 samples/s",
    "batch-1 timesteps/s",
    "real-time factor (throughput)",
    "real-time factor (p95 step)",
    "data source",
    "scaled from the paper",
    "departs from the paper",
)


def table_rows(
    metrics: dict[str, dict[int, dict[str, Any]]], latency: list[dict[str, Any]], config: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per experiment: accuracies over its seeds (``metrics[name][seed]``; the mean, and mean +- sd
    with the 95 % interval), the structure from its first seed, speed from its latency entry."""
    rows = []
    speeds = {entry["experiment"]: entry for entry in latency}
    for name, by_seed in metrics.items():
        m = next(iter(by_seed.values()))
        exp = config["experiments"][name]
        source = config["datasets"][m["dataset"]]["source"]
        speed = {**speeds[name]["eim"], "real_time_factor": speeds[name]["real_time_factor"]}

        def mean(key: str, by_seed: dict[int, dict[str, Any]] = by_seed) -> str:
            return f"{sum(r[key] for r in by_seed.values()) / len(by_seed):.1f}"

        rows.append(
            {
                "experiment": name,
                "dataset": m["dataset"],
                "network": exp["paper"]["network"],
                "input shape": "[" + ", ".join(map(str, m["input_shape"])) + "]",
                "neuron": m["neuron"],
                "sharing": m["sharing"],
                "iteration mode": m["iteration_modes"],
                "parameters": f"{m['parameters']:,}",
                **seed_cells({k: r["top1_iim"] for k, r in by_seed.items()}, "top-1 ours (IIM)"),
                "top-1 ours (EIM)": mean("top1_eim"),
                "top-1 time-shuffled": mean("top1_time_shuffled"),
                "top-1 paper": f"{exp['paper']['top1']:.1f}",
                "seeds": seeds_cell(by_seed),
                "batch-1 samples/s": f"{speed['samples_per_s']:.2f}",
                "batch-1 timesteps/s": f"{speed['timesteps_per_s']:.0f}",
                **real_time_cells(speeds[name], steps=("p95",)),
                "data source": describe_source(m["dataset"], source),
                "scaled from the paper": exp.get("scaled", "no"),
                # what differs from the paper's row on any data (task, structure), from the preset's `departs`
                "departs from the paper": exp.get("departs", "no"),
            }
        )
    return rows


def main(metrics_files: list[Path], latency_files: list[Path], config: dict[str, Any], stem: Path) -> None:
    metrics = load_seeded_runs(metrics_files)
    latency = [json.loads(Path(p).read_text()) for p in latency_files]
    rows = table_rows(metrics, latency, config)
    where = latency[0]
    sources = sorted({r["data source"] for r in rows})
    notes = [
        f"Config: `{config['name']}` ({config.get('description', '')}). Data: {'; '.join(sources)}.",
        "Top-1 on the validation split, the mean over the training seeds (the data split fixed); +- the "
        "sample standard deviation over the seeds and the Student-t 95 % interval of the mean (bidl.stats; "
        "one seed gives no interval). EIM and time-shuffled (the same models on frames permuted in time): "
        "means over the same seeds.",
        "Speed: EIM streaming at batch 1 on this machine, the first seed's model (samples/s; timesteps/s; "
        "real-time factor (throughput) = timesteps/s over the sensor's timesteps per second, > 1 keeps up on "
        "average; (p95 step) = the sensor's step period over the 95th percentile of the step times, >= 1 is "
        "a real-time stream: all but the slowest 5 % of steps are done before the next frame), measured "
        f"alone on {where['device_name']} ({where['device']}, {where['threads']} threads, torch "
        f"{where['torch']}); latency percentiles in the cost table.",
    ]
    write_table(stem, f"Table 2 (preset `{config['name']}`)", COLUMNS, rows, notes)


if "snakemake" in globals():
    main(
        [Path(p) for p in snakemake.input.metrics],  # noqa: F821
        [Path(p) for p in snakemake.input.latency],  # noqa: F821
        snakemake.config,  # noqa: F821
        Path(snakemake.output.markdown).with_suffix(""),  # noqa: F821
    )
elif __name__ == "__main__":
    from bidl.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    parser.add_argument("--results", type=Path, required=True, help="results/<preset>")
    args = parser.parse_args()
    config = load_yaml(args.config)
    runs = [args.results / "experiments" / name for name in sorted(config["experiments"])]
    seeded = [r / f"seed{seed}" / "metrics.json" for r in runs for seed in config["seeds"]]
    main(seeded, [r / "latency.json" for r in runs], config, args.out)
