"""The bench as a figure, drawn from bench.csv only (no re-measuring): one panel per workload family, bars of
the median time per implementation (min-max whiskers, log scale), the bandwidth floor drawn over each group,
and on each bar its ratio to the floor (LIF workloads) or to bidl's time (the DVS128 training step)."""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bidl.io import atomic_path, read_csv_rows, redirect_output  # noqa: E402
from bidl.pipeline.bench import COLUMNS  # noqa: E402

COLOURS = {
    "bidl": "tab:blue",
    "bidl (reference step loop)": "lightsteelblue",
    "SpikingJelly": "tab:orange",
    "snnTorch": "tab:green",
    "torch Linear alone": "tab:gray",
}
PANELS = (  # title, which workloads, log scale
    ("LIF layer", lambda w: w == "LIF layer", True),
    ("Linear + LIF (Open Neuromorphic)", lambda w: w.startswith("Linear+LIF"), True),
    ("DVS128 training step", lambda w: w.startswith("DVS128"), False),
)


def _tick(workload: str, pass_: str) -> str:
    if workload.startswith("DVS128 training step"):  # "DVS128 training step (<experiment>)"
        return workload.removeprefix("DVS128 training step").strip(" ()")
    return f"{workload.removeprefix('Linear+LIF').removeprefix('LIF layer').strip()}\n{pass_}".strip()


def _family(implementation: str) -> str:
    return next((f for f in sorted(COLOURS, key=len, reverse=True) if implementation.startswith(f)), "other")


def _number(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def main(csv_file: Path, out_file: Path, preset: str = "") -> None:
    rows = read_csv_rows(csv_file, COLUMNS)
    panels = [(title, [r for r in rows if keep(r["workload"])], log) for title, keep, log in PANELS]
    panels = [panel for panel in panels if panel[1]]
    widths = [max(1.2, len({(r["workload"], r["pass"]) for r in chosen})) for _, chosen, _ in panels]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(2.3 * sum(widths) + 1, 4.4), squeeze=False, width_ratios=widths
    )
    seen = {}
    for ax, (title, chosen, log) in zip(axes[0], panels, strict=True):
        groups = list(dict.fromkeys((r["workload"], r["pass"]) for r in chosen))
        for g, (workload, pass_) in enumerate(groups):
            members = [r for r in chosen if (r["workload"], r["pass"]) == (workload, pass_)]
            bidl = next((float(r["median_s"]) for r in members if r["implementation"] == "bidl"), None)
            linear = next(
                (float(r["median_s"]) for r in members if _family(r["implementation"]).startswith("torch")),
                0.0,
            )
            step = 0.8 / len(members)
            for i, r in enumerate(members):
                x = g + (i - (len(members) - 1) / 2) * step
                median, low, high = (float(r[k]) * 1e3 for k in ("median_s", "min_s", "max_s"))
                family = _family(r["implementation"])
                whiskers = [[median - low], [high - median]]
                colour = COLOURS.get(family, "tab:purple")
                bar = ax.bar(
                    x, median, step * 0.9, color=colour, yerr=whiskers, capsize=2, error_kw={"lw": 0.8}
                )
                seen.setdefault(family, bar)
                ratio = _number(r["ratio_to_floor"])
                if ratio is not None:
                    label = f"{ratio:.1f}x floor"
                elif bidl and family != "bidl" and not family.startswith("torch"):
                    label = f"{float(r['median_s']) / bidl:.2f}x bidl"
                else:
                    label = ""
                ax.annotate(
                    label,
                    (x, high),
                    xytext=(0, 3),
                    textcoords="offset points",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                )
            floor = next((_number(r["floor_s"]) for r in members if _number(r["floor_s"])), None)
            if floor is not None:
                line = ax.hlines((linear + floor) * 1e3, g - 0.45, g + 0.45, colors="black", linestyles="--")
                seen.setdefault("bandwidth floor (Linear+LIF: Linear alone + LIF floor)", line)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_tick(w, p) for w, p in groups], fontsize=7)
        if log:
            ax.set_yscale("log")
            ax.margins(y=0.35)
        else:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].set_ylabel("median time per call (ms, log)")
    fig.legend(
        seen.values(), seen.keys(), loc="lower center", ncol=min(len(seen), 6), fontsize=7, frameon=False
    )
    fig.suptitle(
        f"Neuron speed on this CPU, bidl against SpikingJelly and snnTorch (preset {preset})", fontsize=9
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, format=out_file.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    print(f"bench figure: {len(panels)} panels of {len(rows)} measurements -> {out_file}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(Path(smk.input.csv), Path(smk.output.figure), smk.params.preset)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path, help="results/<preset>/bench/bench.csv")
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="")
    args = parser.parse_args()
    main(args.csv, args.out, args.preset)
