"""Table 3 as a figure: top-1 against (MAC + AC) operations per sample, one panel per dataset, drawn from
table3.csv (no re-measuring)."""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator  # noqa: E402

from bidl.io import atomic_path, read_csv_rows, redirect_output  # noqa: E402

REQUIRED = ("dataset", "network", "kind", "top-1 (IIM)", "G(MAC+AC) / sample", "data source")
MARKERS = {"Conv3D": "s", "ConvLSTM": "^", "LSTM": "^", "ReLU twin": "x"}


def main(csv_file: Path, out_file: Path, preset: str = "") -> None:
    rows = read_csv_rows(csv_file, REQUIRED)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for row in (r for r in rows if r["dataset"] == dataset):
            ops, top1 = float(row["G(MAC+AC) / sample"]), float(row["top-1 (IIM)"])
            marker = MARKERS.get(row["kind"], "o")
            ax.scatter(ops, top1, marker=marker, s=50, label=row["kind"])
            ax.annotate(row["kind"], (ops, top1), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        spread = [float(r["G(MAC+AC) / sample"]) for r in rows if r["dataset"] == dataset]
        ax.set_xlim(min(spread) / 2, max(spread) * 2)  # room for labels; >= 2 ticks of the 1-2-5 series
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1-2-5 labels, even within a decade
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.set(title=dataset, xlabel="G(MAC + AC) / sample", ylim=(0, 108))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 (%)")
    kinds = sorted({r["data source"].split(" (")[0] for r in rows})  # e.g. "stand-in" for every layout
    fig.suptitle(f"Table 3: accuracy against cost ({', '.join(kinds)} data; preset {preset})", fontsize=9)
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    print(f"Table 3 figure: {len(rows)} networks on {len(datasets)} datasets -> {out_file}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(Path(smk.input.csv), Path(smk.output.figure), smk.params.preset)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="")
    args = parser.parse_args()
    main(args.csv, args.out, args.preset)
