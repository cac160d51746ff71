"""Convert a raw RGB-gesture copy (placed or stand-in) to cached difference frames [N, 60, 2, 40, 40].

Snakemake: ``input.marker`` (raw root = its parent); params ``threshold``, ``size``, ``n_frames`` (all
optional); outputs ``train``, ``test``, ``split`` (all in one folder); ``log[0]``. Command line: ``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.rgb_gesture import N_FRAMES, SIZE, THRESHOLD, preprocess

log = logging.getLogger("preprocess_rgb_gesture")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    threshold: float = THRESHOLD,
    size: int = SIZE,
    n_frames: int = N_FRAMES,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(raw_root, out_dir, threshold=threshold, size=size, n_frames=n_frames)
    log.info(
        "train %d, test %d clips -> %s in %.1f s",
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
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="grey levels (0..255)")
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--n-frames", type=int, default=N_FRAMES)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(args.raw_root, args.out_dir, threshold=args.threshold, size=args.size, n_frames=args.n_frames)


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
        threshold=float(_params.get("threshold", THRESHOLD)),
        size=int(_params.get("size", SIZE)),
        n_frames=int(_params.get("n_frames", N_FRAMES)),
    )
elif __name__ == "__main__":
    _cli()
