"""20BN-Jester v1: placed-file check, JPEG-folder reader, clip index and frame sampling.

Raw layout read by :func:`preprocess` (Jester needs a login at Qualcomm, so it is placed by hand; the
stand-in of :func:`generate_standin` writes the same)::

    raw_root/20bn-jester-v1/<video id>/00001.jpg, 00002.jpg, ...    JPEG frames, 100 px high, 12 fps
    raw_root/jester-v1-labels.csv         one class name per line (27 lines)
    raw_root/jester-v1-train.csv          "<video id>;<class name>" per line, no header
    raw_root/jester-v1-validation.csv

Qualcomm's package names the three csv files ``labels/labels.csv``, ``labels/train.csv`` and
``labels/validation.csv`` (found under ``raw_root/labels/`` or
``raw_root/20bn-jester-download-package-labels/labels/``); either naming is accepted
(:data:`LABEL_FILE_LAYOUTS`, first complete set wins). Qualcomm ships the frames as 23 zips, each holding one
part ``20bn-jester-v1-NN`` of a gzipped tar; :func:`unpack_qualcomm_parts` joins and extracts them.
Label id = line index in the labels file. The split is the dataset's own: train csv -> ``train``,
validation csv -> ``test`` (the test csv has no public labels).

Cache (:func:`preprocess`): an index of the raw copy, not the frames (decoded, the real dataset's 148k clips
would take about 200 GB). Per split it lists every clip's frame numbers (the ``%05d`` of the file names),
ragged: ``frame_numbers`` int32 ``[sum F_i]`` with ``offsets`` int64 ``[N + 1]`` (clip i =
``frame_numbers[offsets[i]:offsets[i + 1]]``, F_i frames), plus ``raw_root`` (relative to the index) and
the frame ``size``. :class:`JesterClips` decodes the 16 frames an item uses from
``raw_root/20bn-jester-v1/<video id>/%05d.jpg`` when the item is read, as the authors' loader does
(converted to RGB, the whole frame resized to ``size x size`` bilinear: the aspect ratio is not kept, as
Jester frames are 100 px high and of varying width). The raw copy must therefore stay where it was
preprocessed (or be passed as ``JesterClips(..., raw_root=...)``). The frames are sampled per item
(:func:`eval_indices`, :func:`train_indices`).

Frame sampling (F = clip length, n = 16 frames, s = stride 1.5, positions rounded half up, clipped to
``[0, F - 1]``):

- evaluation (fixed, centred): stride ``s_e = min(s, (F - 1) / (n - 1))``; positions
  ``(F - 1) / 2 + (k - (n - 1) / 2) * s_e`` for k = 0..n-1. For F = 37: 7, 8, 10, 11, 13, 14, 16, 17, 19,
  20, 22, 23, 25, 26, 28, 29.
- training (random, seeded per (seed, epoch, item index)): stride ``s_r ~ U(s - j, s + j)`` (j =
  ``stride_jitter`` = 0.5: U(1, 2), mean 1.5), shrunk to ``(F - 1) / (n - 1)`` if the clip is too short;
  start ``a ~ U(0, F - 1 - (n - 1) s_r)``; positions ``a + k s_r``.

A clip shorter than the span is therefore sampled with a smaller stride (frames repeat when F < n).

Stand-in: :mod:`bidl.data.standins.jester` (a generated copy in the real layout); its entry points
:data:`REVERSED_PAIRS`, :data:`STANDIN_CLASSES`, :func:`generate_standin`, :func:`standin_clip` are importable
from here."""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bidl.data.cache import CachedSplit
from bidl.data.formats.jpeg import JPEG_MAGIC, NOT_JPEG, clip_frame_size
from bidl.data.preprocessing import BadSamples, SplitCache, write_split_cache
from bidl.data.staging import staging_dir
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError, DownloadError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = ("REVERSED_PAIRS", "STANDIN_CLASSES", "generate_standin", "standin_clip")
"""Names of :mod:`bidl.data.standins.jester` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "jester", _STANDIN_EXPORTS)

CLASSES: tuple[str, ...] = (
    "Doing other things",
    "Drumming Fingers",
    "No gesture",
    "Pulling Hand In",
    "Pulling Two Fingers In",
    "Pushing Hand Away",
    "Pushing Two Fingers Away",
    "Rolling Hand Backward",
    "Rolling Hand Forward",
    "Shaking Hand",
    "Sliding Two Fingers Down",
    "Sliding Two Fingers Left",
    "Sliding Two Fingers Right",
    "Sliding Two Fingers Up",
    "Stop Sign",
    "Swiping Down",
    "Swiping Left",
    "Swiping Right",
    "Swiping Up",
    "Thumb Down",
    "Thumb Up",
    "Turning Hand Clockwise",
    "Turning Hand Counterclockwise",
    "Zooming In With Full Hand",
    "Zooming In With Two Fingers",
    "Zooming Out With Full Hand",
    "Zooming Out With Two Fingers",
)
"""The 27 classes of Jester v1 (alphabetical, as BIDL's ``Jester20bn.CLASSES``); the labels file decides."""

FRAMES_DIR = "20bn-jester-v1"
FPS = 12
FRAME_HEIGHT = 100
SPLITS = ("train", "test")
DOWNLOAD_PAGE = "https://www.qualcomm.com/developer/software/jester-dataset"
LABEL_FILE_LAYOUTS: tuple[dict[str, str], ...] = (
    {
        "labels": "jester-v1-labels.csv",
        "train": "jester-v1-train.csv",
        "validation": "jester-v1-validation.csv",
    },
    {"labels": "labels/labels.csv", "train": "labels/train.csv", "validation": "labels/validation.csv"},
    {
        "labels": "20bn-jester-download-package-labels/labels/labels.csv",
        "train": "20bn-jester-download-package-labels/labels/train.csv",
        "validation": "20bn-jester-download-package-labels/labels/validation.csv",
    },
)
"""Accepted names of the three csv files, relative to the raw root (20BN's, then Qualcomm's)."""
QUALCOMM_ZIPS: tuple[str, ...] = (
    "20bn-jester-download-package-labels.zip",
    *(f"20bn-jester-v1-{k:02d}.zip" for k in range(23)),
)
"""The 24 archives of Qualcomm's download page."""

_FRAME_NAME = re.compile(r"^\d{5}\.jpg$")
_HEADER_LINES = {"video;label", "id;label"}


# =========================================================================================================
# Placed files
# =========================================================================================================
def find_label_files(raw_root: str | Path) -> dict[str, Path] | None:
    """The first complete set of (labels, train, validation) csv files of :data:`LABEL_FILE_LAYOUTS`."""
    raw_root = Path(raw_root)
    for layout in LABEL_FILE_LAYOUTS:
        paths = {k: raw_root / v for k, v in layout.items()}
        if all(p.is_file() for p in paths.values()):
            return paths
    return None


def _placement_instructions(raw_root: Path) -> str:
    a, b = LABEL_FILE_LAYOUTS[0], LABEL_FILE_LAYOUTS[1]
    return "\n".join(
        [
            "Place exactly:",
            f"  {raw_root / FRAMES_DIR}/<video id>/00001.jpg ...   (one folder of JPEG frames per video)",
            f"  {raw_root / a['labels']}, {raw_root / a['train']}, {raw_root / a['validation']}",
            f"  or Qualcomm's names {raw_root / b['labels']}, {raw_root / b['train']},"
            f" {raw_root / b['validation']}",
            f"Where to get them: {DOWNLOAD_PAGE} (free registration/login; not scriptable). Download the 24 "
            f"archives {QUALCOMM_ZIPS[0]} and 20bn-jester-v1-00.zip ... 20bn-jester-v1-22.zip, unzip them "
            f"into {raw_root}, then either run bidl.data.jester.unpack_qualcomm_parts({str(raw_root)!r}) or "
            f"'cat 20bn-jester-v1-?? | tar zx' there (the zips hold the parts of one tar.gz).",
        ]
    )


def check_raw(raw_root: str | Path) -> dict[str, Path]:
    """Check that a placed Jester copy is complete enough to read; return its csv paths.

    Looks for ``raw_root/20bn-jester-v1/`` with at least one video folder holding ``00001.jpg`` and for the
    labels / train / validation csv files under either naming.

    Raises:
        DownloadError: listing what is missing, exactly which files go where, and the download page.
    """
    raw_root = Path(raw_root).absolute()
    problems = []
    frames = raw_root / FRAMES_DIR
    if not frames.is_dir():
        problems.append(f"missing folder {frames}")
    elif next((d for d in frames.iterdir() if (d / "00001.jpg").is_file()), None) is None:
        problems.append(f"{frames} holds no video folder with a 00001.jpg")
    labels = find_label_files(raw_root)
    if labels is None:
        problems.append("missing label files (neither naming is complete)")
    if problems:
        raise DownloadError(
            f"jester/qualcomm: the Jester copy under {raw_root} is incomplete: "
            + "; ".join(problems)
            + ".\n"
            + _placement_instructions(raw_root)
        )
    assert labels is not None
    return labels


class _ConcatenatedParts(io.RawIOBase):
    """A read-only stream over several files one after the other (``cat part-00 part-01 ...``)."""

    def __init__(self, paths: Sequence[Path]):
        self._paths = list(paths)
        self._fh: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while True:
            if self._fh is None:
                if not self._paths:
                    return 0
                self._fh = open(self._paths.pop(0), "rb")  # noqa: SIM115 - closed when exhausted
            n = self._fh.readinto(buffer)
            if n:
                return n
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        super().close()


def unpack_qualcomm_parts(raw_root: str | Path) -> bool:
    """Join ``raw_root/20bn-jester-v1-??`` (tar.gz parts from Qualcomm's zips) and extract the frames.

    Does nothing and returns False when ``raw_root/20bn-jester-v1/`` exists or no part is found. Members
    go through tarfile's ``"data"`` filter (no absolute paths, ``..``, links out of the tree or device
    files) into a temporary folder (``raw_root/.20bn-jester-v1.extract-<random>``;
    those of killed runs are removed first) that is renamed to ``raw_root/20bn-jester-v1`` only when
    complete.

    Raises:
        DataFormatError: a corrupt archive or one that does not hold ``20bn-jester-v1/``.
    """
    raw_root = Path(raw_root)
    target = raw_root / FRAMES_DIR
    parts = sorted(p for p in raw_root.glob(f"{FRAMES_DIR}-[0-9][0-9]") if p.is_file())
    if target.exists() or not parts:
        return False
    with staging_dir(raw_root, f".{FRAMES_DIR}.extract-") as stage:
        tmp = stage / "content"  # beside the staging folder's lock file
        log.info("extracting %d tar parts %s ... into %s", len(parts), parts[0].name, target)
        try:
            with tarfile.open(fileobj=io.BufferedReader(_ConcatenatedParts(parts)), mode="r|gz") as tf:
                for member in tf:
                    tf.extract(member, tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataFormatError(parts[0], f"cannot extract the joined tar parts: {exc}") from exc
        if not (tmp / FRAMES_DIR).is_dir():
            raise DataFormatError(parts[0], f"the joined tar parts hold no {FRAMES_DIR}/ folder")
        (tmp / FRAMES_DIR).rename(target)
    return True


# =========================================================================================================
# Reading
# =========================================================================================================
def read_label_names(path: str | Path) -> list[str]:
    """Class names from a labels file (one per line, blank lines ignored); label id = position.

    Raises:
        DataFormatError: missing/unreadable file, no names, a duplicate name, a name containing ``;``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DataFormatError(path, "labels file is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read labels file: {exc}") from exc
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DataFormatError(path, "no class names")
    for n, name in enumerate(names):
        if ";" in name:
            raise DataFormatError(path, f"class name {name!r} contains ';'")
        if name in names[:n]:
            raise DataFormatError(path, f"duplicate class name {name!r}")
    return names


def read_split_csv(path: str | Path, class_names: Sequence[str]) -> list[tuple[str, int]]:
    """``(video id, label id)`` per line of a ``<id>;<label name>`` csv (no header; an exact
    ``video;label`` / ``id;label`` first line is skipped).

    Read line by line rather than with pandas: the largest file (118,562 lines) reads in about 0.05 s, and
    every error names its line, which ``pandas.read_csv`` would not give for a missing ``;`` or a bad id.

    Raises:
        DataFormatError: missing file, a line without ``;``, an empty or path-like id, an unknown label
            name, a repeated id; each naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DataFormatError(path, "csv file is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read csv: {exc}") from exc
    index = {name: k for k, name in enumerate(class_names)}
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or (n == 1 and line.lower() in _HEADER_LINES):
            continue
        video, sep, label = line.partition(";")
        video, label = video.strip(), label.strip()
        if not sep:
            raise DataFormatError(path, f"line {n}: expected '<video id>;<label>', got {line!r}")
        if not video or "/" in video or "\\" in video or video in (".", ".."):
            raise DataFormatError(path, f"line {n}: bad video id {video!r}")
        if label not in index:
            raise DataFormatError(path, f"line {n}: unknown label {label!r}")
        if video in seen:
            raise DataFormatError(path, f"line {n}: video {video} listed twice")
        seen.add(video)
        out.append((video, index[label]))
    return out


def list_frames(folder: str | Path) -> list[Path]:
    """The ``%05d.jpg`` frames of a video folder in order.

    Raises:
        DataFormatError: the folder is missing or has no such frame.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, "video folder is missing")
    frames = sorted(p for p in folder.iterdir() if _FRAME_NAME.match(p.name))
    if not frames:
        raise DataFormatError(folder, "video folder has no %05d.jpg frames")
    return frames


def read_frame(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode one JPEG frame to uint8 ``[3, H, W]`` RGB (resized to ``size x size`` when given, bilinear).

    Raises:
        DataFormatError: naming the file: missing ("frame is missing"), unreadable, not starting with the
            JPEG signature or not decodable.
    """
    path = Path(path)
    data = _frame_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if size is not None:
                img.draft("RGB", (size, size))  # DCT scaling to >= size: faster decoding of large frames
            rgb = img.convert("RGB")
            if size is not None:
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(path, f"cannot decode JPEG: {exc}") from exc
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _frame_bytes(path: Path) -> bytes:
    """The bytes of a frame file that starts with the JPEG signature."""
    try:
        with path.open("rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise DataFormatError(path, "frame is missing") from exc
    except OSError as exc:
        raise DataFormatError(path, f"cannot read frame: {exc}") from exc
    if not data.startswith(JPEG_MAGIC):
        raise DataFormatError(path, NOT_JPEG)
    return data


def frame_path(raw_root: str | Path, video: str, number: int) -> Path:
    """``raw_root/20bn-jester-v1/<video>/<number>.jpg`` (number as ``%05d``)."""
    return Path(raw_root) / FRAMES_DIR / video / f"{int(number):05d}.jpg"


def read_clip(folder: str | Path, size: int) -> np.ndarray:
    """All frames of a video folder as uint8 ``[F, 3, size, size]``."""
    return np.stack([read_frame(p, size) for p in list_frames(folder)])


# =========================================================================================================
# Frame sampling
# =========================================================================================================
def _to_indices(positions: np.ndarray, length: int) -> np.ndarray:
    return np.clip(np.floor(positions + 0.5), 0, length - 1).astype(np.int64)


def eval_indices(length: int, n_frames: int = 16, stride: float = 1.5) -> np.ndarray:
    """Centred frame indices with a fixed stride (see the module docstring); int64 ``[n_frames]``."""
    if length < 1:
        raise ValueError("clip length must be >= 1")
    step = min(stride, (length - 1) / (n_frames - 1)) if n_frames > 1 else 0.0
    positions = (length - 1) / 2 + (np.arange(n_frames) - (n_frames - 1) / 2) * step
    return _to_indices(positions, length)


def train_indices(
    length: int, rng: np.random.Generator, n_frames: int = 16, stride: float = 1.5, stride_jitter: float = 0.5
) -> np.ndarray:
    """Random frame indices: stride ~ U(stride +- jitter), uniform start (see the module docstring)."""
    if length < 1:
        raise ValueError("clip length must be >= 1")
    step = rng.uniform(stride - stride_jitter, stride + stride_jitter)
    if n_frames > 1:
        step = min(step, (length - 1) / (n_frames - 1))
    start = rng.uniform(0.0, max(length - 1 - (n_frames - 1) * step, 0.0))
    return _to_indices(start + np.arange(n_frames) * step, length)


# =========================================================================================================
# Cache
# =========================================================================================================
def _split_entries(
    raw_root: Path, csv_path: Path, class_names: Sequence[str], min_frames: int, split: str, bad: BadSamples
) -> tuple[list[tuple[str, int, list[Path]]], list[str]]:
    """Clips of one split's csv with their frame files, and the ids of those shorter than ``min_frames``;
    a missing or empty video folder is raised or left out by ``bad``."""
    kept, dropped = [], []
    rows = read_split_csv(csv_path, class_names)
    listed = bad.screen(rows, lambda row: list_frames(raw_root / FRAMES_DIR / row[0]), split=split)
    for (video, label), frames in listed:
        if len(frames) < min_frames:
            dropped.append(video)
        else:
            kept.append((video, label, frames))
    return kept, dropped


def _checked(entries: list[tuple[str, int, list[Path]]], split: str, bad: BadSamples) -> list:
    """The entries whose frame files all pass :func:`bidl.data.formats.jpeg.clip_frame_size` with
    ``decode=True`` (each checked whole and decoded once; the others are raised or left out by ``bad``)."""
    checked = bad.screen(entries, lambda entry: clip_frame_size(entry[2], decode=True), split=split)
    return [entry for entry, _ in checked]


def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    size: int = 32,
    min_frames: int = 16,
    max_clips: int | None = None,
    seed: int = 0,
    on_bad_sample: str = "error",
) -> dict:
    """Index the clips of a raw Jester copy (real or stand-in): their labels and frame numbers.

    No frame is stored here: :class:`JesterClips` decodes the frames an item uses from the raw copy when
    the item is read, so the raw copy must stay at ``raw_root`` (the index stores its path relative to
    ``out_dir``, so that the project folder can move as a whole; a copy moved on its own is passed as
    ``JesterClips(..., raw_root=...)``). Every frame file of an indexed clip is checked whole and decoded
    once (:func:`bidl.data.formats.jpeg.clip_frame_size` with ``decode=True``: the JPEG signature, every
    marker segment, the entropy-coded data up to the end-of-image marker, a full decode with PIL, and one size
    for all frames of a clip), so that a frame training could not decode stops (or is skipped) here rather
    than in an epoch. Clips with fewer than
    ``min_frames`` frames are dropped (BIDL drops clips < 16 frames); ``max_clips`` keeps a seeded random
    subset of that many clips per split (all when ``None``), drawn before the frame check. A raw copy that
    still holds Qualcomm's tar parts is unpacked first (:func:`unpack_qualcomm_parts`).

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad clip (a missing or
    empty video folder, a frame file that is empty, truncated, not a JPEG, damaged in its structure,
    undecodable, or of another size than the clip's first frame); ``"skip"`` leaves the clip out and lists
    the file in split.json's ``skipped``.
    The labels and split csv files are fatal under both policies.

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure): ``out_dir/train.npz``
    (from the train csv) and ``out_dir/test.npz`` (from the validation csv), each with ``frame_numbers``
    int32 ``[sum F_i]`` (the numbers of the ``%05d.jpg`` files, in order), ``offsets`` int64 ``[N + 1]``
    (clip i = ``frame_numbers[offsets[i]:offsets[i + 1]]``), ``labels`` int64 ``[N]``, ``names`` str ``[N]``
    (video ids, the folder names under ``raw_root/20bn-jester-v1/``), ``raw_root`` (0-d str, relative to
    ``out_dir``) and ``size`` (0-d int64, the side the frames are resized to); and ``out_dir/split.json``
    (parameters, class names, sampling rule, per split the ids, the counts per class, dropped ids; the
    skipped files under ``skipped``).

    Returns:
        The content of split.json.

    Raises:
        DownloadError: files not in place (:func:`check_raw`). DataFormatError: malformed files (a csv, an
            empty video folder, a bad frame file), naming them, or a split whose every clip was skipped
            (naming the raw root). ConfigError: bad size / min_frames / max_clips / on_bad_sample.
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if size < 1 or min_frames < 1 or (max_clips is not None and max_clips < 1):
        raise ConfigError("size, min_frames and max_clips must be >= 1")
    bad = BadSamples(on_bad_sample, unit="clips")
    unpack_qualcomm_parts(raw_root)
    files = check_raw(raw_root)
    class_names = read_label_names(files["labels"])
    summary: dict = {
        "dataset": "20BN-Jester v1",
        "raw_root": str(raw_root),
        "label_files": {k: str(v) for k, v in files.items()},
        "split_source": "the dataset's own: train csv -> train, validation csv -> test",
        "params": {
            "size": size,
            "min_frames": min_frames,
            "max_clips": max_clips,
            "seed": seed,
            "on_bad_sample": on_bad_sample,
        },
        "frames": {
            "dtype": "uint8 RGB, returned as float32 in [0, 1]",
            "source": "decoded on the fly from raw_root/20bn-jester-v1/<video id>/%05d.jpg by "
            "bidl.data.jester.JesterClips; the cache is an index (frame numbers), the raw copy must stay "
            "at raw_root",
            "layout": "ragged: frame_numbers [sum F_i], clip i = frame_numbers[offsets[i]:offsets[i+1]]",
            "resize": "whole frame to size x size, bilinear (aspect ratio not kept)",
        },
        "sampling": "bidl.data.jester.eval_indices / train_indices (16 frames, stride 1.5, jitter 0.5)",
        "class_names": class_names,
    }
    csv_keys = {"train": "train", "test": "validation"}

    def build(split: str) -> SplitCache:
        entries, dropped = _split_entries(
            raw_root, files[csv_keys[split]], class_names, min_frames, split, bad
        )
        if max_clips is not None and len(entries) > max_clips:
            rng = np.random.default_rng([seed, 0 if split == "train" else 1])
            entries = [entries[i] for i in np.sort(rng.permutation(len(entries))[:max_clips])]
        entries = _checked(entries, split, bad)
        bad.check_split(raw_root, split, len(entries))
        lengths = np.array([len(f) for _, _, f in entries], dtype=np.int64)
        numbers = np.array([int(p.name[:5]) for _, _, paths in entries for p in paths], dtype=np.int32)
        names = np.array([video for video, _, _ in entries], dtype=str)
        arrays = {
            "frame_numbers": numbers,
            "offsets": np.r_[0, np.cumsum(lengths)].astype(np.int64),
            "labels": np.array([label for _, label, _ in entries], dtype=np.int64),
            "names": names,
            "raw_root": np.array(os.path.relpath(raw_root.absolute(), out_dir.absolute())),
            "size": np.array(size, dtype=np.int64),
        }
        info = {
            "frames_per_clip": {
                "min": int(lengths.min()) if lengths.size else 0,
                "max": int(lengths.max()) if lengths.size else 0,
            },
            "names": names.tolist(),
            "dropped_short": dropped,
        }
        log.info(
            "%s: %d clips, %d frames, %d dropped (< %d frames)",
            split,
            len(entries),
            len(numbers),
            len(dropped),
            min_frames,
        )
        return SplitCache(arrays, info)

    return write_split_cache(out_dir, summary, bad, csv_keys, build)


_UNIT_SCALE = torch.arange(256, dtype=torch.uint8).float().div_(255.0).numpy()
"""uint8 value -> float32 value / 255, as ``tensor.float().div_(255.0)`` computes it; a numpy lookup keeps the
per-item conversion off torch's thread pool, whose wake-up between the frame decodes costs milliseconds on a
busy machine."""


class JesterClips(CachedSplit):
    """One split (``train.npz`` / ``test.npz`` of :func:`preprocess`): an index whose frames are decoded
    from the raw JPEG folders when an item is read.

    ``dataset[i]`` is ``(clip, label)``: float32 ``[n_frames, 3, S, S]`` RGB in [0, 1] and an int label, S
    the ``size`` the index was made with (or the ``size`` given). Only the chosen frames are decoded
    (:func:`read_frame`, each distinct frame once per item), from
    ``raw_root/20bn-jester-v1/<video id>/%05d.jpg``: the raw copy must stay where it was preprocessed, or be
    given as ``raw_root``. With ``train=True`` the frames are drawn
    by :func:`train_indices` with a generator seeded by ``(seed, epoch, i)`` (call :meth:`set_epoch` before
    each epoch; the draw does not depend on worker processes, but a DataLoader with
    ``persistent_workers=True`` keeps the epoch its workers started with); otherwise by
    :func:`eval_indices`.

    Args:
        path: the ``.npz`` index (``frame_numbers`` cut into clips by ``offsets``, ``raw_root``, ``size``).
        train: random (training) or fixed centred (evaluation) sampling.
        n_frames, stride, stride_jitter: the sampling parameters (16, 1.5, 0.5).
        seed: seed of the training draws.
        raw_root: the raw copy's root, overriding the one stored in the index (a moved copy).
        size: decode the frames at this side instead of the index's ``size`` (one preprocessed index serves
            networks of several input sizes: Jester v2 at 224 px beside v1 at 112).
        transform, indices: see :class:`bidl.data.cache.CachedSplit` (also :attr:`labels`, :attr:`names`
            and the errors).

    Raises:
        DataFormatError: on opening, naming the index (wrong keys, dtypes, shapes) or the raw copy's frame
            folder (missing); on reading an item, naming the frame file (missing, not a JPEG, not
            decodable).
    """

    KEYS = ("frame_numbers", "offsets", "raw_root", "size")
    KIND = "clip"

    def __init__(
        self,
        path: str | Path,
        *,
        train: bool,
        n_frames: int = 16,
        stride: float = 1.5,
        stride_jitter: float = 0.5,
        seed: int = 0,
        raw_root: str | Path | None = None,
        size: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        indices: Sequence[int] | None = None,
    ):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size: the frame side must be an integer >= 1, got {size!r}")
        self._size_override = size
        self.train = train
        self.n_frames, self.stride, self.stride_jitter = n_frames, stride, stride_jitter
        self.seed = seed
        self.epoch = 0
        self._raw_root_override = None if raw_root is None else Path(raw_root).absolute()
        super().__init__(path, transform=transform, indices=indices)

    def _validate(self, arrays: dict[str, np.ndarray]) -> int:
        numbers, offsets = arrays["frame_numbers"], arrays["offsets"]
        raw_root, size, names = arrays["raw_root"], arrays["size"], arrays["names"]
        if numbers.dtype != np.int32 or numbers.ndim != 1 or (numbers.size and numbers.min() < 0):
            raise DataFormatError(
                self.path, f"frame_numbers must be int32 [F] >= 0, got {numbers.dtype} {numbers.shape}"
            )
        if raw_root.dtype.kind != "U" or raw_root.ndim != 0 or not str(raw_root):
            raise DataFormatError(
                self.path, f"raw_root must be a 0-d str, got {raw_root.dtype} {raw_root.shape}"
            )
        if size.dtype != np.int64 or size.ndim != 0 or int(size) < 1:
            raise DataFormatError(self.path, f"size must be a 0-d int64 >= 1, got {size.dtype} {size.shape}")
        if names.dtype.kind != "U":
            raise DataFormatError(self.path, f"names must be video ids (str), got {names.dtype}")
        n = offsets.shape[0] - 1 if offsets.ndim == 1 else -1
        if (
            offsets.dtype != np.int64
            or n < 0
            or offsets[0] != 0
            or offsets[-1] != numbers.shape[0]
            or (np.diff(offsets) < 1).any()
        ):
            raise DataFormatError(
                self.path,
                f"offsets ({offsets.dtype} {offsets.shape}) do not cut {numbers.shape[0]} frame numbers into"
                " clips of >= 1 frame",
            )
        return n

    def _store(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.frame_numbers = arrays["frame_numbers"]
        self.offsets = arrays["offsets"]
        self.size = self._size_override or int(arrays["size"])
        # stored relative to the index's folder (an absolute path stays absolute)
        stored = Path(os.path.normpath(self.path.absolute().parent / str(arrays["raw_root"])))
        self.raw_root = self._raw_root_override or stored
        frames_dir = self.raw_root / FRAMES_DIR
        if len(self) and not frames_dir.is_dir():
            raise DataFormatError(
                frames_dir,
                f"folder of the raw Jester copy is missing: the clip index {self.path} decodes its frames"
                " from there, so the raw copy must stay where it was preprocessed (or pass raw_root= for a"
                " moved copy)",
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random frame draws training items use."""
        self.epoch = int(epoch)

    def frame_indices(self, i: int) -> np.ndarray:
        """The frame indices (within the clip) item ``i`` uses now."""
        clip = int(self.rows[i])
        length = int(self.offsets[clip + 1] - self.offsets[clip])
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            return train_indices(length, rng, self.n_frames, self.stride, self.stride_jitter)
        return eval_indices(length, self.n_frames, self.stride)

    def frame_paths(self, i: int, indices: Sequence[int] | np.ndarray | None = None) -> list[Path]:
        """The JPEG files of item ``i``'s frames ``indices`` (within the clip; default: those it uses now)."""
        clip = int(self.rows[i])
        numbers = self.frame_numbers[self.offsets[clip] : self.offsets[clip + 1]]
        if indices is None:
            indices = self.frame_indices(i)
        return [frame_path(self.raw_root, self.names[i], numbers[k]) for k in np.asarray(indices)]

    def _read(self, path: Path) -> np.ndarray:
        try:
            return read_frame(path, self.size)
        except DataFormatError as exc:
            if path.exists():
                raise
            raise DataFormatError(
                path,
                f"frame is missing: the clip index {self.path} decodes its frames from the raw Jester copy"
                f" under {self.raw_root}, which is needed there (or pass raw_root= for a moved copy)",
            ) from exc

    def _sample(self, i: int) -> torch.Tensor:
        distinct, where = np.unique(self.frame_indices(i), return_inverse=True)
        frames = np.stack([self._read(p) for p in self.frame_paths(i, distinct)])
        return torch.from_numpy(_UNIT_SCALE[frames[where.reshape(-1)]])
