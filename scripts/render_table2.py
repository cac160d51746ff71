"""Render the paper's Table 2 (ours vs paper) from the experiments' metrics JSON files, as Markdown, CSV and
LaTeX."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.data.catalog import describe_source
from bidl.io import load_seeded_runs, redirect_output
from bidl.latency import real_time_cells
from bidl.pipeline.tables import write_table
from bidl.stats import seed_cells, seed_columns, seeds_cell

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
# what the table quotes of an experiment's config entry
EXPERIMENT_KEYS = ("paper", "scaled", "departs")


def config_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """What the table reads of a config, as the table2 rule passes it in ``params``: the preset's name and
    description, each experiment's ``paper`` / ``scaled`` / ``departs`` entries, and the source (in words) of
    each dataset an experiment trains on."""
    experiments = {
        name: {key: value for key, value in entry.items() if key in EXPERIMENT_KEYS}
        for name, entry in sorted(config["experiments"].items())
    }
    datasets = sorted({entry["dataset"] for entry in config["experiments"].values()})
    return {
        "preset": config["name"],
        "description": config.get("description", ""),
        "experiments": experiments,
        "sources": {d: describe_source(d, config["datasets"][d]["source"]) for d in datasets},
    }


def table_rows(
    metrics: dict[str, dict[int, dict[str, Any]]],
    latency: list[dict[str, Any]],
    experiments: dict[str, dict[str, Any]],
    sources: dict[str, str],
) -> list[dict[str, Any]]:
    """One row per experiment: accuracies over its seeds (``metrics[name][seed]``; the mean, and mean +- sd
    with the 95 % interval), the structure from its first seed, speed from its latency entry, the paper's
    network and top-1 and how the preset departs from it from ``experiments[name]`` (its ``paper``,
    ``scaled`` and ``departs`` entries), the data source from ``sources[dataset]``."""
    rows = []
    speeds = {entry["experiment"]: entry for entry in latency}
    for name, by_seed in metrics.items():
        m = next(iter(by_seed.values()))
        if name not in experiments:
            raise ValueError(
                f"table 2: metrics of {name!r}, which is not among the experiments {sorted(experiments)}"
            )
        if m["dataset"] not in sources:
            raise ValueError(
                f"table 2: {name!r} trains on {m['dataset']!r}, whose source is not given ({sorted(sources)})"
            )
        exp = experiments[name]
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
                "data source": sources[m["dataset"]],
                "scaled from the paper": exp.get("scaled", "no"),
                # what differs from the paper's row on any data (task, structure), from the preset's `departs`
                "departs from the paper": exp.get("departs", "no"),
            }
        )
    return rows


def render(
    metrics_files: list[Path],
    latency_files: list[Path],
    stem: Path,
    *,
    preset: str,
    description: str,
    experiments: dict[str, dict[str, Any]],
    sources: dict[str, str],
) -> list[Path]:
    """Table 2 of the seeds' metrics files and the latency files, as ``<stem>.md``, ``.csv`` and ``.tex``
    (returned): ``experiments`` and ``sources`` as :func:`table_rows` takes them, ``preset`` and
    ``description`` the preset's name and description."""
    metrics = load_seeded_runs(metrics_files)
    latency = [json.loads(Path(p).read_text()) for p in latency_files]
    rows = table_rows(metrics, latency, experiments, sources)
    where = latency[0]
    data = sorted({r["data source"] for r in rows})
    notes = [
        f"Config: `{preset}` ({description}). Data: {'; '.join(data)}.",
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
    paths = write_table(stem, f"Table 2 (preset `{preset}`)", COLUMNS, rows, notes)
    print(f"Table 2: {len(rows)} experiments -> {', '.join(map(str, paths))}", flush=True)
    return paths


def main(
    metrics_files: list[Path], latency_files: list[Path], config: dict[str, Any], stem: Path
) -> list[Path]:
    """Table 2 with what it reads of ``config`` taken from it (:func:`config_inputs`)."""
    return render(metrics_files, latency_files, stem, **config_inputs(config))


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        render(
            [Path(p) for p in smk.input.metrics],
            [Path(p) for p in smk.input.latency],
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
            experiments=smk.params.experiments,
            sources=smk.params.sources,
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    parser.add_argument("--results", type=Path, required=True, help="results/<preset>")
    args = parser.parse_args()
    config = load_yaml(args.config)
    runs = [args.results / "experiments" / name for name in sorted(config["experiments"])]
    seeded = [r / f"seed{seed}" / "metrics.json" for r in runs for seed in config["seeds"]]
    main(seeded, [r / "latency.json" for r in runs], config, args.out)
