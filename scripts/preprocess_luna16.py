"""Convert a raw LUNA16 copy (real or stand-in) to cached nodule-centred cubes [N, 8, 32, 32].

Snakemake: ``input.marker`` (raw root = its parent); params ``label_source``, ``candidates_csv``,
``malignancy_csv``, ``max_negatives_per_scan``, ``test_fraction``, ``voxel_mm``, ``seed`` (all optional);
outputs ``train``, ``test``, ``split`` (all in one folder); ``log[0]``. Command line: ``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.luna16 import LABEL_SOURCES, preprocess

log = logging.getLogger("preprocess_luna16")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    label_source: str = "candidates",
    candidates_csv: str = "candidates.csv",
    malignancy_csv: str | Path | None = None,
    max_negatives_per_scan: int | None = 3,
    test_fraction: float = 0.1,
    voxel_mm: float = 1.0,
    seed: int = 0,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(
        raw_root,
        out_dir,
        label_source=label_source,
        candidates_csv=candidates_csv,
        malignancy_csv=malignancy_csv,
        max_negatives_per_scan=max_negatives_per_scan,
        test_fraction=test_fraction,
        voxel_mm=voxel_mm,
        seed=seed,
    )
    log.info(
        "train %d %s, test %d %s cubes -> %s in %.1f s",
        summary["splits"]["train"]["n"],
        summary["splits"]["train"]["class_counts"],
        summary["splits"]["test"]["n"],
        summary["splits"]["test"]["class_counts"],
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
    parser.add_argument("--label-source", choices=LABEL_SOURCES, default="candidates")
    parser.add_argument("--candidates-csv", default="candidates.csv", help="relative to raw_root")
    parser.add_argument("--malignancy-csv", default=None, help="seriesuid,coordX,coordY,coordZ,malignant")
    parser.add_argument("--max-negatives-per-scan", type=_optional_int, default=3, help="'none': no cap")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--voxel-mm", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        args.out_dir,
        label_source=args.label_source,
        candidates_csv=args.candidates_csv,
        malignancy_csv=args.malignancy_csv,
        max_negatives_per_scan=args.max_negatives_per_scan,
        test_fraction=args.test_fraction,
        voxel_mm=args.voxel_mm,
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
        label_source=str(_params.get("label_source", "candidates")),
        candidates_csv=str(_params.get("candidates_csv", "candidates.csv")),
        malignancy_csv=_params.get("malignancy_csv"),
        max_negatives_per_scan=_optional_int(_params.get("max_negatives_per_scan", 3)),
        test_fraction=float(_params.get("test_fraction", 0.1)),
        voxel_mm=float(_params.get("voxel_mm", 1.0)),
        seed=int(_params.get("seed", 0)),
    )
elif __name__ == "__main__":
    _cli()
