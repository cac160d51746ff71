"""Measure the five ST layers of the paper's Table 1 / Figure 4 at one shape (bidl.cost.figure4_counts): the
formula counts and the counts measured by running each layer, which must agree; writes the counts (JSON) and
the figure's data (CSV)."""

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from bidl.cost import KINDS, LAYER_NAMES, MULTIPLICATION_KEYS, figure4_counts
from bidl.io import atomic_write_json, atomic_write_text, redirect_output

CSV_COLUMNS = (
    "kind",
    "layer",
    "macs",
    "acs",
    "elementwise",
    "ops",
    "weights",
    "ops_measured",
    "weights_measured",
    "synaptic_ops_vs_convlif",
    "ops_vs_convlif",
    "weights_vs_convlif",
    "setting",
    "preset",
)
COUNTS = ("macs", "acs", "elementwise", "ops", "weights")
CHECKED = COUNTS + MULTIPLICATION_KEYS  # every count Table 1 prints, multiplications included


def figure_rows(counts: dict[str, Any], preset: str) -> list[dict[str, Any]]:
    setting = ", ".join(f"{k}={v}" for k, v in counts["setting"].items())
    rows = []
    for kind in KINDS:
        formula, measured, ratios = counts["formula"][kind], counts["measured"][kind], counts["ratios"][kind]
        rows.append(
            {
                "kind": kind,
                "layer": LAYER_NAMES[kind],
                **{key: formula[key] for key in COUNTS},
                "ops_measured": measured["ops"],
                "weights_measured": measured["weights"],
                **{key: f"{ratios[key]:.4f}" for key in CSV_COLUMNS if key.endswith("_vs_convlif")},
                "setting": setting,
                "preset": preset,
            }
        )
    return rows


def main(shape: dict[str, int], preset: str, counts_file: Path, csv_file: Path) -> dict[str, Any]:
    counts = figure4_counts(**shape)
    mismatches = [
        f"{kind}.{key}: formula {counts['formula'][kind][key]} != measured {counts['measured'][kind][key]}"
        for kind in KINDS
        for key in CHECKED
        if counts["formula"][kind][key] != counts["measured"][kind][key]
    ]
    if mismatches:  # the formulas are what Table 1 prints: they must be what runs
        raise RuntimeError(
            "Table 1 formulas disagree with the measured counts:\n  " + "\n  ".join(mismatches)
        )
    for kind in KINDS:  # keep the JSON readable: drop the built layer objects
        counts["measured"][kind].pop("layer", None)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(figure_rows(counts, preset))
    atomic_write_json(counts_file, {"preset": preset, **counts})
    atomic_write_text(csv_file, buffer.getvalue())
    print(buffer.getvalue(), flush=True)
    return counts


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(dict(smk.params.shape), smk.params.preset, Path(smk.output.counts), Path(smk.output.csv))


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--shape-json", default='{"T": 8, "H": 16, "W": 16, "C": 64, "K": 64, "U": 3, "I": 3, "J": 3}'
    )
    parser.add_argument("--preset", default="default")
    parser.add_argument("--counts", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args()
    main(json.loads(args.shape_json), args.preset, args.counts, args.csv)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
