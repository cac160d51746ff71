"""What every dataset's ``preprocess`` shares: the bad-sample policy and the all-or-nothing cache folder.

The policy (:class:`BadSamples`) is the ``on_bad_sample`` parameter every ``preprocess`` takes:

- ``"error"`` (default): the first bad sample file raises :class:`bidl.errors.DataFormatError` naming it;
- ``"skip"``: a sample whose own file is bad (empty, truncated, undecodable, of the wrong type, missing, or
  holding values out of range) is left out of the cache; a warning names the file and the problem, and
  ``split.json`` lists it under ``skipped``.

Files that are not samples (label csv files, trial lists, annotation csv files, class lists) and a missing
split or class folder are fatal under both policies: without them no sample can be labelled or found. A
labels row that cuts a sample out of a recording (DVS128) is that sample: a window with no event in it is
a bad sample, named by the labels file and line. A split whose every sample was skipped is an error naming
the raw root.

The cache folder (:func:`staged_cache`): ``preprocess`` writes its files into a temporary sibling folder,
and they are moved into the cache folder only when every one of them is written, so a failure leaves no
partial cache (an earlier complete cache in that folder stays as it was). The temporary folder of a run that
was killed is removed by the next run (:mod:`bidl.data.staging`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bidl.data.staging import LOCK_NAME, staging_dir
from bidl.errors import ConfigError, DataFormatError

__all__ = ["ON_BAD_SAMPLE", "BadSamples", "staged_cache", "validation_pick"]

log = logging.getLogger(__name__)

ON_BAD_SAMPLE = ("error", "skip")
"""The values of the ``on_bad_sample`` preprocess parameter."""


class BadSamples:
    """The ``on_bad_sample`` policy of one preprocessing run and the sample files it left out.

    Args:
        policy: ``"error"`` or ``"skip"`` (see the module docstring).
        unit: what one skipped file is, in words for messages and split.json (``"recordings"``, ``"clips"``).

    Example:
        >>> bad = BadSamples("skip", unit="reviews")
        >>> try:
        ...     raise DataFormatError("train/pos/1_8.txt", "empty review")
        ... except DataFormatError as exc:
        ...     bad.reject(exc, split="train")
        >>> bad.summary()["n"], bad.summary()["samples"][0]["problem"]
        (1, 'empty review')
    """

    def __init__(self, policy: str = "error", *, unit: str = "samples"):
        if policy not in ON_BAD_SAMPLE:
            raise ConfigError(f"on_bad_sample: {policy!r} is not one of {list(ON_BAD_SAMPLE)}")
        self.policy = policy
        self.unit = unit
        self.entries: list[dict] = []

    @property
    def skipping(self) -> bool:
        return self.policy == "skip"

    def reject(self, error: DataFormatError, *, split: str, lost: int = 1) -> None:
        """Deal with a bad sample file: re-raise ``error`` under ``"error"``; under ``"skip"`` log a warning
        naming the file and record it (``lost``: cache samples it would have given, e.g. a recording's rows).
        """
        if not self.skipping:
            raise error
        log.warning("skipping bad %s sample file %s", split, error)
        self.entries.append({"split": split, "path": str(error.path), "problem": error.problem, "lost": lost})

    def count(self, split: str | None = None) -> int:
        """How many files were skipped (in ``split``, or in all)."""
        return sum(split is None or e["split"] == split for e in self.entries)

    def lost(self, split: str | None = None) -> int:
        """How many cache samples the skipped files would have given (in ``split``, or in all)."""
        return sum(e["lost"] for e in self.entries if split is None or e["split"] == split)

    def check_split(self, raw_root: str | Path, split: str, kept: int) -> None:
        """Raise naming ``raw_root`` when files of ``split`` were skipped and no sample is left."""
        n = self.count(split)
        if kept == 0 and n:
            first = next(e for e in self.entries if e["split"] == split)
            raise DataFormatError(
                raw_root,
                f"{split}: every one of its {n} {self.unit} is bad and was skipped (on_bad_sample: skip); "
                f"first: {first['path']}: {first['problem']}",
            )

    def summary(self) -> dict:
        """What split.json stores under ``skipped``: the policy, the number of files skipped (``n``, each one
        of ``unit``), the cache samples they would have given (``lost``) and the files with their problems."""
        return {
            "policy": self.policy,
            "n": len(self.entries),
            "unit": self.unit,
            "lost": self.lost(),
            "samples": list(self.entries),
        }


@contextmanager
def staged_cache(out_dir: str | Path, *, last: tuple[str, ...] = ("split.json",)) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``out_dir`` to write a cache into.

    When the block ends without an exception, every file in it is moved into ``out_dir`` (created if need
    be; files named in ``last``, the split file, moved after the others, so that a reader finding it finds
    the arrays too); else nothing reaches ``out_dir``. The temporary folder (``.<name>.staging-<random>``,
    :func:`bidl.data.staging.staging_dir`) is removed either way, and those of earlier runs that were
    killed are removed before it is made.
    """
    out_dir = Path(out_dir)
    with staging_dir(out_dir.parent, f".{out_dir.name}.staging-") as stage:
        yield stage
        out_dir.mkdir(parents=True, exist_ok=True)
        files = sorted(
            (p for p in stage.iterdir() if p.name != LOCK_NAME), key=lambda p: (p.name in last, p.name)
        )
        for path in files:
            os.replace(path, out_dir / path.name)


def validation_pick(
    labels: np.ndarray, n_classes: int, fraction: float, seed: int, names: np.ndarray
) -> dict:
    """split.json's ``val`` entry: ``round(fraction * n_c)`` training samples of each class c, drawn without
    replacement by ``numpy.random.default_rng(seed)`` in class order, as sorted indices and names."""
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)
        picked.extend(rng.choice(idx, size=int(round(fraction * idx.size)), replace=False).tolist())
    picked.sort()
    return {
        "fraction": fraction,
        "seed": seed,
        "train_indices": picked,
        "names": [str(names[i]) for i in picked],
    }
