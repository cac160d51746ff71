"""Render the bench (bidl.pipeline.bench) from its measurement files only: per workload, pass and
implementation the median, min and max time, peak memory, the LIF's bandwidth floor and the ratio to it, and
how many times bidl is faster than each peer measured in the same run; the notes say where and how it was
measured. Markdown, CSV and LaTeX."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.io import read_csv_rows, redirect_output
from bidl.pipeline.bench import COLUMNS, SUMMARY_COLUMNS, speedups, summary_rows
from bidl.pipeline.tables import source_note, write_table

# what the bench's environment record says about malloc (bidl.runtime.allocator_in_use)
_ALLOCATOR = {
    "retain": "Allocator: glibc malloc keeping freed memory for reuse (bidl.runtime), for every "
    "implementation alike: no step page-faults its tensors in anew.",
    "system": "Allocator: glibc malloc with its defaults (large blocks mapped anew on each allocation).",
}


def _ratio(ratios: dict[tuple[str, str, str], float], workload: str, pass_: str, peer: str) -> str:
    value = ratios.get((workload, pass_, peer))
    return "not measured" if value is None else f"{value:.2f}x"


def notes(
    preset: str, description: str, rows: list[dict[str, str]], environment: dict[str, Any]
) -> list[str]:
    """The table's notes: the preset (``preset``, ``description``), where and how the bench measured
    (``environment``), and what the rows found."""
    ratios = speedups(rows)
    settings = environment["settings"]
    layer = "LIF layer"
    dvs128 = next((r["workload"] for r in rows if r["part"] == "b"), "")
    bandwidth = environment["bandwidth"]
    numba = (
        f"numba {environment['numba']} ({environment['numba_threads']} threads, "
        f"{environment['numba_threading_layer']} layer)"
        if environment.get("numba_threads")
        else f"numba {environment.get('numba') or 'not installed'} (no numba kernel ran)"
    )
    env = environment
    where = (
        f"Measured alone in one process on {env['cpu']} ({env['cores']} cores): torch {env['torch']} with "
        f"{env['torch_threads']} threads, {numba}; bidl {env['bidl']} (default neuron path: "
        f"{env['bidl_default_path']}), SpikingJelly {env['spikingjelly']} (LIFNode multi-step, its default "
        f"CPU path), snnTorch {env['snntorch']} (Leaky, a Python loop over T). Median, min and max of "
        f"{settings['repeats']} timed runs after {settings['warmup']} warm-up run(s); peak MB = the growth "
        "of the resident set in one more run (VmHWM after clear_refs, less VmRSS before; bidl's pool of "
        "kernel output buffers emptied first, so that the run allocates what it uses). "
        + _ALLOCATOR.get(env.get("allocator"), f"Allocator: {env.get('allocator', 'not recorded')}.")
    )
    same = (
        "The same neuron in all three: bidl LIF(alpha, theta) = SpikingJelly LIFNode(tau = 1 / (1 - alpha), "
        "decay_input = False, v_threshold = theta, v_reset = 0) = snnTorch Leaky(beta = alpha, threshold = "
        f"theta, reset_mechanism = zero); surrogate gradient {settings['surrogate']} in all three (snnTorch "
        "detaches its reset). forward = as training runs it (inputs require a gradient); forward+backward "
        "adds the backward from a random output gradient. Each library gets its own layout: bidl "
        "[B, T, ...], the peers [T, B, ...]."
    )
    floor = (
        f"Bandwidth floor (part c): dst.copy_(src) on {bandwidth['copy_mb']} MB of float32 moved "
        f"{bandwidth['bytes_per_s'] / 1e9:.2f} GB/s (read + write). A LIF layer must at least read x and "
        "write y (forward), and in the backward read x again (to recompute the membranes), read grad_y and "
        "write grad_x (fp32): floor = those bytes / the bandwidth; x floor = the time over it. Linear+LIF: "
        "the Linear (the same GEMM on [T*B, n] in every implementation) is bound by arithmetic, so the floor "
        "is compared with the LIF part only: the median less the median of the Linear alone."
    )
    headline = (
        "bidl (default path) against SpikingJelly in this run: LIF layer forward+backward "
        f"{_ratio(ratios, layer, 'forward+backward', 'SpikingJelly')} faster, forward "
        f"{_ratio(ratios, layer, 'forward', 'SpikingJelly')}; DVS128 training step "
        f"{_ratio(ratios, dvs128, 'training step', 'SpikingJelly')}, against the same "
        "network built from SpikingJelly layers with bidl's weights and the experiment's optimiser."
    )
    found = [headline]
    bn_layer = next((r["workload"] for r in rows if r["workload"].startswith("LIF layer, BatchNorm")), None)
    if bn_layer:
        found.append(
            f"{bn_layer}: bidl's default path against its reference step loop (the specification; no peer "
            "library has BatchNorm on the membrane): forward+backward "
            f"{_ratio(ratios, bn_layer, 'forward+backward', 'bidl (reference step loop)')} faster, forward "
            f"{_ratio(ratios, bn_layer, 'forward', 'bidl (reference step loop)')}."
        )
    paper = next((r["workload"] for r in rows if "paper configuration" in r["workload"]), None)
    if paper:
        found.append(
            f"{paper}: bidl {_ratio(ratios, paper, 'training step', 'SpikingJelly')} faster than the network "
            "SpikingJelly users build for it (BatchNorm on the synaptic current, over all B*T frames at "
            "once: less work than a BatchNorm per step on the membrane, which its LIFNode cannot hold) and "
            f"{_ratio(ratios, paper, 'training step', 'bidl (reference step loop)')} faster than its own "
            "reference step loop."
        )
    eim = next((r["workload"] for r in rows if r["part"] == "d"), None)
    if eim:
        ort = ratios.get((eim, "EIM step", "ONNX Runtime"))
        eager = ratios.get((eim, "EIM step", "bidl (eager EIM)"))
        found.append(
            f"{eim}: the compiled single-step graph (bidl.stream) takes "
            + ("-" if ort is None else f"{1 / ort:.2f}x")
            + " ONNX Runtime's time per step on the exported graph of the same network (< 1: faster), and "
            + ("-" if eager is None else f"{1 / eager:.2f}x")
            + " the time of bidl's modules stepped eagerly (each repeat streams the sequence from a reset "
            "and times every step; its median step, then the median over the repeats)."
        )
    config = {"name": preset, "description": description}
    data = source_note(config, ["random inputs of the shapes listed (the bench reads no dataset)"])
    return [data, where, same, floor, *found]


def render(
    csv_file: Path, environment_file: Path, stem: Path, *, preset: str, description: str
) -> list[Path]:
    """The bench table of ``bench.csv`` and ``environment.json``, as ``<stem>.md``, ``.csv`` and ``.tex``
    (returned); ``preset`` and ``description`` the preset's name and description."""
    rows = read_csv_rows(csv_file, COLUMNS)
    environment = json.loads(Path(environment_file).read_text())
    title = f"Neuron speed: bidl against SpikingJelly and snnTorch (preset `{preset}`)"
    summary = summary_rows(rows)
    paths = write_table(stem, title, SUMMARY_COLUMNS, summary, notes(preset, description, rows, environment))
    print(
        f"bench table: {len(summary)} rows ({len(rows)} measurements) -> {', '.join(map(str, paths))}",
        flush=True,
    )
    return paths


def main(config: dict[str, Any], csv_file: Path, environment_file: Path, stem: Path) -> list[Path]:
    """The bench table with the preset's name and description taken from ``config``."""
    return render(
        csv_file, environment_file, stem, preset=config["name"], description=config.get("description", "")
    )


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        render(
            Path(smk.input.csv),
            Path(smk.input.environment),
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--bench", type=Path, required=True, help="results/<preset>/bench")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    main(load_yaml(args.config), args.bench / "bench.csv", args.bench / "environment.json", args.out)
