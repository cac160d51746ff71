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

The cache itself (:func:`write_split_cache`): one compressed ``<split>.npz`` per split, each built in turn by
the dataset (:class:`SplitCache`: its arrays, with ``labels`` and ``names``, and what split.json says of
it), and ``split.json``, the dataset's summary with, per split, ``n`` and ``class_counts``, an optional
seeded validation subset (:func:`validation_pick`) and the skipped files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from bidl.data.staging import LOCK_NAME, staging_dir
from bidl.errors import ConfigError, DataFormatError
from bidl.io import atomic_savez, atomic_write_text

__all__ = [
    "ON_BAD_SAMPLE",
    "BadSamples",
    "SplitCache",
    "check_fraction",
    "staged_cache",
    "validation_pick",
    "write_split_cache",
]

log = logging.getLogger(__name__)

_Item = TypeVar("_Item")
_Read = TypeVar("_Read")

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

    def screen(
        self,
        items: Iterable[_Item],
        read: Callable[[_Item], _Read],
        *,
        split: str,
        lost: Callable[[_Item], int] | None = None,
    ) -> Iterator[tuple[_Item, _Read]]:
        """Yield ``(item, read(item))`` for each of ``items`` whose ``read`` succeeds, in order.

        An item whose ``read`` raises :class:`bidl.errors.DataFormatError` goes to :meth:`reject` (re-raised
        under ``"error"``, skipped and recorded under ``"skip"``, with ``lost(item)`` cache samples, 1 when
        ``lost`` is None). Only ``read`` is guarded: an error raised while the caller handles a yielded
        item propagates.
        """
        for item in items:
            try:
                value = read(item)
            except DataFormatError as exc:
                self.reject(exc, split=split, lost=1 if lost is None else lost(item))
                continue
            yield item, value

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


def check_fraction(name: str, value: float | None) -> None:
    """Raise :class:`bidl.errors.ConfigError` naming the parameter ``name`` when ``value`` (None passes) is
    not in the open interval (0, 1)."""
    if value is not None and not 0.0 < value < 1.0:
        raise ConfigError(f"{name}: must be in (0, 1), got {value}")


class SplitCache(NamedTuple):
    """One split of a cache, as a dataset's ``build`` gives it to :func:`write_split_cache`.

    Attributes:
        arrays: the arrays of ``<split>.npz``, stored in this order; among them ``labels`` (integer ``[N]``)
            and ``names`` (``[N]``).
        info: what split.json says of the split besides ``n`` and ``class_counts``, which come first; stored
            after them in this order.
    """

    arrays: dict[str, np.ndarray]
    info: dict


def write_split_cache(
    out_dir: str | Path,
    summary: dict,
    bad: BadSamples,
    splits: Iterable[str],
    build: Callable[[str], SplitCache],
    *,
    val_fraction: float | None = None,
    seed: int = 0,
    ensure_ascii: bool = True,
) -> dict:
    """Build and write a dataset's cache into ``out_dir`` through :func:`staged_cache` (all files or none).

    For each of ``splits`` in turn, ``build(split)`` reads and transforms the split's samples (rejecting
    bad ones through ``bad``); its arrays are written to ``<split>.npz`` (``np.savez_compressed``) and
    released before the next split is built. ``summary["splits"][split]`` becomes ``{"n": N,
    "class_counts": [...], **info}``, the counts over ``len(summary["class_names"])`` classes. With
    ``val_fraction`` set, the split ``"train"`` also gives ``summary["val"]``
    (:func:`validation_pick` of its labels and names with ``seed``). Last, ``summary["skipped"]`` is
    ``bad.summary()``, and ``summary`` goes to ``split.json`` (``json.dumps`` with ``indent=1`` and
    ``ensure_ascii``, one trailing newline).

    Args:
        out_dir: the cache folder.
        summary: the dataset's split.json entries so far, ``class_names`` among them; completed in place.
        bad: the run's bad-sample policy, the one ``build`` rejects samples through.
        splits: the split names, e.g. ``("train", "test")``.
        build: the dataset's reader and transform of one split.
        val_fraction, seed: the validation subset of the training split (None: none).
        ensure_ascii: ``json.dumps``'s flag (False writes non-ASCII text as UTF-8).

    Returns:
        ``summary``, as written to split.json.

    Raises:
        ValueError: the arrays of a split lack ``labels`` or ``names`` (naming the split).
        DataFormatError, ConfigError: whatever ``build`` raises. Nothing reaches ``out_dir`` on an error.
    """
    n_classes = len(summary["class_names"])
    summary["splits"] = {}
    with staged_cache(out_dir) as stage:
        for split in splits:
            part = build(split)
            missing = {"labels", "names"} - set(part.arrays)
            if missing:
                raise ValueError(f"{split}: the cache arrays built lack {sorted(missing)}")
            labels = part.arrays["labels"]
            atomic_savez(stage / f"{split}.npz", **part.arrays)
            summary["splits"][split] = {
                "n": int(len(labels)),
                "class_counts": np.bincount(labels, minlength=n_classes).tolist(),
                **part.info,
            }
            if split == "train" and val_fraction is not None:
                summary["val"] = validation_pick(labels, n_classes, val_fraction, seed, part.arrays["names"])
            del part, labels  # one split's arrays in memory at a time
        summary["skipped"] = bad.summary()
        atomic_write_text(
            stage / "split.json", json.dumps(summary, indent=1, ensure_ascii=ensure_ascii) + "\n"
        )
    return summary
