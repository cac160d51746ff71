"""RGB-gesture (paper section 5.1.1, moving trajectory processing): reader and difference frames.

The authors' RGB-gesture recordings (10 hand gestures seen by an ordinary camera, decoded at 25 fps; 760
training and 102 validation clips) are not public. This module reads a copy placed in this layout (the
stand-in of :func:`generate_standin` writes the same)::

    raw_root/classes.txt                          optional: class names, one per line, label = line index
    raw_root/train/<class name>/<clip id>/00001.jpg, 00002.jpg, ...     JPEG frames (grey or RGB), 25 fps
    raw_root/val/<class name>/<clip id>/00001.jpg, ...

Without ``classes.txt`` the labels are the sorted class folder names of ``train/``. The split is the copy's
own: ``train/`` -> ``train``, ``val/`` -> ``test``.

Preprocessing (:func:`difference_frames`), per clip of F frames:

1. RGB -> grey with ITU-R 601 luma, ``L = 0.299 R + 0.587 G + 0.114 B`` (PIL's ``convert("L")``), 0..255.
2. Differences of adjacent frames ``D_t = L_t - L_{t-1}``, t = 1..F-1, at the camera's resolution.
3. Threshold (``threshold`` grey levels, default 15): channel 1 ("brighter", like a DVS ON event) =
   ``D_t > threshold``, channel 0 ("darker", OFF) = ``D_t < -threshold``; the channel order is the DVS128
   cache's (0 OFF, 1 ON) so that DVS128 weights can initialise the network, as in the paper.
4. Each binary map is resized to 40 x 40 by area averaging (the fraction of the cell's source pixels that
   changed, 0..1; PIL ``BOX`` filter on float images, or an exact block mean when the size divides).
5. T = 60: the first 60 difference frames are kept; a clip with fewer than 61 frames is padded at the end
   with empty (zero) frames.

Cache: ``frames`` uint8 ``[N, 60, 2, 40, 40]`` = ``floor(255 * fraction + 0.5)``;
:class:`RGBGestureFrames` returns it / 255 as float32.

Stand-in: :mod:`bidl.data.standins.rgb_gesture` (a generated copy in the real layout); its entry points
:data:`ORDER_PAIRS`, :data:`STANDIN_CLASSES`, :func:`generate_standin`, :func:`standin_clip`,
:func:`standin_positions` are importable from here."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bidl.data.cache import DenseSplit
from bidl.data.formats.jpeg import clip_frame_size, jpeg_structure, verify_jpeg
from bidl.data.preprocessing import BadSamples, SplitCache, write_split_cache
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError, DownloadError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = ("ORDER_PAIRS", "STANDIN_CLASSES", "generate_standin", "standin_clip", "standin_positions")
"""Names of :mod:`bidl.data.standins.rgb_gesture` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "rgb_gesture", _STANDIN_EXPORTS)

SPLIT_DIRS = {"train": "train", "test": "val"}
"""Cache split -> folder of the raw copy."""
FPS = 25
N_FRAMES = 60
SIZE = 40
THRESHOLD = 15.0
"""Default threshold on the grey-level difference of adjacent frames (0..255 scale)."""

_FRAME_NAME = re.compile(r"^\d{5}\.jpg$")


# =========================================================================================================
# Placed files and reading
# =========================================================================================================
def _instructions(raw_root: Path) -> str:
    return (
        "The RGB-gesture dataset of the BIDL paper (Wu et al. 2023, section 5.1.1: 10 gestures, ordinary "
        "camera, 25 fps, 760 training + 102 validation clips) is NOT public; neither the paper nor the "
        "authors' code (LynxiTech/BIDL) gives a download. To use your own recordings, place JPEG frames "
        f"(grey or RGB, 25 fps, 00001.jpg, 00002.jpg, ... per clip) as {raw_root}/train/<class>/<clip>/ and "
        f"{raw_root}/val/<class>/<clip>/, optionally with {raw_root}/classes.txt listing the class names in "
        "label order (else: sorted folder names). Without them use the generated stand-in "
        "(scripts/make_standin.py rgb_gesture ...)."
    )


def check_raw(raw_root: str | Path) -> None:
    """Check that a placed RGB-gesture copy has ``train/`` and ``val/`` with at least one clip each.

    Raises:
        DownloadError: saying that the data is not public, what is missing and the layout to place.
    """
    raw_root = Path(raw_root).absolute()
    problems = []
    for folder in SPLIT_DIRS.values():
        split_dir = raw_root / folder
        if not split_dir.is_dir():
            problems.append(f"missing folder {split_dir}")
        elif next(split_dir.glob("*/*/00001.jpg"), None) is None:
            problems.append(f"{split_dir} holds no <class>/<clip>/00001.jpg")
    if problems:
        raise DownloadError(f"rgb_gesture/authors: {'; '.join(problems)}.\n{_instructions(raw_root)}")


def class_names(raw_root: str | Path) -> list[str]:
    """Class names in label order: ``classes.txt`` if present, else the sorted class folders of ``train/``.

    Raises:
        DataFormatError: an empty or duplicated classes.txt, or no class folder.
    """
    raw_root = Path(raw_root)
    listing = raw_root / "classes.txt"
    if listing.is_file():
        try:
            names = [
                line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFormatError(listing, f"cannot read: {exc}") from exc
        if not names or len(set(names)) != len(names):
            raise DataFormatError(listing, "expected distinct class names, one per line")
        return names
    names = (
        sorted(p.name for p in (raw_root / "train").iterdir() if p.is_dir())
        if (raw_root / "train").is_dir()
        else []
    )
    if not names:
        raise DataFormatError(raw_root / "train", "no class folders")
    return names


def list_clips(
    raw_root: str | Path, split: str, names: Sequence[str], *, bad: BadSamples | None = None
) -> list[tuple[str, int, list[Path]]]:
    """``(clip name "<class>/<clip>", label, frame paths)`` of one split, sorted by class then clip.

    ``bad``: where a clip folder without frames goes (:class:`bidl.data.preprocessing.BadSamples`: raised,
    or skipped and recorded); without it, it raises.

    Raises:
        ConfigError: unknown split. DataFormatError: a missing split folder, a class folder not in
            ``names``, a clip folder without ``%05d.jpg`` frames (unless ``bad`` skips it).
    """
    bad = BadSamples() if bad is None else bad  # none given: the "error" policy, which raises
    if split not in SPLIT_DIRS:
        raise ConfigError(f"split: {split!r} is not one of {tuple(SPLIT_DIRS)}")
    split_dir = Path(raw_root) / SPLIT_DIRS[split]
    if not split_dir.is_dir():
        raise DataFormatError(split_dir, "split folder is missing")
    index = {name: k for k, name in enumerate(names)}
    out = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name not in index:
            raise DataFormatError(class_dir, f"class {class_dir.name!r} is not one of {list(names)}")
        for clip_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            frames = sorted(p for p in clip_dir.iterdir() if _FRAME_NAME.match(p.name))
            if not frames:
                error = DataFormatError(clip_dir, "clip folder has no %05d.jpg frames")
                bad.reject(error, split=split)
                continue
            out.append((f"{class_dir.name}/{clip_dir.name}", index[class_dir.name], frames))
    return out


def read_gray_frame(path: str | Path) -> np.ndarray:
    """Decode one JPEG frame to uint8 ``[H, W]`` grey (ITU-R 601 luma), after checking all of its structure
    (:func:`bidl.data.formats.jpeg.jpeg_structure`).

    Raises:
        DataFormatError: not a JPEG (no FF D8 FF signature), damaged in its structure or undecodable.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read frame: {exc}") from exc
    jpeg_structure(path, data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(path, f"cannot decode JPEG: {exc}") from exc


def read_gray_clip(frames: Sequence[Path]) -> np.ndarray:
    """uint8 ``[F, H, W]`` grey frames; all frames must have one size (else DataFormatError naming one)."""
    out = [read_gray_frame(p) for p in frames]
    for p, f in zip(frames, out):
        if f.shape != out[0].shape:
            raise DataFormatError(
                p, f"frame size {f.shape} differs from the clip's first frame {out[0].shape}"
            )
    return np.stack(out)


# =========================================================================================================
# Difference frames
# =========================================================================================================
def _area_resize(maps: np.ndarray, size: int) -> np.ndarray:
    """Area-average ``[K, H, W]`` float maps to ``[K, size, size]`` (block mean or PIL BOX per map)."""
    k, h, w = maps.shape
    if h % size == 0 and w % size == 0:
        return (
            maps.reshape(k, size, h // size, size, w // size)
            .mean(axis=(2, 4), dtype=np.float64)
            .astype(np.float32)
        )
    out = np.empty((k, size, size), dtype=np.float32)
    for i in range(k):
        out[i] = np.asarray(Image.fromarray(maps[i], mode="F").resize((size, size), Image.Resampling.BOX))
    return out


def difference_frames(
    gray: np.ndarray, *, threshold: float = THRESHOLD, size: int = SIZE, n_frames: int = N_FRAMES
) -> np.ndarray:
    """Steps 2-5 of the module docstring: grey uint8 ``[F, H, W]`` -> uint8 ``[n_frames, 2, size, size]``.

    Channel 0: fraction of pixels that got darker by more than ``threshold``; channel 1: brighter; both
    scaled to 0..255 (``floor(255 * fraction + 0.5)``). Difference frame t (0-based) compares frames t+1 and
    t; frames beyond F - 1 differences are zero.
    """
    gray = np.asarray(gray)
    if gray.ndim != 3:
        raise ValueError(f"difference_frames: expected [F, H, W], got {gray.shape}")
    diff = np.diff(gray[: n_frames + 1].astype(np.int16), axis=0)  # [min(F - 1, n), H, W]
    n = diff.shape[0]
    maps = np.empty((n, 2, *diff.shape[1:]), dtype=np.float32)
    maps[:, 0] = diff < -threshold
    maps[:, 1] = diff > threshold
    out = np.zeros((n_frames, 2, size, size), dtype=np.uint8)
    if n:
        small = _area_resize(maps.reshape(2 * n, *diff.shape[1:]), size).reshape(n, 2, size, size)
        out[:n] = np.clip(np.floor(small * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return out


def _frames_of_split(
    raw_root: Path,
    split: str,
    names: Sequence[str],
    threshold: float,
    size: int,
    n_frames: int,
    bad: BadSamples,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, list[Path]]]]:
    """Difference frames uint8 [N, n_frames, 2, size, size], clip lengths [N] and kept clips of a split."""

    def read(clip: tuple[str, int, list[Path]]) -> np.ndarray:
        paths = clip[2]
        clip_frame_size(paths)
        gray = read_gray_clip(paths[: n_frames + 1])  # the frames used, each checked whole and decoded
        for path in paths[n_frames + 1 :]:  # never used, but decoded once too: no damaged frame passes
            verify_jpeg(path)
        return gray

    clips = list_clips(raw_root, split, names, bad=bad)
    frames = np.zeros((len(clips), n_frames, 2, size, size), dtype=np.uint8)
    lengths = np.zeros(len(clips), dtype=np.int64)
    kept = []
    for clip, gray in bad.screen(clips, read, split=split):
        lengths[len(kept)] = len(clip[2])
        frames[len(kept)] = difference_frames(gray, threshold=threshold, size=size, n_frames=n_frames)
        kept.append(clip)
    bad.check_split(raw_root, split, len(kept))
    return frames[: len(kept)], lengths[: len(kept)], kept


def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    threshold: float = THRESHOLD,
    size: int = SIZE,
    n_frames: int = N_FRAMES,
    on_bad_sample: str = "error",
) -> dict:
    """Turn every clip of a raw copy (real or stand-in) into difference frames and cache them.

    Every frame file of a clip is checked (:func:`bidl.data.formats.jpeg.clip_frame_size`: JPEG signature,
    header, end-of-image marker, one size per clip), then checked whole and decoded once
    (:func:`bidl.data.formats.jpeg.jpeg_structure` and PIL): the first ``n_frames + 1``, the ones used, to
    grey, the others only to find a damaged frame.

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad clip (a clip folder
    without frames, a frame file that is empty, truncated, not a JPEG, damaged in its structure,
    undecodable or of another size than the clip's first frame); ``"skip"`` leaves the clip out and lists
    the file in split.json's ``skipped``.
    A missing split folder, a class folder not in the class list and an unreadable classes.txt are fatal
    under both policies.

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure): ``out_dir/train.npz``
    (from ``train/``), ``out_dir/test.npz`` (from ``val/``), each with ``frames`` uint8
    ``[N, n_frames, 2, size, size]`` (channel 0 darker, 1 brighter; 0..255 = fraction of changed pixels),
    ``labels`` int64 ``[N]``, ``names`` str ``[N]`` (``<class>/<clip>``), and ``out_dir/split.json``
    (parameters, class names, per split the names, counts per class and how many clips were padded / cut to
    ``n_frames``, and the skipped files under ``skipped``).

    Returns:
        The content of split.json.

    Raises:
        DownloadError: the copy is not in place (:func:`check_raw`). DataFormatError: malformed files,
            naming them, or a split whose every clip was skipped (naming the raw root). ConfigError: bad
            parameters.
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if size < 1 or n_frames < 1 or threshold < 0:
        raise ConfigError("size and n_frames must be >= 1 and threshold >= 0")
    bad = BadSamples(on_bad_sample, unit="clips")
    check_raw(raw_root)
    names = class_names(raw_root)
    summary: dict = {
        "dataset": "RGB-gesture",
        "raw_root": str(raw_root),
        "split_source": "the copy's own: train/ -> train, val/ -> test",
        "params": {
            "threshold": threshold,
            "size": size,
            "n_frames": n_frames,
            "fps": FPS,
            "on_bad_sample": on_bad_sample,
        },
        "frames": {
            "dtype": "uint8",
            "shape": ["N", n_frames, 2, size, size],
            "channels": ["darker (OFF)", "brighter (ON)"],
            "value": "round(255 * fraction of the cell's pixels whose grey level changed beyond threshold)",
            "time": f"first {n_frames} differences of adjacent frames; shorter clips padded with zeros",
        },
        "class_names": names,
    }

    def build(split: str) -> SplitCache:
        frames, lengths, clips = _frames_of_split(raw_root, split, names, threshold, size, n_frames, bad)
        labels = np.array([label for _, label, _ in clips], dtype=np.int64)
        clip_names = np.array([name for name, _, _ in clips], dtype=str)
        log.info("%s: %d clips -> %s", split, len(clips), frames.shape)
        info = {
            "padded": int((lengths < n_frames + 1).sum()),
            "cut": int((lengths > n_frames + 1).sum()),
            "names": clip_names.tolist(),
        }
        return SplitCache({"frames": frames, "labels": labels, "names": clip_names}, info)

    return write_split_cache(out_dir, summary, bad, SPLIT_DIRS, build)


class RGBGestureFrames(DenseSplit):
    """One cached split (``train.npz`` / ``test.npz`` of :func:`preprocess`), held in memory.

    ``dataset[i]`` is ``(frames, label)``: float32 ``[60, 2, 40, 40]`` (T, channel 0 darker / 1 brighter,
    H, W), the fraction of changed pixels per cell in [0, 1], and an int label. The exposed rows are kept
    as one uint8 tensor :attr:`frames`. Arguments, :attr:`labels`, :attr:`names` and errors: see
    :class:`bidl.data.cache.CachedSplit`.
    """

    KEYS = ("frames",)
    KIND = "frame"
    DTYPE = np.uint8
    LAYOUT = "[N, T, 2, H, W]"
    SCALE = 255.0
