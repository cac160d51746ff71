"""Convert a dataset's raw copy (real or stand-in) into its cached ST tensors and split file.

One entry for every dataset: ``bidl.data.<module>.preprocess(raw_root, out_dir, **params)`` writes
``out_dir/{train,test}.npz`` and ``out_dir/split.json`` atomically and returns split.json's content; see each
module for its parameters (DVS128: ``layout, window_us, n_frames, size``; CIFAR10-DVS: ``framing, window_us,
n_frames, size, test_fraction``; LUNA16: ``label_source, max_negatives_per_scan, ...``).

Besides, ``out_dir/preprocess.json`` records the parameters, the seconds it took, the cache's size (for a
dataset whose cache is an index of the raw files, catalog ``reads_raw``, that size excludes them) and
``skipped``: how many bad sample files the ``on_bad_sample: skip`` policy left out (split.json's
``skipped`` lists them with their problems; 0 under ``error``, which stops at the first). What a run killed
on the way left (its staging folder beside ``out_dir``, a half-written preprocess.json) is removed first
(:mod:`bidl.data.staging`).

Snakemake: ``input.marker`` (raw root = its parent); params ``dataset`` and ``preprocess`` (the keyword
arguments); outputs ``train``, ``test``, ``split``, ``info`` in one folder; ``log[0]``. Command line::

    python scripts/preprocess.py dvs128_gesture resources/dvs128_gesture/standin out --param size=40
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bidl.data.catalog import DATASET_NAMES, get_dataset
from bidl.data.staging import remove_leftovers
from bidl.errors import ConfigError
from bidl.io import atomic_write_text, redirect_output
from bidl.pipeline.cli import add_param_option, cli_params, setup_logging

log = logging.getLogger("preprocess")


def main(dataset: str, raw_root: str | Path, out_dir: str | Path, **params: Any) -> dict:
    """Preprocess ``dataset`` from ``raw_root`` into ``out_dir``; return the split summary."""
    meta = get_dataset(dataset)
    preprocess = meta.load_module().preprocess
    remove_leftovers(out_dir, ".preprocess.json.")  # the temporary file of a run killed while writing it
    start = time.perf_counter()
    summary = preprocess(raw_root, out_dir, **params)
    seconds = time.perf_counter() - start
    counts = {name: split.get("n", split) for name, split in summary.get("splits", {}).items()}
    log.info("%s: %s -> %s in %.1f s", dataset, counts or "done", out_dir, seconds)
    empty = sorted(name for name, n in counts.items() if isinstance(n, int) and n == 0)
    if empty:  # every later rule would fail on it, far from the cause
        for name in ("train.npz", "test.npz", "split.json"):
            Path(out_dir, name).unlink(missing_ok=True)
        raise ConfigError(
            f"datasets.{dataset}: the {' and '.join(empty)} split of {raw_root} is empty ({counts}); give "
            "the stand-in more samples or change the split's fraction (preprocess.test_fraction where it has "
            "one)"
        )
    skipped = summary.get("skipped", {})
    if skipped.get("n"):
        log.warning(
            "%s: %d bad %s skipped (on_bad_sample: skip), listed in %s",
            dataset,
            skipped["n"],
            skipped.get("unit", "sample files"),
            Path(out_dir) / "split.json",
        )
    cache_bytes = sum(p.stat().st_size for p in Path(out_dir).glob("*.npz"))
    info = {
        "dataset": dataset,
        "preprocess": f"bidl.data.{meta.module}.preprocess",
        "raw_root": str(raw_root),
        "params": params,
        "samples": counts,
        "skipped": int(summary.get("skipped", {}).get("n", 0)),
        "seconds": round(seconds, 2),
        "cache_megabytes": round(cache_bytes / 1e6, 2),
    }
    atomic_write_text(Path(out_dir) / "preprocess.json", json.dumps(info, indent=1) + "\n")
    return summary


def _cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASET_NAMES)
    parser.add_argument("raw_root", type=Path)
    parser.add_argument("out_dir", type=Path)
    add_param_option(parser, "a keyword argument of the dataset's preprocess")
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    params = cli_params(parser, args)
    setup_logging(args.log)
    main(args.dataset, args.raw_root, args.out_dir, **params)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        setup_logging(None)  # onto the log: stderr is redirected before the handler takes it
        folders = {Path(smk.output[k]).parent for k in ("train", "test", "split", "info")}
        if len(folders) != 1 or Path(smk.output["info"]).name != "preprocess.json":
            raise ValueError(
                "outputs train, test, split, info (preprocess.json) must share a folder, got "
                f"{sorted(folders)}"
            )
        main(
            smk.params["dataset"],
            Path(smk.input["marker"]).parent,
            folders.pop(),
            **dict(smk.params["preprocess"]),
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
