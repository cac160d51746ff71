"""CIFAR10-DVS: the raw reader, frame cache and Dataset.

Raw layout read by :func:`index_recordings` / :func:`iter_recordings` (the same loader serves the real
release and the stand-in)::

    raw_root/<class>/cifar10_<class>_<i>.aedat     one recording, jAER AEDAT 2.0 (bidl.data.formats.aedat2)

for the ten CIFAR-10 classes (:data:`CLASSES`, label = index), i = 0..999 in the real release (each of the
ten figshare zips ``<class>.zip`` extracts to ``<class>/``). Other entries of ``raw_root`` (``downloads/``,
``.complete``, a README) are ignored. Events come out in spikingjelly's orientation (``x = 127 - b``,
``y = 127 - a``, ``p = 1 - p_raw``; see :mod:`bidl.data.formats.aedat2`).

The dataset has no official split: :func:`preprocess` draws a seeded per-class split (default 90 % train /
10 % test) and stores the sample names of each side in ``split.json``.

Two framings (:func:`preprocess` ``framing=``):

- ``"count"`` (the authors' code, both presets): the WHOLE recording cut into ``n_frames`` segments of
  ``N // n_frames`` consecutive events, the last one also taking the ``N % n_frames`` remainder, exactly
  as spikingjelly's ``split_by="number"`` and the authors' datasets/utils.py do
  (:func:`events_to_count_frames`).
- ``"time"`` (the paper's words, kept as an option): ``n_frames`` windows of ``window_us`` µs (10 x 5 ms)
  from the recording's first event; the rest of the recording (about 1.25 of its 1.3 s) is not used.

Stand-in: :mod:`bidl.data.standins.cifar10_dvs` (a generated copy in the real layout); its entry points
:data:`STANDIN_PATTERNS`, :data:`STANDIN_SEQUENCES`, :func:`generate_standin`, :func:`standin_recording` are
importable from here."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from bidl.data.cache import CachedSplit
from bidl.data.formats.aedat2 import SENSOR_SIZE, read_aedat2
from bidl.data.formats.events import events_to_frames
from bidl.data.preprocessing import BadSamples, SplitCache, write_split_cache
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = ("STANDIN_PATTERNS", "STANDIN_SEQUENCES", "generate_standin", "standin_recording")
"""Names of :mod:`bidl.data.standins.cifar10_dvs` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "cifar10_dvs", _STANDIN_EXPORTS)

__all__ = [
    "CLASSES",
    "FRAMINGS",
    "LAYOUT",
    "N_CLASSES",
    "CIFAR10DVSFrames",
    "events_to_count_frames",
    "frames_of_events",
    "index_recordings",
    "iter_recordings",
    "preprocess",
    "split_per_class",
    *_STANDIN_EXPORTS,
]

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""The ten CIFAR-10 classes; index = label."""

N_CLASSES = 10
LAYOUT = "cifar10dvs_aedat2"
"""Name of the raw layout (``Source.layout`` of the figshare source)."""
FRAMINGS = ("time", "count")
WINDOW_US = 5_000
"""The paper's window (µs): T = 10 windows of 5 ms."""

_NAME = re.compile(r"^cifar10_(?P<cls>[a-z]+)_(?P<i>\d+)\.aedat$")


# =========================================================================================================
# Reading the raw layout
# =========================================================================================================
def index_recordings(raw_root: str | Path, *, bad: BadSamples | None = None) -> list[tuple[str, int, Path]]:
    """List every recording of a raw CIFAR10-DVS copy from the file names only.

    Args:
        raw_root: folder holding the ten class folders (see the module docstring).
        bad: where a misnamed file goes (:class:`bidl.data.preprocessing.BadSamples`: raised, or skipped
            and recorded); without it, it raises.

    Returns:
        ``(name, label, path)`` ordered by label, then by the number ``i``; ``name`` is
        ``"<class>/cifar10_<class>_<i>"``. Hidden files (starting with ``.``) are ignored.

    Raises:
        DataFormatError: a missing class folder, a class folder without recordings, or (unless ``bad``
            skips it) a file in it whose name is not ``cifar10_<class>_<i>.aedat`` for that folder's class.
    """
    bad = BadSamples() if bad is None else bad  # none given: the "error" policy, which raises
    raw_root = Path(raw_root)
    out: list[tuple[str, int, Path]] = []
    for label, cls in enumerate(CLASSES):
        folder = raw_root / cls
        if not folder.is_dir():
            raise DataFormatError(folder, f"class folder of {cls!r} is missing")
        found = []
        for path in folder.iterdir():
            if path.name.startswith("."):
                continue
            match = _NAME.match(path.name)
            if match is None or match["cls"] != cls or not path.is_file():
                error = DataFormatError(path, f"expected a file named cifar10_{cls}_<i>.aedat in {folder}")
                bad.reject(error, split="all")
                continue
            found.append((int(match["i"]), path))
        if not found:
            raise DataFormatError(folder, "class folder holds no .aedat recordings")
        out.extend((f"{cls}/{p.stem}", label, p) for _, p in sorted(found))
    return out


def iter_recordings(raw_root: str | Path) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield ``(name, label, events)`` for every recording (order of :func:`index_recordings`).

    ``events`` is a structured array ``[N]`` of :data:`bidl.data.formats.aedat.EVENT_DTYPE` (t µs, x, y, p)
    read by :func:`bidl.data.formats.aedat2.read_aedat2`. Malformed files raise :class:`DataFormatError`
    naming them.
    """
    for name, label, path in index_recordings(raw_root):
        yield name, label, read_aedat2(path)


# =========================================================================================================
# Framing
# =========================================================================================================
def events_to_count_frames(
    events: np.ndarray,
    *,
    n_frames: int,
    sensor_size: tuple[int, int] = SENSOR_SIZE,
    out_size: tuple[int, int] = SENSOR_SIZE,
) -> np.ndarray:
    """Frames of equal event counts (spikingjelly ``split_by="number"``, the authors' CIFAR10-DVS framing).

    The events, in the order given (file order; :func:`bidl.data.formats.aedat2.read_aedat2` returns
    timestamps that never decrease, so this is also time order), are cut into ``n_frames`` segments: segment
    ``j`` holds events ``[j * (N // n_frames), (j + 1) * (N // n_frames))`` and the last one runs to ``N``, so
    it also takes the ``N % n_frames`` remainder. With ``N < n_frames`` all events land in the last
    segment. This is spikingjelly's ``cal_fixed_frames_number_segment_index(t, "number", T)`` and the
    authors' ``integrate_events_file_to_frames_file_by_fixed_frames_number`` (their datasets/utils.py)
    exactly; neither sorts by time either. Channel 0 counts ``p == 0`` (OFF), channel 1 the rest, as in
    both. Cells: those of :func:`bidl.data.formats.events.events_to_frames` (pixel ``(y, x)`` -> cell
    ``(y * H_out // H_in, x * W_out // W_in)``); at ``out_size == sensor_size`` the frames equal
    spikingjelly's ``integrate_events_by_fixed_frames_number`` cell for cell.

    Returns:
        int32 array ``[n_frames, 2, H_out, W_out]`` of event counts; it sums to ``N``.
    """
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    n = events.shape[0]
    per_bin = n // n_frames
    ranks = np.arange(n, dtype=np.int64)
    bins = np.minimum(ranks // per_bin, n_frames - 1) if per_bin else np.full(n, n_frames - 1)
    binned = events.copy()
    binned["t"] = bins  # a segment index as time: windows of 1 "µs" starting at 0
    return events_to_frames(
        binned, window_us=1, n_frames=n_frames, sensor_size=sensor_size, out_size=out_size, t_start=0
    )


def frames_of_events(
    events: np.ndarray,
    *,
    framing: str = "time",
    window_us: int = WINDOW_US,
    n_frames: int = 10,
    size: int = 128,
) -> np.ndarray:
    """One recording's frames: int32 ``[n_frames, 2, size, size]`` counts (channel 0 OFF, 1 ON).

    ``framing="time"``: ``n_frames`` windows of ``window_us`` µs from the first event
    (:func:`bidl.data.formats.events.events_to_frames`); ``"count"``: :func:`events_to_count_frames` over the
    whole recording in the order given (``window_us`` unused). ``size < 128`` pools sensor pixels into
    ``size x size`` cells by summing their counts (pixel ``(y, x)`` -> cell ``(y * size // 128,
    x * size // 128)``).
    """
    if framing == "time":
        return events_to_frames(
            events, window_us=window_us, n_frames=n_frames, sensor_size=SENSOR_SIZE, out_size=(size, size)
        )
    if framing == "count":
        return events_to_count_frames(events, n_frames=n_frames, out_size=(size, size))
    raise ConfigError(f"framing: {framing!r} is not one of {FRAMINGS}")


# =========================================================================================================
# Split
# =========================================================================================================
def split_per_class(labels: np.ndarray, *, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded per-class train/test split.

    For each class in label order, a permutation drawn from ``numpy.random.default_rng(seed)`` picks
    ``round(test_fraction * n_class)`` of its samples for the test side.

    Args:
        labels: int array ``[N]`` of labels 0..9, in sample order.
        test_fraction: share of each class that goes to test, in (0, 1).
        seed: the split's seed.

    Returns:
        bool array ``[N]``: True for test samples.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction: must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(labels.shape[0], dtype=bool)
    for c in range(N_CLASSES):
        idx = np.flatnonzero(labels == c)
        k = int(round(test_fraction * idx.size))
        is_test[idx[rng.permutation(idx.size)[:k]]] = True
    return is_test


# =========================================================================================================
# Frame cache
# =========================================================================================================
def _sparse_frames(
    samples: Sequence[tuple[str, int, Path]],
    *,
    split: str,
    bad: BadSamples,
    framing: str,
    window_us: int,
    n_frames: int,
    size: int,
) -> dict[str, np.ndarray]:
    """Frames of the given recordings in the sparse cache form (see :func:`preprocess`); a bad recording is
    raised or left out by ``bad``."""
    indices, counts, offsets, kept = [], [], [0], []
    recordings = bad.screen(samples, lambda sample: read_aedat2(sample[2]), split=split)
    for (name, label, path), events in recordings:
        frames = frames_of_events(
            events, framing=framing, window_us=window_us, n_frames=n_frames, size=size
        ).reshape(-1)
        nz = np.flatnonzero(frames)
        peak = int(frames[nz].max(initial=0))
        if peak > np.iinfo(np.int16).max:
            raise DataFormatError(path, f"{peak} events in one cell of {name} exceed the int16 cache's range")
        indices.append(nz.astype(np.int32))
        counts.append(frames[nz].astype(np.int16))
        offsets.append(offsets[-1] + nz.size)
        kept.append((name, label))
    return {
        "index": np.concatenate(indices) if indices else np.zeros(0, np.int32),
        "count": np.concatenate(counts) if counts else np.zeros(0, np.int16),
        "offsets": np.array(offsets, dtype=np.int64),
        "frame_shape": np.array([n_frames, 2, size, size], dtype=np.int64),
        "labels": np.array([label for _, label in kept], dtype=np.int64),
        "names": np.array([name for name, _ in kept], dtype=str),
    }


def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    framing: str = "time",
    window_us: int = WINDOW_US,
    n_frames: int = 10,
    size: int = 128,
    test_fraction: float = 0.1,
    seed: int = 0,
    on_bad_sample: str = "error",
) -> dict:
    """Convert every recording of a raw copy to count frames, split it, and cache the frames.

    Frames: :func:`frames_of_events` (``framing="count"``: the whole recording in ``n_frames`` segments of
    equal event counts, the last taking the remainder, as the authors' code and spikingjelly's
    ``split_by="number"``; ``"time"``: ``n_frames`` windows of ``window_us`` µs from the first event, the
    paper's 10 x 5 ms), ``size x size`` cells (128 = no pooling; smaller sizes sum pixel counts into cells,
    where the authors' code keeps 128 x 128), channel 0 OFF, 1 ON. Counts are stored exactly (int16, a
    larger count raises); the authors' code casts its frames to uint8, which wraps a cell above 255.

    Split: :func:`split_per_class` with ``test_fraction`` and ``seed`` over the recordings in
    :func:`index_recordings` order.

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad recording (empty,
    truncated, AEDAT 3.x, an address beyond the DVS128's 16 bits, no pixel event) or misnamed file in a class
    folder; ``"skip"`` leaves it out and lists it in split.json's ``skipped`` (a recording that cannot be
    read keeps its place in the split, so the other recordings' sides do not change). A missing or empty
    class folder is fatal under both policies.

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure):

    - ``out_dir/train.npz``, ``out_dir/test.npz`` (``np.savez_compressed``), frames stored sparsely (most
      cells of a 128 x 128 x 2 x 10 sample are empty; a dense int16 cache of the real 10,000 recordings
      would take 6.5 GB of memory): ``index`` int32 ``[nnz]`` (flat index of a non-zero cell within one
      sample's ``[T, 2, H, W]`` frames), ``count`` int16 ``[nnz]`` (its event count), ``offsets`` int64
      ``[N + 1]`` (sample ``i`` owns entries ``offsets[i]:offsets[i + 1]``), ``frame_shape`` int64 ``[4]`` =
      ``(T, 2, H, W)``, ``labels`` int64 ``[N]``, ``names`` str ``[N]``.
    - ``out_dir/split.json``: layout, raw root, parameters, class names, per split the count, the counts per
      class and the sample names, and the skipped files (``skipped``: ``n``, ``samples`` with path and
      problem).

    Raises:
        DataFormatError: malformed raw files (named), a split whose every recording was skipped (naming
            the raw root), or a cell count beyond int16 (never wrapped).
        ConfigError: an unknown framing or on_bad_sample, or a test_fraction outside (0, 1).

    Returns:
        The content of split.json.
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if framing not in FRAMINGS:
        raise ConfigError(f"framing: {framing!r} is not one of {FRAMINGS}")
    if not 1 <= size <= SENSOR_SIZE[0]:
        raise ConfigError(f"size: must be in 1..{SENSOR_SIZE[0]}, got {size}")
    bad = BadSamples(on_bad_sample, unit="recordings")
    samples = index_recordings(raw_root, bad=bad)
    labels = np.array([label for _, label, _ in samples], dtype=np.int64)
    is_test = split_per_class(labels, test_fraction=test_fraction, seed=seed)
    summary: dict = {
        "dataset": "CIFAR10-DVS",
        "layout": LAYOUT,
        "raw_root": str(raw_root),
        "split_source": f"seeded per-class split: round({test_fraction} * n_class) test samples per class, "
        f"numpy default_rng({seed}) permutations in class order",
        "params": {
            "framing": framing,
            "window_us": window_us if framing == "time" else None,
            "n_frames": n_frames,
            "size": size,
            "test_fraction": test_fraction,
            "seed": seed,
            "on_bad_sample": on_bad_sample,
            "t_start": "first event of each recording" if framing == "time" else "whole recording",
        },
        "frames": {
            "dtype": "int16",
            "shape": ["N", n_frames, 2, size, size],
            "channels": ["OFF", "ON"],
            "storage": "sparse: index int32 + count int16 per non-zero cell, offsets int64 [N + 1]",
        },
        "class_names": list(CLASSES),
    }
    masks = {"train": ~is_test, "test": is_test}

    def build(split: str) -> SplitCache:
        chosen = [s for s, m in zip(samples, masks[split]) if m]
        arrays = _sparse_frames(
            chosen, split=split, bad=bad, framing=framing, window_us=window_us, n_frames=n_frames, size=size
        )
        n = len(arrays["labels"])
        bad.check_split(raw_root, split, n)
        log.info("%s: %d samples, %d non-zero cells", split, n, arrays["index"].size)
        return SplitCache(arrays, {"names": arrays["names"].tolist()})

    return write_split_cache(out_dir, summary, bad, masks, build)


class CIFAR10DVSFrames(CachedSplit):
    """One cached split (``train.npz`` / ``test.npz`` from :func:`preprocess`), held in memory sparsely.

    ``dataset[i]`` is ``(frames, label)``: float32 ``[T, 2, H, W]`` event counts (T = 10, H = W = 128 by
    default; channel 0 OFF, 1 ON), densified on access, and an int label 0..9 (:data:`CLASSES`).
    :attr:`frame_shape` is ``(T, 2, H, W)``. Arguments, :attr:`labels`, :attr:`names` and errors: see
    :class:`bidl.data.cache.CachedSplit`.
    """

    KEYS = ("index", "count", "offsets", "frame_shape")
    KIND = "frame"
    N_CLASSES = N_CLASSES

    def _validate(self, arrays: dict[str, np.ndarray]) -> int:
        shape = tuple(int(s) for s in arrays["frame_shape"].reshape(-1))
        index, count, offsets = arrays["index"], arrays["count"], arrays["offsets"]
        if len(shape) != 4 or shape[1] != 2 or min(shape) < 1:
            raise DataFormatError(self.path, f"frame_shape must be (T, 2, H, W), got {shape}")
        if count.dtype != np.int16 or index.dtype.kind not in "iu" or index.shape != count.shape:
            raise DataFormatError(self.path, "index/count must be integer / int16 arrays of one length")
        n = offsets.shape[0] - 1
        if offsets.ndim != 1 or n < 0 or offsets[0] != 0 or offsets[-1] != index.size:
            raise DataFormatError(self.path, "offsets are not a non-decreasing cover of the cells")
        if (np.diff(offsets) < 0).any():
            raise DataFormatError(self.path, "offsets are not a non-decreasing cover of the cells")
        if index.size and (index.min() < 0 or index.max() >= int(np.prod(shape))):
            raise DataFormatError(self.path, f"cell index outside a {shape} sample")
        return n

    def _store(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> None:
        shape = tuple(int(s) for s in arrays["frame_shape"].reshape(-1))
        self.frame_shape: tuple[int, int, int, int] = shape  # type: ignore[assignment]
        self._index = torch.from_numpy(arrays["index"].astype(np.int64))
        self._count = torch.from_numpy(arrays["count"].astype(np.float32))
        self._offsets = arrays["offsets"]

    def dense(self, i: int) -> torch.Tensor:
        """Sample ``i``'s frames as a float32 tensor ``[T, 2, H, W]`` (no transform)."""
        row = int(self.rows[i])
        lo, hi = int(self._offsets[row]), int(self._offsets[row + 1])
        flat = torch.zeros(int(np.prod(self.frame_shape)), dtype=torch.float32)
        flat[self._index[lo:hi]] = self._count[lo:hi]
        return flat.view(self.frame_shape)

    def _sample(self, i: int) -> torch.Tensor:
        return self.dense(i)
