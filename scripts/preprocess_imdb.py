"""Tokenise a raw IMDB copy (real aclImdb or stand-in) into cached fixed-length id sequences.

Snakemake: ``input.marker`` (raw root = its parent); params ``n_words``, ``max_len``, optional
``val_fraction`` and ``seed``; outputs ``train``, ``test``, ``split`` (all in one folder); ``log[0]``.
Command line: ``--help``.
"""

import argparse
import logging
import time
from pathlib import Path

from bidl.data.imdb import MAX_LEN, N_WORDS, preprocess

log = logging.getLogger("preprocess_imdb")


def main(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    n_words: int = N_WORDS,
    max_len: int = MAX_LEN,
    val_fraction: float | None = None,
    seed: int = 0,
) -> dict:
    """Write ``out_dir/{train,test}.npz`` and ``out_dir/split.json``; return split.json's content."""
    start = time.perf_counter()
    summary = preprocess(
        raw_root, out_dir, n_words=n_words, max_len=max_len, val_fraction=val_fraction, seed=seed
    )
    log.info(
        "train %d, test %d reviews, vocabulary %d words + <pad> + <unk> -> %s in %.1f s",
        summary["splits"]["train"]["n"],
        summary["splits"]["test"]["n"],
        len(summary["vocabulary"]),
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
    parser.add_argument("--n-words", type=int, default=N_WORDS)
    parser.add_argument("--max-len", type=int, default=MAX_LEN)
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="also log to this file")
    args = parser.parse_args()
    _setup_logging(args.log)
    main(
        args.raw_root,
        args.out_dir,
        n_words=args.n_words,
        max_len=args.max_len,
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
        n_words=int(_params.get("n_words", N_WORDS)),
        max_len=int(_params.get("max_len", MAX_LEN)),
        val_fraction=_params.get("val_fraction"),
        seed=int(_params.get("seed", 0)),
    )
elif __name__ == "__main__":
    _cli()
