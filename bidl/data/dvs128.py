"""DVS128 Gesture: raw readers, frame cache and Dataset.

Raw layouts read by :func:`iter_samples` (the same loader serves the real data and the stand-in):

- ``"ibm_aedat31"``, IBM's original release extracted under ``raw_root``::

      raw_root/DvsGesture/userNN_<lighting>.aedat          AEDAT 3.1 recording of one trial
      raw_root/DvsGesture/userNN_<lighting>_labels.csv     class,startTime_usec,endTime_usec (class 1..11)
      raw_root/DvsGesture/trials_to_train.txt              one .aedat name per line (users 01-23)
      raw_root/DvsGesture/trials_to_test.txt               (users 24-29)
      raw_root/gesture_mapping.csv                         class names

  (``raw_root`` may also be the ``DvsGesture`` folder itself.) Every labels row is one sample, cut with
  ``startTime_usec <= t < endTime_usec`` independently of the other rows (one real file,
  ``user22_led_labels.csv``, has overlapping rows); a window that holds no event is a bad sample. Each
  trial is listed once, in one of the two lists.

- ``"tonic_npy"``, tonic's pre-cut copy: ``raw_root/[DVSGesture/]ibmGesture{Train,Test}/userNN_<lighting>/
  <label>.npy`` with label 0..10 (see :func:`bidl.data.formats.aedat.read_tonic_npy`).

The split is always the dataset's own: the trials of users 01-23 train, of users 24-29 test.

Stand-in: :mod:`bidl.data.standins.dvs128_gesture` (a generated copy in the real layout); its entry points
:data:`ORDER_PAIRS`, :data:`STANDIN_CLASSES`, :func:`generate_standin`, :func:`standin_trial` are importable
from here."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bidl.data.cache import DenseSplit
from bidl.data.formats.aedat import (
    read_aedat31,
    read_tonic_npy,
)
from bidl.data.formats.events import events_to_frames
from bidl.data.preprocessing import BadSamples, SplitCache, check_fraction, write_split_cache
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = ("ORDER_PAIRS", "STANDIN_CLASSES", "generate_standin", "standin_trial")
"""Names of :mod:`bidl.data.standins.dvs128_gesture` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "dvs128_gesture", _STANDIN_EXPORTS)

CLASSES: tuple[str, ...] = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
"""The 11 classes of the real DVS128 Gesture dataset; index = label (csv class - 1)."""

LAYOUTS = ("ibm_aedat31", "tonic_npy")
SPLITS = ("train", "test")
N_CLASSES = 11
FRAME_US = 25_000
"""The paper's window (µs); the stand-in aligns its movement changes with these windows."""

LABELS_HEADER = ("class", "startTime_usec", "endTime_usec")


# =========================================================================================================
# Reading the raw layouts
# =========================================================================================================
def _ibm_dir(raw_root: Path) -> Path:
    """The folder holding the .aedat files and trial lists (``raw_root/DvsGesture`` or ``raw_root``)."""
    inner = raw_root / "DvsGesture"
    return inner if inner.is_dir() else raw_root


def read_labels_csv(path: str | Path) -> np.ndarray:
    """Read a ``userNN_<lighting>_labels.csv`` file.

    Returns:
        int64 array ``[R, 3]``: label (0..10, i.e. csv class - 1), start µs, end µs, in file order.

    Raises:
        DataFormatError: missing file, wrong header, a row that is not three integers, a class outside
            1..11, or an end not after its start.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise DataFormatError(path, "labels csv is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read labels csv: {exc}") from exc
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    if not rows or tuple(cell.strip() for cell in rows[0]) != LABELS_HEADER:
        raise DataFormatError(path, f"expected header {','.join(LABELS_HEADER)!r}")
    out = np.zeros((len(rows) - 1, 3), dtype=np.int64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != 3:
            raise DataFormatError(path, f"line {line}: expected 3 fields, got {len(row)}")
        try:
            cls, start, end = (int(cell.strip()) for cell in row)
        except ValueError as exc:
            raise DataFormatError(path, f"line {line}: non-integer field in {row}") from exc
        if not 1 <= cls <= N_CLASSES:
            raise DataFormatError(path, f"line {line}: unknown class {cls} (expected 1..{N_CLASSES})")
        if end <= start:
            raise DataFormatError(path, f"line {line}: endTime_usec {end} <= startTime_usec {start}")
        out[i] = (cls - 1, start, end)
    return out


def _read_trial_list(path: Path) -> list[tuple[int, str]]:
    """``(line number, trial file name)`` of every non-blank line of a trial list."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise DataFormatError(path, "trial list is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read trial list: {exc}") from exc
    entries = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for _, name in entries:
        if not name.endswith(".aedat") or "/" in name or "\\" in name:
            raise DataFormatError(path, f"entry {name!r} is not a bare .aedat file name")
    return entries


def _trial_lists(folder: Path) -> dict[str, list[str]]:
    """The trials of each split from ``trials_to_train.txt`` and ``trials_to_test.txt``.

    Raises:
        DataFormatError: a list missing or malformed, a trial listed twice in one list (naming the list and
            both lines), or a trial in both lists (naming the test list, the trial and the train list): a
            trial in both would put the same recordings in the training and the test split.
    """
    lists = {split: folder / f"trials_to_{split}.txt" for split in SPLITS}
    seen: dict[str, tuple[Path, int]] = {}
    out: dict[str, list[str]] = {}
    for split, path in lists.items():
        out[split] = []
        for line, name in _read_trial_list(path):
            if name in seen:
                first, first_line = seen[name]
                where = f"line {first_line}" if first == path else f"{first} line {first_line}"
                raise DataFormatError(
                    path,
                    f"line {line}: trial {name} is also listed at {where}; every trial must be listed once, "
                    f"in {lists['train'].name} or in {lists['test'].name}, else its gestures are read twice "
                    "or reach both the training and the test split",
                )
            seen[name] = (path, line)
            out[split].append(name)
    return out


def _cut(events: np.ndarray, start: int, end: int) -> np.ndarray:
    """Events with ``start <= t < end`` (binary search when sorted, a mask otherwise)."""
    t = events["t"]
    if t.shape[0] > 1 and not (np.diff(t) >= 0).all():
        return events[(t >= start) & (t < end)]
    lo, hi = np.searchsorted(t, [start, end], side="left")
    return events[lo:hi]


def _ibm_index(raw_root: Path, split: str) -> list[tuple[Path, str, np.ndarray]]:
    """(aedat path, trial stem, labels [R, 3]) of every trial of a split; reads only the csv files."""
    folder = _ibm_dir(raw_root)
    index = []
    for trial in _trial_lists(folder)[split]:
        stem = trial[: -len(".aedat")]
        index.append((folder / trial, stem, read_labels_csv(folder / f"{stem}_labels.csv")))
    return index


def _empty_window(aedat: Path, stem: str, row: int, start: int, end: int, events: np.ndarray) -> str:
    """Why the window ``start <= t < end`` of labels row ``row`` holds no event of the recording, in words."""
    if events.shape[0] == 0:
        span = "the recording holds no event"
    else:
        t = events["t"]
        first, last = int(t.min()), int(t.max())
        where = "lies outside" if end <= first or start > last else "is a gap in"
        span = f"it {where} the recording {aedat.name}, whose events span {first}..{last} µs"
    return (
        f"line {row + 2}: gesture window {start}..{end} µs holds no event ({span}); the labels do not belong "
        f"to {stem}.aedat, or its recording is cut short"
    )


def _iter_ibm(
    index: list[tuple[Path, str, np.ndarray]], split: str, bad: BadSamples
) -> Iterator[tuple[str, int, np.ndarray]]:
    trials = bad.screen(
        index, lambda trial: read_aedat31(trial[0]), split=split, lost=lambda trial: len(trial[2])
    )
    for (aedat, stem, labels), events in trials:
        for row, (label, start, end) in enumerate(labels):
            cut = _cut(events, int(start), int(end))
            if cut.shape[0] == 0:
                csv_path = aedat.with_name(f"{stem}_labels.csv")
                problem = _empty_window(aedat, stem, row, int(start), int(end), events)
                bad.reject(DataFormatError(csv_path, problem), split=split)
                continue
            yield f"{stem}/{row:02d}", int(label), cut


def _tonic_index(raw_root: Path, split: str, bad: BadSamples) -> list[tuple[Path, str, int]]:
    """(npy path, sample name, label) of every sample of a split of tonic's copy (a file whose name is not
    a label 0..10 is rejected through ``bad``)."""
    sub = "ibmGestureTrain" if split == "train" else "ibmGestureTest"
    folder = raw_root / sub
    if not folder.is_dir():
        folder = raw_root / "DVSGesture" / sub
    if not folder.is_dir():
        raise DataFormatError(raw_root / sub, "tonic DVSGesture folder is missing")
    index = []
    for user_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = []
        for f in user_dir.glob("*.npy"):
            if not f.stem.isdigit() or not 0 <= int(f.stem) < N_CLASSES:
                error = DataFormatError(f, f"file name must be a label 0..{N_CLASSES - 1}")
                bad.reject(error, split=split)
                continue
            files.append((int(f.stem), f))
        index.extend((f, f"{user_dir.name}/{label}", label) for label, f in sorted(files))
    return index


def _iter_tonic(
    index: list[tuple[Path, str, int]], split: str, bad: BadSamples
) -> Iterator[tuple[str, int, np.ndarray]]:
    for (_, name, label), events in bad.screen(index, lambda sample: read_tonic_npy(sample[0]), split=split):
        yield name, label, events


def _check_split_layout(split: str, layout: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split: {split!r} is not one of {SPLITS}")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: {layout!r} is not one of {LAYOUTS}")


def _index(raw_root: Path, split: str, layout: str, bad: BadSamples) -> tuple[list, int]:
    """The split's index (trials with their labels, or tonic's files) and the number of samples in it."""
    if layout == "ibm_aedat31":
        index = _ibm_index(raw_root, split)
        return index, sum(len(labels) for _, _, labels in index)
    index = _tonic_index(raw_root, split, bad)
    return index, len(index)


def _read_index(
    index: list, split: str, layout: str, bad: BadSamples
) -> Iterator[tuple[str, int, np.ndarray]]:
    if layout == "ibm_aedat31":
        return _iter_ibm(index, split, bad)
    return _iter_tonic(index, split, bad)


def count_samples(raw_root: str | Path, split: str, layout: str) -> int:
    """Number of samples :func:`iter_samples` yields, found from the labels csv files / file names only."""
    _check_split_layout(split, layout)
    return _index(Path(raw_root), split, layout, BadSamples())[1]


def iter_samples(
    raw_root: str | Path, split: str, layout: str, *, bad: BadSamples | None = None
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield every sample of one split of a raw DVS128 Gesture copy.

    Args:
        raw_root: root of the raw copy (see the module docstring for both layouts).
        split: ``"train"`` or ``"test"`` (the dataset's own split: users 01-23 / 24-29).
        layout: ``"ibm_aedat31"`` (original release, or the stand-in) or ``"tonic_npy"``.
        bad: where a bad recording / sample file goes (:class:`bidl.data.preprocessing.BadSamples`: raised
            or skipped and recorded); without it, it raises.

    Yields:
        ``(name, label, events)``: a unique name (``"user01_fluorescent/03"`` = row 3 of that trial's labels
        csv, or ``"user01_fluorescent/7"`` for tonic), the label 0..10 and the structured event array
        ``[N]`` (:data:`bidl.data.formats.aedat.EVENT_DTYPE`, t in µs on the recording's clock).

    Raises:
        ConfigError: unknown split or layout.
        DataFormatError: any missing or malformed raw file, naming it (a trial list or labels csv always, or
            a trial listed twice; a recording, a tonic sample file or a labels row whose window holds no
            event unless ``bad`` skips it).
    """
    bad = BadSamples() if bad is None else bad  # none given: the "error" policy, which raises
    _check_split_layout(split, layout)
    index, _ = _index(Path(raw_root), split, layout, bad)
    yield from _read_index(index, split, layout, bad)


def read_gesture_mapping(path: str | Path) -> list[str]:
    """Class names from a ``gesture_mapping.csv`` (rows ``name,class`` with class 1..11; header optional).

    Returns:
        The 11 names ordered by label 0..10.
    """
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read: {exc}") from exc
    names: dict[int, str] = {}
    for row in rows:
        cells = [c.strip() for c in row]
        if len(cells) != 2 or not cells[1].isdigit():
            continue  # header or blank line
        names[int(cells[1])] = cells[0]
    if sorted(names) != list(range(1, N_CLASSES + 1)):
        raise DataFormatError(path, f"expected names for classes 1..{N_CLASSES}, found {sorted(names)}")
    return [names[k] for k in range(1, N_CLASSES + 1)]


# =========================================================================================================
# Frame cache
# =========================================================================================================
def _class_names(raw_root: Path, layout: str) -> list[str]:
    """Class names of the raw copy: its gesture_mapping.csv when readable, else the real :data:`CLASSES`."""
    if layout == "ibm_aedat31":
        candidates = (raw_root / "gesture_mapping.csv", _ibm_dir(raw_root).parent / "gesture_mapping.csv")
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return read_gesture_mapping(candidate)
                except DataFormatError as exc:
                    log.warning("ignoring class names of %s", exc)
    return list(CLASSES)


def _frames_of_split(
    raw_root: Path, split: str, layout: str, window_us: int, n_frames: int, size: int, bad: BadSamples
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames int16 [N, T, 2, size, size], labels int64 [N], names str [N] of one split."""
    index, n = _index(raw_root, split, layout, bad)
    lost_before = bad.lost(split)
    out = np.zeros((n, n_frames, 2, size, size), dtype=np.int16)  # filled in place: one copy in memory
    labels = np.zeros(n, dtype=np.int64)
    names: list[str] = []
    for i, (name, label, events) in enumerate(_read_index(index, split, layout, bad)):
        if i >= n:
            raise DataFormatError(raw_root, f"{split}: more samples than the {n} counted")
        frames = events_to_frames(events, window_us=window_us, n_frames=n_frames, out_size=(size, size))
        peak = int(frames.max(initial=0))
        if peak > np.iinfo(np.int16).max:
            raise DataFormatError(
                raw_root, f"sample {name}: {peak} events in one cell exceed the int16 cache's range"
            )
        out[i] = frames
        labels[i] = label
        names.append(name)
    kept = len(names)
    if kept + bad.lost(split) - lost_before != n:
        raise DataFormatError(raw_root, f"{split}: {kept} samples read, {n} counted")
    bad.check_split(raw_root, split, kept)
    return out[:kept], labels[:kept], np.array(names, dtype=str)


def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    layout: str,
    window_us: int = FRAME_US,
    n_frames: int = 60,
    size: int = 40,
    val_fraction: float | None = None,
    seed: int = 0,
    on_bad_sample: str = "error",
) -> dict:
    """Convert every sample of a raw copy to count frames and cache them.

    Each sample's events become ``n_frames`` windows of ``window_us`` µs starting at its first event, at
    ``size x size`` cells (:func:`bidl.data.formats.events.events_to_frames`; 128 -> 40 is the paper's ``//
    3.2``). The split is the dataset's own (trial lists users 01-23 / 24-29, or tonic's Train/Test folders).

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad recording
    (``.aedat``: empty, truncated, AEDAT 2, timestamps out of range, coordinates off the sensor), tonic
    ``.npy`` file or gesture window (a ``*_labels.csv`` row whose window holds no event of its recording,
    e.g. one outside the recording's time span; the error names the csv file and line); ``"skip"`` leaves it
    out (an ``.aedat`` with every labelled gesture of its trial, a window alone) and lists it in split.json's
    ``skipped``. The trial lists and ``*_labels.csv`` files are not samples: a malformed one is fatal under
    both policies, and so is a trial listed twice, in one list or in both (its gestures would be read twice
    or reach both splits).

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure):

    - ``out_dir/train.npz``, ``out_dir/test.npz`` (``np.savez_compressed``): ``frames`` int16
      ``[N, T, 2, H, W]`` (channel 0 OFF, 1 ON counts), ``labels`` int64 ``[N]`` (0..10), ``names`` str
      ``[N]``.
    - ``out_dir/split.json``: layout, raw root, parameters, class names, per split the sample names and the
      counts per class, the skipped files (``skipped``: ``n``, ``samples`` with path and problem), and, if
      ``val_fraction`` is set, a validation subset of the training samples drawn per class with ``seed``
      (``val.train_indices`` index rows of train.npz, which still holds them all).

    Raises:
        DataFormatError: malformed raw files (naming them), a split whose every recording was skipped
            (naming the raw root), or a cell count beyond int16 (never wrapped).
        ConfigError: unknown layout or on_bad_sample, or a val_fraction outside (0, 1).

    Returns:
        The content of split.json.
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: {layout!r} is not one of {LAYOUTS}")
    check_fraction("val_fraction", val_fraction)
    bad = BadSamples(
        on_bad_sample, unit="recordings or gesture windows" if layout == "ibm_aedat31" else "sample files"
    )
    summary: dict = {
        "dataset": "DVS128 Gesture",
        "layout": layout,
        "raw_root": str(raw_root),
        "split_source": "the dataset's own: trials_to_train.txt / trials_to_test.txt (the release: users "
        "01-23 / 24-29); tonic_npy: ibmGestureTrain / ibmGestureTest",
        "params": {
            "window_us": window_us,
            "n_frames": n_frames,
            "size": size,
            "val_fraction": val_fraction,
            "seed": seed,
            "on_bad_sample": on_bad_sample,
            "t_start": "first event of each sample",
        },
        "frames": {"dtype": "int16", "shape": ["N", n_frames, 2, size, size], "channels": ["OFF", "ON"]},
        "class_names": _class_names(raw_root, layout),
    }

    def build(split: str) -> SplitCache:
        frames, labels, names = _frames_of_split(raw_root, split, layout, window_us, n_frames, size, bad)
        log.info("%s: %d samples, frames %s", split, len(labels), frames.shape)
        return SplitCache({"frames": frames, "labels": labels, "names": names}, {"names": names.tolist()})

    return write_split_cache(out_dir, summary, bad, SPLITS, build, val_fraction=val_fraction, seed=seed)


class DVS128Frames(DenseSplit):
    """One cached split (``train.npz`` / ``test.npz`` from :func:`preprocess`), held in memory.

    ``dataset[i]`` is ``(frames, label)``: float32 ``[T, 2, H, W]`` event counts (T = 60, H = W = 40 by
    default; channel 0 OFF, 1 ON) and an int label 0..10. The exposed rows are kept as one int16 tensor
    ``[N, T, 2, H, W]`` (:attr:`frames`). Arguments, :attr:`labels`, :attr:`names` and errors: see
    :class:`bidl.data.cache.CachedSplit`.
    """

    KEYS = ("frames",)
    KIND = "frame"
    N_CLASSES = N_CLASSES
    DTYPE = np.int16
    LAYOUT = "[N, T, 2, H, W]"
