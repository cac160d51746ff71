"""Figure 11 of the paper: top-1 against the salt-noise ratio for the three networks of the co-learning
study, drawn from the CSV written by colearn_noise.py (no re-measuring)."""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path, read_csv_rows  # noqa: E402

REQUIRED = ("network", "label", "noise_ratio", "top1", "chance", "data_source", "preset", "dataset")


def main(csv_file: Path, out_file: Path) -> None:
    rows = read_csv_rows(csv_file, REQUIRED)
    chance = float(rows[0]["chance"])
    fig, ax = plt.subplots(figsize=(6, 4))
    networks = list(dict.fromkeys(r["network"] for r in rows))
    for marker, network in zip("osD^v", networks, strict=False):
        points = sorted((float(r["noise_ratio"]), float(r["top1"])) for r in rows if r["network"] == network)
        label = next(r["label"] for r in rows if r["network"] == network)
        ax.plot(*zip(*points, strict=True), marker=marker, label=label)
    ratios = sorted({float(r["noise_ratio"]) for r in rows})
    positive = [r for r in ratios if r > 0]
    if positive and max(positive) / min(positive) > 20:  # ratios over orders of magnitude: symlog axis
        ax.set_xscale("symlog", linthresh=min(positive))
    if chance > 0:
        ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.1f} %)")
    first = rows[0]
    ax.set(
        xlabel="noise ratio (share of pixels set to 1 in every frame and channel)",
        ylabel="top-1 (%)",
        ylim=(0, 100),
    )
    ax.set_title(
        f"Fig. 11: co-learning under noise, {first['dataset']}\n"
        f"{first['data_source']}, preset {first['preset']}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


if "snakemake" in globals():
    main(Path(snakemake.input.csv), Path(snakemake.output.figure))  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    main(args.csv, args.out)
