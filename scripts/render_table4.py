"""Render the paper's Table 4 (LIF+ configurations on CIFAR10-DVS) from the variants' metrics JSON files, as
Markdown, CSV and LaTeX, with the LIF experiment of Table 2 as the reference row."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.data.catalog import describe_source
from bidl.functional import LIFPLUS_DEFAULT_MODES
from bidl.tables import write_table

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
    "top-1 (IIM)",
    "top-1 (EIM)",
    "vs all default",
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


def table_rows(
    metrics: dict[str, dict[str, Any]],
    variants: dict[str, dict[str, Any]],
    lif: dict[str, Any],
    data_source: str,
) -> list[dict[str, Any]]:
    missing = sorted(set(variants) - set(metrics))
    if missing:
        raise ValueError(f"lifplus_study.variants: no metrics for {missing}")
    baseline = metrics.get("all_default", {}).get("top1_iim")
    rows = [
        {
            "configuration": f"LIF (experiment {lif['experiment']}, Table 2)",
            "stage changed": "-",
            "LIF+ modes": "plain LIF neuron",
            "top-1 (IIM)": f"{lif['top1_iim']:.1f}",
            "top-1 (EIM)": f"{lif['top1_eim']:.1f}",
            "vs all default": f"{lif['top1_iim'] - baseline:+.1f}" if baseline is not None else "n/a",
            "parameters": f"{lif['parameters']:,}",
            "data source": data_source,
        }
    ]
    order = sorted(variants, key=lambda v: (v != "all_default", describe_variant(variants[v])[0], v))
    for name in order:
        m = metrics[name]
        stage, modes = describe_variant(variants[name])
        rows.append(
            {
                "configuration": name,
                "stage changed": stage,
                "LIF+ modes": modes,
                "top-1 (IIM)": f"{m['top1_iim']:.1f}",
                "top-1 (EIM)": f"{m['top1_eim']:.1f}",
                "vs all default": f"{m['top1_iim'] - baseline:+.1f}" if baseline is not None else "n/a",
                "parameters": f"{m['parameters']:,}",
                "data source": data_source,
            }
        )
    return rows


def variant_of(path: Path) -> str:
    """``results/<preset>/lifplus/<variant>/metrics.json`` -> ``<variant>``."""
    return Path(path).parent.name


def main(
    metrics_files: list[Path],
    lif_file: Path,
    variants: dict[str, dict[str, Any]],
    data_source: str,
    preset: str,
    stem: Path,
) -> None:
    metrics = {variant_of(p): json.loads(Path(p).read_text()) for p in metrics_files}
    lif = json.loads(Path(lif_file).read_text())
    rows = table_rows(metrics, variants, lif, data_source)
    notes = [
        f"Preset `{preset}`. Data: {data_source}. Every row is the same network, data and recipe "
        f"(experiment `{lif['experiment']}`), trained from the same seed; only the neuron differs.",
        "LIF+ stages and modes: bidl.functional.lifplus (after Flexon, Lee et al. 2018); 'all default' "
        "computes exactly what LIF computes. Top-1 on the validation split, in IIM and in EIM.",
        "The paper's Table 4 is an image missing from its text, so its values are not quoted here.",
    ]
    write_table(stem, f"Table 4: LIF+ configurations (preset `{preset}`)", COLUMNS, rows, notes)


if "snakemake" in globals():
    main(
        [Path(p) for p in snakemake.input.metrics],  # noqa: F821
        Path(snakemake.input.lif),  # noqa: F821
        snakemake.params.variants,  # noqa: F821
        snakemake.params.data_source,  # noqa: F821
        snakemake.params.preset,  # noqa: F821
        Path(snakemake.output.markdown).with_suffix(""),  # noqa: F821
    )
elif __name__ == "__main__":
    from bidl.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--lif", type=Path, required=True, help="the LIF experiment's metrics.json")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    parser.add_argument("metrics", type=Path, nargs="+", help="lifplus/<variant>/metrics.json files")
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
