"""Render the paper's Table 4 (LIF+ configurations on CIFAR10-DVS) from the variants' metrics JSON files, as
Markdown, CSV and LaTeX, with the LIF experiment of Table 2 as the reference row."""

import argparse
from pathlib import Path
from typing import Any

from bidl.data.catalog import describe_source
from bidl.functional import LIFPLUS_DEFAULT_MODES
from bidl.io import load_seeded_runs, redirect_output
from bidl.pipeline.tables import write_table
from bidl.stats import compare_seeds, seed_cells, seed_columns, seeds_cell, verdict_cell, verdict_summary

STAGES = {
    "decay": "A decay",
    "accumulation": "B input accumulation",
    "reversal": "B input accumulation",
    "trigger": "C spike trigger",
    "inhibition": "D inhibitory current",
    "refractory": "E refractory",
}
COLUMNS = (
    "configuration",
    "stage changed",
    "LIF+ modes",
    *seed_columns("top-1 (IIM)"),
    "top-1 (EIM)",
    "vs all default (paired over seeds)",
    "seeds",
    "parameters",
    "data source",
)


def describe_variant(variant: dict[str, Any]) -> tuple[str, str]:
    """(the stages the variant changes, its non-default settings), e.g. ("A decay", "decay=exponential")."""
    changed = {k: v for k, v in variant.items() if LIFPLUS_DEFAULT_MODES.get(k, object()) != v}
    if not changed:
        return "none (= LIF)", "all default"
    stages = sorted({STAGES.get(k, "constants") for k in changed})
    return ", ".join(stages), ", ".join(f"{k}={v}" for k, v in changed.items())


def _top1(runs: dict[int, dict[str, Any]], key: str = "top1_iim") -> dict[int, float]:
    return {seed: r[key] for seed, r in runs.items()}


def _mean(values: dict[int, float]) -> str:
    return f"{sum(values.values()) / len(values):.1f}"


def table_rows(
    metrics: dict[str, dict[int, dict[str, Any]]],
    variants: dict[str, dict[str, Any]],
    lif: dict[int, dict[str, Any]],
    data_source: str,
) -> list[dict[str, Any]]:
    """The LIF row, then one row per variant (``metrics[variant][seed]``), all default first: top-1 over the
    seeds, and each row against all default paired seed by seed."""
    missing = sorted(set(variants) - set(metrics))
    if missing:
        raise ValueError(f"lifplus_study.variants: no metrics for {missing}")
    baseline = _top1(metrics["all_default"]) if "all_default" in metrics else None
    first = next(iter(lif.values()))
    rows = [
        {
            "configuration": f"LIF (experiment {first['experiment']}, Table 2)",
            "stage changed": "-",
            "LIF+ modes": "plain LIF neuron",
            **seed_cells(_top1(lif), "top-1 (IIM)"),
            "top-1 (EIM)": _mean(_top1(lif, "top1_eim")),
            "vs all default (paired over seeds)": verdict_cell(baseline, _top1(lif)) if baseline else "n/a",
            "seeds": seeds_cell(lif),
            "parameters": f"{first['parameters']:,}",
            "data source": data_source,
        }
    ]
    order = sorted(variants, key=lambda v: (v != "all_default", describe_variant(variants[v])[0], v))
    for name in order:
        runs = metrics[name]
        stage, modes = describe_variant(variants[name])
        rows.append(
            {
                "configuration": name,
                "stage changed": stage,
                "LIF+ modes": modes,
                **seed_cells(_top1(runs), "top-1 (IIM)"),
                "top-1 (EIM)": _mean(_top1(runs, "top1_eim")),
                "vs all default (paired over seeds)": (
                    "-"
                    if name == "all_default"
                    else verdict_cell(baseline, _top1(runs))
                    if baseline
                    else "n/a"
                ),
                "seeds": seeds_cell(runs),
                "parameters": f"{next(iter(runs.values()))['parameters']:,}",
                "data source": data_source,
            }
        )
    return rows


def comparisons(metrics: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Each variant's top-1 against all default's, paired over the seeds (bidl.stats.compare_seeds)."""
    if "all_default" not in metrics:
        return {}
    baseline = _top1(metrics["all_default"])
    return {
        name: compare_seeds(baseline, _top1(runs)) for name, runs in metrics.items() if name != "all_default"
    }


def main(
    metrics_files: list[Path],
    lif_files: list[Path],
    variants: dict[str, dict[str, Any]],
    data_source: str,
    preset: str,
    stem: Path,
) -> None:
    metrics = load_seeded_runs(metrics_files)
    (lif,) = load_seeded_runs(lif_files).values()
    rows = table_rows(metrics, variants, lif, data_source)
    first = next(iter(lif.values()))
    notes = [
        f"Preset `{preset}`. Data: {data_source}. Every row is the same network, data and recipe "
        f"(experiment `{first['experiment']}`), trained once per seed (the same seeds for every row); only "
        "the neuron differs.",
        "LIF+ stages and modes: bidl.functional.lifplus (after Flexon, Lee et al. 2018); 'all default' "
        "computes exactly what LIF computes. Top-1 on the validation split, in IIM and in EIM: the mean over "
        "the seeds, +- their sd with the Student-t 95 % interval of the mean; vs all default = the row's "
        "top-1 less all default's, paired seed by seed (paired t-test, bidl.stats).",
        verdict_summary(comparisons(metrics), "all default"),
        "The paper's Table 4 is an image missing from its text, so its values are not quoted here.",
    ]
    paths = write_table(stem, f"Table 4: LIF+ configurations (preset `{preset}`)", COLUMNS, rows, notes)
    print(f"Table 4: {len(rows)} rows -> {', '.join(map(str, paths))}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            [Path(p) for p in smk.input.metrics],
            [Path(p) for p in smk.input.lif],
            smk.params.variants,
            smk.params.data_source,
            smk.params.preset,
            Path(smk.output.markdown).with_suffix(""),
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument(
        "--lif", type=Path, nargs="+", required=True, help="the LIF experiment's seed<k>/metrics.json files"
    )
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    parser.add_argument("metrics", type=Path, nargs="+", help="lifplus/<variant>/seed<k>/metrics.json files")
    args = parser.parse_args()
    config = load_yaml(args.config)
    study = config["lifplus_study"]
    dataset = config["experiments"][study["experiment"]]["dataset"]
    main(
        args.metrics,
        args.lif,
        study["variants"],
        describe_source(dataset, config["datasets"][dataset]["source"]),
        config["name"],
        args.out,
    )
