"""Figure 11 of the paper: top-1 against the salt-noise ratio for the three networks of the co-learning
study, the mean over the training seeds with its 95 % interval as a band, drawn from the CSV written by
fig11_data.py (no re-measuring)."""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path, read_csv_rows, redirect_output  # noqa: E402

REQUIRED = ("network", "label", "noise_ratio", "top1", "chance", "data_source", "preset", "dataset")


def main(csv_file: Path, out_file: Path) -> None:
    rows = read_csv_rows(csv_file, REQUIRED)
    chance = float(rows[0]["chance"])
    fig, ax = plt.subplots(figsize=(6, 4))
    networks = list(dict.fromkeys(r["network"] for r in rows))
    for marker, network in zip("osD^v", networks, strict=False):
        curve = sorted((r for r in rows if r["network"] == network), key=lambda r: float(r["noise_ratio"]))
        x = [float(r["noise_ratio"]) for r in curve]
        label = curve[0]["label"]
        seeds = curve[0].get("n_seeds") or "1"
        (line,) = ax.plot(x, [float(r["top1"]) for r in curve], marker=marker, label=f"{label} (n = {seeds})")
        if all(r.get("top1_ci_low") not in (None, "") for r in curve):  # one seed has no interval
            low = [float(r["top1_ci_low"]) for r in curve]
            high = [float(r["top1_ci_high"]) for r in curve]
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ratios = sorted({float(r["noise_ratio"]) for r in rows})
    positive = [r for r in ratios if r > 0]
    if positive and max(positive) / min(positive) > 20:  # ratios over orders of magnitude: symlog axis
        ax.set_xscale("symlog", linthresh=min(positive))
    if chance > 0:
        ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.1f} %)")
    first = rows[0]
    relative = first.get("noise_relative_to") == "events"
    ax.set(
        xlabel=(
            "noise ratio (salt pixels per pixel holding an event, "
            f"{100 * float(first['signal_density']):.2g} % of the pixels; every frame and channel)"
            if relative
            else "noise ratio (share of pixels set to 1 in every frame and channel)"
        ),
        ylabel="top-1 (%), mean over seeds; band: 95 % CI",
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
    print(f"Figure 11: {len(networks)} networks at {len(ratios)} noise ratios -> {out_file}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(Path(smk.input.csv), Path(smk.output.figure))


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    main(args.csv, args.out)
