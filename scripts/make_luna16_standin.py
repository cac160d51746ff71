"""Generate the LUNA16 stand-in in LUNA16's layout (MetaImage CT + lung masks, annotations/candidates csv).

Snakemake: ``output.marker`` is ``<raw_root>/.complete`` (raw_root = its parent); params ``seed``,
``n_scans``, ``n_nodules``, ``n_vessels``; optional ``log[0]``. Command line: ``--help``.
"""

import argparse
import json
import logging
import time
from pathlib import Path

from bidl.data.luna16 import generate_standin

log = logging.getLogger("make_luna16_standin")


def main(
    raw_root: str | Path,
    *,
    seed: int = 0,
    n_scans: int = 24,
    n_nodules: int = 7,
    n_vessels: int = 7,
    marker: str | Path | None = None,
) -> Path:
    """Write the stand-in under ``raw_root``, then the marker file (default ``raw_root/.complete``).

    The marker is written last, so its presence means the whole copy is in place.
    """
    raw_root = Path(raw_root)
    marker = Path(marker) if marker is not None else raw_root / ".complete"
    start = time.perf_counter()
    generate_standin(raw_root, n_scans=n_scans, n_nodules=n_nodules, n_vessels=n_vessels, seed=seed)
    size_mb = sum(p.stat().st_size for p in raw_root.rglob("*") if p.is_file()) / 1e6
    seconds = time.perf_counter() - start
    log.info("wrote %d scans (%.1f MB) to %s in %.1f s", n_scans, size_mb, raw_root, seconds)
    info = {
        "generator": "bidl.data.luna16.generate_standin",
        "seed": seed,
        "n_scans": n_scans,
        "n_nodules": n_nodules,
        "n_vessels": n_vessels,
        "size_mb": round(size_mb, 2),
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
    parser.add_argument("raw_root", help="destination folder (gets subset0/, seg-lungs-LUNA16/, csv files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-scans", type=int, default=24)
    parser.add_argument("--n-nodules", type=int, default=7, help="nodules (class 1) per scan")
    parser.add_argument("--n-vessels", type=int, default=7, help="vessel candidates (class 0) per scan")
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        seed=args.seed,
        n_scans=args.n_scans,
        n_nodules=args.n_nodules,
        n_vessels=args.n_vessels,
    )


if "snakemake" in globals():
    _sm = globals()["snakemake"]
    _setup_logging(_sm.log[0] if len(_sm.log) else None)
    _marker = Path(_sm.output["marker"])
    main(
        _marker.parent,
        seed=int(_sm.params["seed"]),
        n_scans=int(_sm.params.get("n_scans", 24)),
        n_nodules=int(_sm.params.get("n_nodules", 7)),
        n_vessels=int(_sm.params.get("n_vessels", 7)),
        marker=_marker,
    )
elif __name__ == "__main__":
    _cli()
