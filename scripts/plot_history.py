"""Plot one network's training curves (loss and top-1 per epoch) from the history.csv of each of its training
seeds, one line per seed and split."""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path, redirect_output  # noqa: E402


def _read(history_file: Path) -> list[dict[str, str]]:
    with history_file.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{history_file}: no epochs recorded")
    return rows


def main(history_files: list[Path], out_file: Path, title: str, seeds: list[int] | None = None) -> None:
    seeds = list(seeds) if seeds is not None else list(range(len(history_files)))
    if len(seeds) != len(history_files):
        raise ValueError(f"{len(history_files)} history files for {len(seeds)} seeds {seeds}")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for seed, history_file in zip(seeds, history_files, strict=True):
        rows = _read(Path(history_file))
        epochs = [int(r["epoch"]) for r in rows]
        for split, style in (("train", "-"), ("val", "--")):
            label = f"{split}, seed {seed}"
            ax_loss.plot(epochs, [float(r[f"{split}_loss"]) for r in rows], style, marker="o", label=label)
            ax_acc.plot(epochs, [float(r[f"{split}_top1"]) for r in rows], style, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 (%)", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    print(f"training curves of seeds {seeds} -> {out_file}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            [Path(p) for p in smk.input.history], Path(smk.output.figure), smk.params.title, smk.params.seeds
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("history", type=Path, nargs="+", help="seed<k>/history.csv files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", help="the seed of each file (default 0, 1, ...)")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    main(args.history, args.out, args.title, args.seeds)
