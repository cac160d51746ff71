"""Convert a raw 20BN-Jester copy (real or stand-in) to cached, resized uint8 clips (ragged frames + offsets).

Snakemake: ``input.marker`` (raw root = its parent); params ``size``, ``min_frames``, ``max_clips``, ``seed``
(all optional); outputs ``train``, ``test``, ``split`` (all in one folder); ``log[0]``. Command line:
``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.jester import preprocess

log = logging.getLogger("preprocess_jester")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    size: int = 32,
    min_frames: int = 16,
    max_clips: int | None = None,
    seed: int = 0,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(raw_root, out_dir, size=size, min_frames=min_frames, max_clips=max_clips, seed=seed)
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


def _optional_int(value: str | int | None) -> int | None:
    return None if value is None or str(value).lower() in ("none", "null", "") else int(value)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_root")
    parser.add_argument("out_dir")
    parser.add_argument("--size", type=int, default=32, help="frames are resized to size x size")
    parser.add_argument("--min-frames", type=int, default=16, help="drop shorter clips (BIDL: 16)")
    parser.add_argument("--max-clips", type=_optional_int, default=None, help="seeded subset per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        args.out_dir,
        size=args.size,
        min_frames=args.min_frames,
        max_clips=args.max_clips,
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
        size=int(_params.get("size", 32)),
        min_frames=int(_params.get("min_frames", 16)),
        max_clips=_optional_int(_params.get("max_clips")),
        seed=int(_params.get("seed", 0)),
    )
elif __name__ == "__main__":
    _cli()
