"""Generate the RGB-gesture stand-in (grey JPEG frame folders at 25 fps, 10 trajectory classes).

Snakemake: ``output.marker`` is ``<raw_root>/.complete`` (raw_root = its parent); params ``seed``,
``n_train``, ``n_val``; optional ``log[0]``. Command line: ``--help``.
"""

import argparse
import json
import logging
import time
from pathlib import Path

from bidl.data.rgb_gesture import generate_standin

log = logging.getLogger("make_rgb_gesture_standin")


def main(
    raw_root: str | Path,
    *,
    seed: int = 0,
    n_train: int = 300,
    n_val: int = 100,
    marker: str | Path | None = None,
) -> Path:
    """Write the stand-in under ``raw_root``, then the marker file (default ``raw_root/.complete``).

    The marker is written last, so its presence means the whole copy is in place.
    """
    raw_root = Path(raw_root)
    marker = Path(marker) if marker is not None else raw_root / ".complete"
    start = time.perf_counter()
    generate_standin(raw_root, n_train=n_train, n_val=n_val, seed=seed)
    files = [p for p in raw_root.rglob("*.jpg")]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    seconds = time.perf_counter() - start
    log.info("wrote %d frames (%.1f MB) to %s in %.1f s", len(files), size_mb, raw_root, seconds)
    info = {
        "generator": "bidl.data.rgb_gesture.generate_standin",
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "frames": len(files),
        "jpeg_mb": round(size_mb, 2),
    }
    marker.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return marker


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
    parser.add_argument("raw_root", help="destination folder (gets train/, val/, classes.txt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=300, help="training clips (the paper's copy: 760)")
    parser.add_argument("--n-val", type=int, default=100, help="validation clips (the paper's copy: 102)")
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(args.raw_root, seed=args.seed, n_train=args.n_train, n_val=args.n_val)


if "snakemake" in globals():
    _sm = globals()["snakemake"]
    _setup_logging(_sm.log[0] if len(_sm.log) else None)
    _marker = Path(_sm.output["marker"])
    main(
        _marker.parent,
        seed=int(_sm.params["seed"]),
        n_train=int(_sm.params.get("n_train", 300)),
        n_val=int(_sm.params.get("n_val", 100)),
        marker=_marker,
    )
elif __name__ == "__main__":
    _cli()
