"""Plot one experiment's training curves (loss and top-1 per epoch) from its history.csv."""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path  # noqa: E402


def main(history_file: Path, out_file: Path, title: str) -> None:
    with history_file.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{history_file}: no epochs recorded")
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [float(r[f"{split}_loss"]) for r in rows], marker="o", label=split)
        ax_acc.plot(epochs, [float(r[f"{split}_top1"]) for r in rows], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 (%)", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


if "snakemake" in globals():
    main(Path(snakemake.input.history), Path(snakemake.output.figure), snakemake.params.title)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("history", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    main(args.history, args.out, args.title)
