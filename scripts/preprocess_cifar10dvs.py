"""Convert a raw CIFAR10-DVS copy (real or stand-in) to a seeded split and cached count frames.

Snakemake: ``input.marker`` (raw root = its parent); params ``framing`` ("time" | "count"), ``window_us``,
``n_frames``, ``size``, ``test_fraction``, ``seed``; outputs ``train``, ``test``, ``split`` (all in one
folder); ``log[0]``. Command line: ``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.cifar10dvs import FRAMINGS, WINDOW_US, preprocess

log = logging.getLogger("preprocess_cifar10dvs")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    framing: str = "time",
    window_us: int = WINDOW_US,
    n_frames: int = 10,
    size: int = 128,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(
        raw_root,
        out_dir,
        framing=framing,
        window_us=window_us,
        n_frames=n_frames,
        size=size,
        test_fraction=test_fraction,
        seed=seed,
    )
    log.info(
        "train %d, test %d recordings (%s framing) -> %s in %.1f s",
        summary["splits"]["train"]["n"],
        summary["splits"]["test"]["n"],
        framing,
        out_dir,
        time.perf_counter() - start,
    )
    return summary


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_root")
    parser.add_argument("out_dir")
    parser.add_argument("--framing", choices=FRAMINGS, default="time")
    parser.add_argument("--window-us", type=int, default=WINDOW_US)
    parser.add_argument("--n-frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        args.out_dir,
        framing=args.framing,
        window_us=args.window_us,
        n_frames=args.n_frames,
        size=args.size,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )


if "snakemake" in globals():
    _sm = globals()["snakemake"]
    _setup_logging(_sm.log[0] if len(_sm.log) else None)
    _outputs = {Path(_sm.output[k]).parent for k in ("train", "test", "split")}
    if len(_outputs) != 1:
        raise ValueError(f"outputs train, test and split must share one folder, got {sorted(_outputs)}")
    _params = _sm.params
    main(
        Path(_sm.input["marker"]).parent,
        _outputs.pop(),
        framing=str(_params.get("framing", "time")),
        window_us=int(_params.get("window_us", WINDOW_US)),
        n_frames=int(_params.get("n_frames", 10)),
        size=int(_params.get("size", 128)),
        test_fraction=float(_params.get("test_fraction", 0.1)),
        seed=int(_params.get("seed", 0)),
    )
elif __name__ == "__main__":
    _cli()
