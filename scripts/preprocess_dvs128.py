"""Convert a raw DVS128 Gesture copy (real or stand-in) to cached count frames.

Snakemake: ``input.marker`` (raw root = its parent); params ``layout``, ``window_us``, ``n_frames``,
``size``; outputs ``train``, ``test``, ``split`` (all in one folder); ``log[0]``. Command line: ``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.dvs128 import LAYOUTS, preprocess

log = logging.getLogger("preprocess_dvs128")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    layout: str = "ibm_aedat31",
    window_us: int = 25_000,
    n_frames: int = 60,
    size: int = 40,
    val_fraction: float | None = None,
    seed: int = 0,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(
        raw_root,
        out_dir,
        layout=layout,
        window_us=window_us,
        n_frames=n_frames,
        size=size,
        val_fraction=val_fraction,
        seed=seed,
    )
    log.info(
        "train %d, test %d samples -> %s in %.1f s",
        summary["splits"]["train"]["n"],
        summary["splits"]["test"]["n"],
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
    parser.add_argument("--layout", choices=LAYOUTS, default="ibm_aedat31")
    parser.add_argument("--window-us", type=int, default=25_000)
    parser.add_argument("--n-frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        args.out_dir,
        layout=args.layout,
        window_us=args.window_us,
        n_frames=args.n_frames,
        size=args.size,
        val_fraction=args.val_fraction,
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
        layout=str(_params["layout"]),
        window_us=int(_params["window_us"]),
        n_frames=int(_params["n_frames"]),
        size=int(_params["size"]),
        val_fraction=_params.get("val_fraction"),
        seed=int(_params.get("seed", 0)),
    )
elif __name__ == "__main__":
    _cli()
