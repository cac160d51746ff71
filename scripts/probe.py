"""Order probe of one dataset: an order-aware and an order-blind classifier on its cached splits, and the
order-aware one on time-shuffled test inputs (``bidl.probe.run_probe``). Writes ``<out_dir>/probe.json``.

Snakemake: ``input.train``, ``input.test``, ``input.split`` (and ``input.raw``, the raw copy's marker, for a
dataset whose class reads its raw files: Jester); ``output.json``; params ``dataset``, ``probe`` (keyword
arguments of ``run_probe``), ``seed``, ``loader`` (dataset class keywords); ``log[0]``.
Command line::

    python scripts/probe.py luna16 resources/cache/default/luna16 results/default/probes/luna16 \\
        --param epochs=20
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import get_dataset, open_split
from bidl.io import atomic_write_text, redirect_output
from bidl.pipeline.cli import add_param_option, cli_params, setup_logging
from bidl.probe import run_probe

log = logging.getLogger("probe")


def main(
    dataset: str,
    cache: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    loader: dict[str, Any] | None = None,
    threads: int = 1,
    **probe: Any,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    split = json.loads((cache / "split.json").read_text())
    loader = dict(loader or {})
    train_set = open_split(dataset, cache / "train.npz", train=True, **loader)
    test_set = open_split(dataset, cache / "test.npz", **loader)
    result = run_probe(train_set, test_set, len(split["class_names"]), out_dir, seed=seed, **probe)
    result = {"dataset": dataset, "expected_order_dependent": get_dataset(dataset).temporal, **result}
    log.info(
        "%s: order-aware %.1f %%, time-shuffled %.1f %%, order-blind %.1f %% (chance %.1f %%)",
        dataset,
        result["order"],
        result["order_time_shuffled"],
        result["static"],
        result["chance"],
    )
    atomic_write_text(out_dir / "probe.json", json.dumps(result, indent=1) + "\n")
    return result


def _cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset")
    parser.add_argument("cache", type=Path, help="folder with train.npz, test.npz, split.json")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    add_param_option(parser, "a keyword argument of bidl.probe.run_probe")
    args = parser.parse_args()
    params = cli_params(parser, args)
    setup_logging(None)
    main(args.dataset, args.cache, args.out_dir, seed=args.seed, **params)


def _from_snakemake(smk) -> None:
    out = Path(smk.output["json"])
    if out.name != "probe.json":
        raise ValueError(f"output.json must be named <out_dir>/probe.json, got {out}")
    with redirect_output(smk.log[0]):
        setup_logging(None)
        main(
            smk.params["dataset"],
            Path(smk.input["split"]).parent,
            out.parent,
            seed=smk.params["seed"],
            loader=smk.params["loader"],
            threads=smk.threads,
            **dict(smk.params["probe"]),
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
