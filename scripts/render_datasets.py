"""Render the datasets table: per dataset its source, raw files and their size on disk, the time taken to
generate (stand-in) and preprocess it, the cache size, the split sizes, the bad sample files skipped,
classes and the sample shape.

Reads only what the data rules left behind: each raw copy's ``.complete`` marker and files, each cache's
``preprocess.json``, ``split.json`` and ``test.npz`` (one sample is loaded for its shape), and each
dataset's order probe (``probe.json``, see ``bidl.probe``).

Snakemake: ``params.datasets``, ``params.sources`` (each dataset's source), ``params.preset`` and
``params.description``; ``input.markers``, ``input.infos`` and ``input.probes`` in that order; output
``markdown`` (its stem names the CSV and LaTeX files); ``log[0]`` receives the output. Command line::

    python scripts/render_datasets.py --config config/config.yaml --cache resources/cache/default \\
        --results results/default --out datasets
"""

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bidl.data.catalog import describe_source, get_dataset, open_split
from bidl.io import redirect_output
from bidl.pipeline.cli import setup_logging
from bidl.pipeline.tables import write_table

COLUMNS = (
    "dataset",
    "data source",
    "raw files",
    "raw MB on disk",
    "generated in s",
    "preprocessed in s",
    "cache MB",
    "train",
    "test",
    "skipped",
    "classes",
    "sample (T first)",
    "chance %",
    "order-aware probe %",
    "same, time-shuffled %",
    "order-blind probe %",
    "order matters (measured)",
    "stand-in task",
    "split",
)

#: the order-aware probe must beat both controls by this many points for "order matters"
ORDER_MARGIN = 10.0


def disk_usage(root: Path) -> tuple[int, int, int]:
    """``(files, bytes allocated on disk, bytes of content)`` of everything under ``root``."""
    files = allocated = content = 0
    for folder, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            files += 1
            allocated += st.st_blocks * 512
            content += st.st_size
    return files, allocated, content


def order_verdict(probe: dict[str, Any]) -> str:
    """ "yes" when the order-aware probe beats the time-shuffled and the order-blind controls by
    :data:`ORDER_MARGIN` points, else "no"."""
    margin = probe["order"] - max(probe["order_time_shuffled"], probe["static"])
    return f"{'yes' if margin >= ORDER_MARGIN else 'no'} ({margin:+.1f})"


def dataset_row(dataset: str, source: str, marker: Path, info_file: Path, probe_file: Path) -> dict[str, Any]:
    meta = get_dataset(dataset)
    cache = info_file.parent
    info = json.loads(info_file.read_text())
    split = json.loads((cache / "split.json").read_text())
    files, allocated, content = disk_usage(marker.parent)
    generated = json.loads(marker.read_text()).get("seconds") if source == "standin" else None
    x, _ = open_split(dataset, cache / "test.npz")[0]
    cache_allocated = disk_usage(cache)[1]
    probe = json.loads(probe_file.read_text())
    return {
        "dataset": meta.title,
        "data source": describe_source(dataset, source),
        "raw files": files,
        "raw MB on disk": f"{allocated / 1e6:.1f}",
        "raw MB of content": content / 1e6,
        "generated in s": "-" if generated is None else f"{generated:.1f}",
        "generated seconds": generated or 0.0,
        "preprocessed in s": f"{info['seconds']:.1f}",
        "preprocess seconds": info["seconds"],
        "cache MB": f"{cache_allocated / 1e6:.1f}",
        "cache bytes": cache_allocated,
        "raw bytes": allocated,
        "train": split["splits"]["train"]["n"],
        "test": split["splits"]["test"]["n"],
        "skipped": info.get("skipped", "-"),
        "classes": len(split["class_names"]),
        "sample (T first)": f"{list(x.shape)} {str(x.dtype).replace('torch.', '')}",
        "chance %": f"{probe['chance']:.1f}",
        "order-aware probe %": f"{probe['order']:.1f}",
        "same, time-shuffled %": f"{probe['order_time_shuffled']:.1f}",
        "order-blind probe %": f"{probe['static']:.1f}",
        "order matters (measured)": order_verdict(probe),
        "stand-in task": meta.standin_description if source == "standin" else "-",
        "split": split["split_source"],
        "reads raw": meta.reads_raw,
    }


def render(
    datasets: list[str],
    markers: list[Path],
    infos: list[Path],
    probes: list[Path],
    stem: Path,
    *,
    preset: str,
    description: str,
    sources: dict[str, str],
) -> list[dict[str, Any]]:
    """The datasets table, one row per dataset of ``datasets`` from its raw copy's marker, its cache's
    ``preprocess.json`` and its ``probe.json`` (in that order), as ``<stem>.md``, ``.csv`` and ``.tex``;
    ``sources[dataset]`` the source the preset reads it from (``standin`` or a real source's name),
    ``preset`` and ``description`` the preset's name and description. Returns the rows."""
    missing = sorted(set(datasets) - set(sources))
    if missing:
        raise ValueError(f"datasets table: no source given for {missing} (given: {sorted(sources)})")
    rows = [
        dataset_row(d, sources[d], Path(m), Path(i), Path(p))
        for d, m, i, p in zip(datasets, markers, infos, probes, strict=True)
    ]
    disk = sum(r["raw bytes"] + r["cache bytes"] for r in rows) / 1e6
    content = sum(r["raw MB of content"] for r in rows)
    seconds = sum(r["generated seconds"] + r["preprocess seconds"] for r in rows)
    notes = [
        f"Config: `{preset}` ({description}).",
        f"All raw copies and caches: {disk:.1f} MB on disk ({content:.1f} MB of raw file content); "
        f"generating the stand-ins and preprocessing took {seconds:.1f} s in all (one job each, as measured "
        "by the jobs themselves).",
        "Sample: the first test sample as the dataset class returns it (time first). Skipped: bad sample "
        "files left out under `on_bad_sample: skip` (listed in the cache's split.json; 0 under `error`, "
        "which stops at the first).",
        *(
            f"{r['dataset']}: the cache is an index of the raw files, read from the raw copy when a sample "
            "is loaded (cache MB excludes them)."
            for r in rows
            if r["reads raw"]
        ),
        "Probes (bidl.probe, trained on the train split, top-1 on the test split): order-aware = temporal "
        "convolutions over per-step features; time-shuffled = the same model on test inputs with their "
        "timesteps permuted; order-blind = an MLP on the features averaged over time. Order matters when the "
        f"order-aware probe beats both controls by at least {ORDER_MARGIN:.0f} points (margin in brackets).",
    ]
    paths = write_table(stem, f"Datasets (preset `{preset}`)", COLUMNS, rows, notes)
    print(f"datasets table: {len(rows)} datasets -> {', '.join(map(str, paths))}", flush=True)
    return rows


def config_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """What the table reads of a config, as the datasets rule passes it in ``params``: the preset's name and
    description and each declared dataset's source."""
    return {
        "preset": config["name"],
        "description": config.get("description", ""),
        "sources": {d: entry["source"] for d, entry in config["datasets"].items()},
    }


def main(
    config: dict[str, Any],
    datasets: list[str],
    markers: list[Path],
    infos: list[Path],
    probes: list[Path],
    stem: Path,
) -> list[dict[str, Any]]:
    """The datasets table with what it reads of ``config`` taken from it (:func:`config_inputs`)."""
    return render(datasets, markers, infos, probes, stem, **config_inputs(config))


def _cli() -> None:
    from bidl.data.catalog import DATASET_NAMES
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="resources/cache/<preset>")
    parser.add_argument("--resources", type=Path, default=Path("resources"))
    parser.add_argument("--results", type=Path, required=True, help="results/<preset> (probes/<dataset>/)")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    config = load_yaml(args.config)
    datasets = [d for d in DATASET_NAMES if d in config["datasets"]]
    standin = config.get("standin_folder", "standin")
    folders = {d: config["datasets"][d]["source"] for d in datasets}
    folders = {d: standin if f == "standin" else f for d, f in folders.items()}
    markers = [args.resources / d / folders[d] / ".complete" for d in datasets]
    infos = [args.cache / d / "preprocess.json" for d in datasets]
    probes = [args.results / "probes" / d / "probe.json" for d in datasets]
    main(config, datasets, markers, infos, probes, args.out)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        setup_logging(None)  # onto the log: stderr is redirected before the handler takes it
        render(
            list(smk.params.datasets),
            [Path(p) for p in smk.input.markers],
            [Path(p) for p in smk.input.infos],
            [Path(p) for p in smk.input.probes],
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
            sources=smk.params.sources,
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
