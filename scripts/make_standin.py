"""Generate a dataset's stand-in in the real raw on-disk format, then write ``<raw_root>/.complete``.

One entry for every dataset: ``bidl.data.<module>.generate_standin(raw_root, seed=..., **params)`` writes the
files atomically; this script times it, sizes what it wrote and writes the marker last, so the marker's
presence means the whole copy is in place. A run killed on the way leaves its staging folder
(``.<raw_root name>.tmp-*``) beside ``raw_root``; the next run removes it (:mod:`bidl.data.staging`).

Snakemake: ``output.marker`` is ``<raw_root>/.complete``; params ``dataset`` and ``standin`` (the keyword
arguments of the generator, ``seed`` included); ``log[0]``. Command line::

    python scripts/make_standin.py dvs128_gesture resources/dvs128_gesture/standin --param reps_per_class=2
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bidl.data.catalog import DATASET_NAMES, get_dataset
from bidl.io import atomic_write_text, redirect_output
from bidl.pipeline.cli import add_param_option, cli_params, setup_logging

log = logging.getLogger("make_standin")


def main(dataset: str, raw_root: str | Path, *, marker: str | Path | None = None, **params: Any) -> Path:
    """Write the stand-in of ``dataset`` under ``raw_root`` with the generator's keyword ``params``."""
    info = get_dataset(dataset)
    module_name, pattern = info.module, info.standin_files
    generate = info.load_module().generate_standin
    raw_root = Path(raw_root)
    marker = Path(marker) if marker is not None else raw_root / ".complete"
    start = time.perf_counter()
    generate(raw_root, **params)
    files = sorted(raw_root.glob(pattern))
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    seconds = time.perf_counter() - start
    log.info("%s: wrote %d files (%.1f MB) to %s in %.1f s", dataset, len(files), size_mb, raw_root, seconds)
    info = {
        "generator": f"bidl.data.{module_name}.generate_standin",
        "dataset": dataset,
        "params": params,
        "files": len(files),
        "megabytes": round(size_mb, 2),
        "seconds": round(seconds, 2),
    }
    atomic_write_text(marker, json.dumps(info, indent=1) + "\n")
    return marker


def _cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASET_NAMES)
    parser.add_argument("raw_root", type=Path)
    add_param_option(parser, "a keyword argument of the dataset's generate_standin")
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    params = cli_params(parser, args)
    setup_logging(args.log)
    main(args.dataset, args.raw_root, **params)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        setup_logging(None)  # onto the log: stderr is redirected before the handler takes it
        main(
            smk.params["dataset"],
            Path(smk.output["marker"]).parent,
            marker=smk.output["marker"],
            **dict(smk.params["standin"]),
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
