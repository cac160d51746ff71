"""Figure 11's data over the training seeds: the per-seed CSVs of colearn_noise.py (one per seed: the three
networks trained and fine-tuned from that seed, measured under the same noise) summarised per network and
noise ratio as the mean top-1, the sample sd over the seeds and the Student-t 95 % interval of the mean."""

import argparse
from pathlib import Path

from bidl.io import atomic_write_csv, read_csv_rows, redirect_output
from bidl.stats import summarize

REQUIRED = (
    "seed",
    "network",
    "label",
    "noise_ratio",
    "top1",
    "n_samples",
    "chance",
    "dataset",
    "data_source",
    "preset",
)
# copied from the first seed's row: the same for every seed (one split, one noise draw)
SHARED = (
    "noise_relative_to",
    "noise_pixel_ratio",
    "signal_density",
    "n_samples",
    "chance",
    "dataset",
    "data_source",
    "preset",
)
FIELDS = (
    "network",
    "label",
    "noise_ratio",
    "noise_relative_to",
    "noise_pixel_ratio",
    "signal_density",
    "top1",
    "top1_sd",
    "top1_ci_low",
    "top1_ci_high",
    "n_seeds",
    "top1_by_seed",
    "n_samples",
    "chance",
    "dataset",
    "data_source",
    "preset",
)


def summarise(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    """One row per (network, noise ratio) of the per-seed rows, in their first order; each (network, ratio)
    must be measured for the same seeds."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["network"], row["noise_ratio"]), []).append(row)
    seeds = {key: sorted(int(r["seed"]) for r in group) for key, group in groups.items()}
    expected = next(iter(seeds.values()))
    for key, found in seeds.items():
        if found != expected:
            raise ValueError(f"network {key[0]} at noise {key[1]}: seeds {found}, other rows {expected}")
    out = []
    for (network, ratio), group in groups.items():
        group = sorted(group, key=lambda r: int(r["seed"]))
        summary = summarize([float(r["top1"]) for r in group])
        first = group[0]
        out.append(
            {
                "network": network,
                "label": first["label"],
                "noise_ratio": ratio,
                "top1": round(summary.mean, 4),
                "top1_sd": "" if summary.sd is None else round(summary.sd, 4),
                "top1_ci_low": "" if summary.low is None else round(summary.low, 4),
                "top1_ci_high": "" if summary.high is None else round(summary.high, 4),
                "n_seeds": summary.n,
                "top1_by_seed": ";".join(f"{r['seed']}:{r['top1']}" for r in group),
                **{key: first.get(key, "") for key in SHARED},
            }
        )
    return out


def main(csv_files: list[Path], out_file: Path) -> list[dict[str, object]]:
    rows = [row for path in csv_files for row in read_csv_rows(path, REQUIRED)]
    summary = summarise(rows)
    atomic_write_csv(out_file, FIELDS, summary)
    return summary


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main([Path(p) for p in smk.input.csv], Path(smk.output.csv))


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path, nargs="+", help="colearning/noise/seed<k>.csv files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    main(args.csv, args.out)
