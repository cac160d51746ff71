"""Figure 4 of the paper: operations and weights of the five ST layers at one shape, with the ratios to
ConvLIF printed on the bars; drawn from fig4.csv (written by measure_st_layers.py, no re-measuring)."""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path, read_csv_rows, redirect_output  # noqa: E402

REQUIRED = ("layer", "macs", "acs", "elementwise", "ops", "weights", "ops_vs_convlif", "weights_vs_convlif")


def main(csv_file: Path, out_file: Path) -> list[str]:
    """Draw the figure; return the ratio labels printed on it (ops, then weights, per layer)."""
    rows = read_csv_rows(csv_file, REQUIRED)
    layers = [r["layer"] for r in rows]
    fig, (ops_ax, weights_ax) = plt.subplots(1, 2, figsize=(10, 4))
    bottom = [0.0] * len(rows)
    for key, label, color in (
        ("macs", "MACs", "C0"),
        ("acs", "ACs", "C2"),
        ("elementwise", "element-wise", "C1"),
    ):
        values = [float(r[key]) / 1e6 for r in rows]
        ops_ax.bar(layers, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    printed = []
    for i, r in enumerate(rows):
        text = f"{float(r['ops_vs_convlif']):.2f}x"
        ops_ax.annotate(text, (i, bottom[i]), ha="center", va="bottom", fontsize=8)
        printed.append(text)
    ops_ax.set(ylabel="operations per sample (millions)", title="computation")
    ops_ax.legend(fontsize=8)
    weights = [float(r["weights"]) / 1e3 for r in rows]
    weights_ax.bar(layers, weights, color="C4")
    for i, r in enumerate(rows):
        text = f"{float(r['weights_vs_convlif']):.2f}x"
        weights_ax.annotate(text, (i, weights[i]), ha="center", va="bottom", fontsize=8)
        printed.append(text)
    weights_ax.set(ylabel="weights (thousands)", title="weights")
    for ax in (ops_ax, weights_ax):
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    setting, preset = rows[0].get("setting", ""), rows[0].get("preset", "")
    fig.suptitle(
        f"Fig. 4: one ST layer at {setting} (ratios to ConvLIF on the bars; preset {preset})",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return printed


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        printed = main(Path(smk.input.csv), Path(smk.output.figure))
        print(f"Figure 4 -> {smk.output.figure}; ratios to ConvLIF (ops, then weights): {' '.join(printed)}")


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(" ".join(main(args.csv, args.out)))
