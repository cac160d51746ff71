"""Render the paper's Table 3 as measured here: per dataset, the paper's network against its Conv3D and
ConvLSTM (LSTM) baselines and its non-spiking twin, trained side by side on the same data; accuracy against
GMACs per sample and energy per sample (zero inputs skipped); Markdown, CSV and LaTeX."""

import argparse
from pathlib import Path
from typing import Any

from bidl.cost import energy_note, shared_energy_settings
from bidl.data.catalog import describe_source
from bidl.io import load_runs, load_seeded_runs, redirect_output
from bidl.models.baselines import baseline_kind
from bidl.pipeline.config import resolve_experiment, table3_names
from bidl.pipeline.tables import source_note, write_table
from bidl.stats import compare_seeds, seed_cells, seed_columns, seeds_cell, verdict_cell, verdict_summary

COLUMNS = (
    "dataset",
    "network",
    "kind",
    *seed_columns("top-1 (IIM)"),
    "vs BIDL (paired over seeds)",
    "seeds",
    "top-1 paper",
    "parameters",
    "GMACs / sample",
    "GACs / sample",
    "G(MAC+AC) / sample",
    "ops vs BIDL",
    "energy zero-skipped (uJ / sample)",
    "energy zero-skipped vs BIDL",
    "epochs",
    "data source",
    "departs from the paper",
)
KINDS = {"conv3d": "Conv3D", "convlstm": "ConvLSTM", "lstm": "LSTM", "relu": "ReLU twin"}  # display names


def kind_of(model: str, neuron: str) -> str:
    """A baseline's kind as displayed (``Conv3D``, from the baselines registry); a paper network ->
    ``BIDL (<neuron>)``."""
    kind = baseline_kind(model)
    return KINDS[kind] if kind else f"BIDL ({neuron})"


def config_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """What the table reads of a config, as the table3 rule passes it in ``params``: the preset's name and
    description, the resolved entry (bidl.pipeline.config.resolve_experiment) and the data source in words of
    each network of the table (bidl.pipeline.config.table3_names), and the ``energy`` section."""
    entries = {name: resolve_experiment(config, name) for name in table3_names(config)}
    return {
        "preset": config["name"],
        "description": config.get("description", ""),
        "entries": entries,
        "sources": {
            name: describe_source(e["dataset"], config["datasets"][e["dataset"]]["source"])
            for name, e in entries.items()
        },
        "energy": config.get("energy"),
    }


def _entry(entries: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """Network ``name``'s resolved config entry, or an error naming it where ``entries`` lacks it."""
    if name not in entries:
        raise ValueError(f"table 3: no config entry for network {name!r} (entries: {sorted(entries)})")
    return entries[name]


def table_rows(
    entries: dict[str, dict[str, Any]],
    sources: dict[str, str],
    metrics: dict[str, dict[int, dict[str, Any]]],
    costs: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per network (``metrics[name][seed]``, the experiment before its baselines): accuracy over
    the seeds, each baseline against its experiment paired seed by seed, costs of the first seed's model;
    ``entries[name]`` is the network's resolved config entry (a baseline's names its experiment in
    ``baseline_of``), ``sources[name]`` its data source in words."""
    rows = []
    reference: dict[str, float] = {}
    reference_energy: dict[str, float | None] = {}
    top1: dict[str, dict[int, float]] = {}
    for name in metrics:
        entry = _entry(entries, name)
        m, c = next(iter(metrics[name].values())), costs[name]
        top1[name] = {seed: r["top1_iim"] for seed, r in metrics[name].items()}
        of = entry.get("baseline_of")
        ops = c["macs"] + c["acs"]
        pj = c["energy"]["zero_skipped_pj"] if c.get("energy") is not None else None
        if of is None:
            reference[name] = ops
            reference_energy[name] = pj
        elif of not in reference:
            raise ValueError(f"table 3: baseline {name!r} comes before its experiment {of!r}")
        bidl_pj = reference_energy[of or name]
        paper = entry.get("paper", {}) if of is None else {}
        rows.append(
            {
                "dataset": entry["dataset"],
                "network": name,
                "kind": kind_of(m["model"], m["neuron"]),
                **seed_cells(top1[name], "top-1 (IIM)"),
                "vs BIDL (paired over seeds)": "-" if of is None else verdict_cell(top1[of], top1[name]),
                "seeds": seeds_cell(top1[name]),
                "top-1 paper": f"{paper['top1']:.1f}" if "top1" in paper else "-",
                "parameters": f"{c['params']:,}",
                "GMACs / sample": f"{c['macs'] / 1e9:.4f}",
                "GACs / sample": f"{c['acs'] / 1e9:.4f}",
                "G(MAC+AC) / sample": f"{ops / 1e9:.4f}",
                "ops vs BIDL": f"{ops / reference[of or name]:.2f}x",
                "energy zero-skipped (uJ / sample)": f"{pj / 1e6:.3f}" if pj is not None else "-",
                "energy zero-skipped vs BIDL": f"{pj / bidl_pj:.2f}x" if pj is not None and bidl_pj else "-",
                "epochs": entry["recipe"]["epochs"],
                "data source": sources[name],
                # the experiment's `departs` (a baseline shares its experiment's task and data)
                "departs from the paper": _entry(entries, of or name).get("departs", "no"),
            }
        )
    return rows


def comparisons(
    entries: dict[str, dict[str, Any]], metrics: dict[str, dict[int, dict[str, Any]]]
) -> dict[str, Any]:
    """Each baseline's top-1 against its paper network's, paired over the seeds (bidl.stats.compare_seeds)."""
    top1 = {name: {k: r["top1_iim"] for k, r in runs.items()} for name, runs in metrics.items()}
    result = {}
    for name in metrics:
        of = _entry(entries, name).get("baseline_of")
        if of is not None:
            result[name] = compare_seeds(top1[of], top1[name])
    return result


def render(
    metrics_files: list[Path],
    cost_files: list[Path],
    stem: Path,
    *,
    preset: str,
    description: str,
    entries: dict[str, dict[str, Any]],
    sources: dict[str, str],
    energy: dict[str, Any] | None,
) -> list[Path]:
    """Table 3 of the seeds' metrics files and the cost files, as ``<stem>.md``, ``.csv`` and ``.tex``
    (returned): ``entries`` and ``sources`` as :func:`table_rows` takes them, ``energy`` the config's energy
    section (None: none), ``preset`` and ``description`` the preset's name and description."""
    metrics, costs = load_seeded_runs(metrics_files), load_runs(cost_files)
    if list(metrics) != list(costs):
        raise ValueError(
            f"table 3: metrics and cost files name different networks: {list(metrics)} / {list(costs)}"
        )
    settings = shared_energy_settings(costs, energy)
    rows = table_rows(entries, sources, metrics, costs)
    notes = [
        source_note({"name": preset, "description": description}, [r["data source"] for r in rows]),
        verdict_summary(comparisons(entries, metrics), "its dataset's paper network"),
        "Every network of a dataset is trained on the same split with the paper network's recipe (epochs as "
        "listed) and evaluated on the same validation split, once per training seed: top-1 is the mean "
        "over the seeds, +- their sd with the 95 % interval of the mean; vs BIDL = the baseline's top-1 less "
        "the paper network's, paired seed by seed (paired t-test, bidl.stats): 'different at 95 %' only "
        "where the interval of the difference excludes 0. Costs are the first seed's models'.",
        "Conv3D: the paper network with each ConvLIF "
        "replaced by a causal 3x3x3 Conv3D + BatchNorm + ReLU (same depth); ConvLSTM / LSTM: each ConvLIF "
        "(FCLIAF) replaced by a ConvLSTM (with BatchNorm on its input path) or an LSTM of the same width "
        "(bidl.models.baselines). ReLU twin: the paper network itself with a ReLU in place of every neuron "
        "(no membrane, no spikes; the neuron's BatchNorm kept; bidl.models.twins), trained with the same "
        "recipe: what spiking itself costs or gives on this data.",
        "GMACs / GACs per sample (all timesteps), measured by bidl.cost.model_cost on evaluation samples: "
        "synapses fed by binary spikes accumulate (ACs, one per active input and output), all others "
        "multiply-accumulate (MACs). ops vs BIDL = (MACs + ACs) over the paper network's. Energy "
        "zero-skipped vs BIDL = the energy per sample with every zero input skipped (analog or spike) over "
        "the paper network's.",
        energy_note(settings),
        "The paper's Table 3 compares with published networks (an image missing from its text); here the "
        "baselines are trained in the same run, so the comparison holds the data and recipe fixed.",
    ]
    title = f"Table 3: accuracy against cost (preset `{preset}`)"
    paths = write_table(stem, title, COLUMNS, rows, notes)
    print(f"Table 3: {len(rows)} networks -> {', '.join(map(str, paths))}", flush=True)
    return paths


def main(config: dict[str, Any], metrics_files: list[Path], cost_files: list[Path], stem: Path) -> list[Path]:
    """Table 3 with what it reads of ``config`` taken from it (:func:`config_inputs`)."""
    return render(metrics_files, cost_files, stem, **config_inputs(config))


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        render(
            [Path(p) for p in smk.input.metrics],
            [Path(p) for p in smk.input.cost],
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
            entries=smk.params.entries,
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
    runs = [args.results / "experiments" / n for n in table3_names(config)]
    seeded = [r / f"seed{seed}" / "metrics.json" for r in runs for seed in config["seeds"]]
    main(config, seeded, [r / "cost.json" for r in runs], args.out)
