"""RGB-gesture (paper section 5.1.1, moving trajectory processing): reader, difference frames, stand-in.

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

Stand-in: 10 classes of moving-hand-like trajectories seen by a grey camera at 25 fps (the classes of the
DVS128 stand-in): eight direction pairs that differ only in the ORDER of two strokes (e.g. right-then-up vs
up-then-right; the second stroke starts at a frame boundary at a new uniformly random place, so the frames
of the two classes are identically distributed), and a circle run clockwise or counter-clockwise (these
two differ only near the frame's edges in single frames).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from bidl.data.cache import DenseSplit
from bidl.data.jpeg import clip_frame_size, jpeg_structure, verify_jpeg
from bidl.data.preprocessing import BadSamples, staged_cache
from bidl.data.staging import staged_replacement
from bidl.errors import ConfigError, DataFormatError, DownloadError
from bidl.io import atomic_savez, atomic_write_text

log = logging.getLogger(__name__)

STANDIN_CLASSES: tuple[str, ...] = (
    "right_then_up",
    "up_then_right",
    "left_then_down",
    "down_then_left",
    "right_then_down",
    "down_then_right",
    "left_then_up",
    "up_then_left",
    "circle_clockwise",
    "circle_counterclockwise",
)
"""The stand-in's 10 classes; index = label. Classes 2k and 2k+1 are order-only pairs (up = row 0)."""
ORDER_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))

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
    (:func:`bidl.data.jpeg.jpeg_structure`).

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
    clips = list_clips(raw_root, split, names, bad=bad)
    frames = np.zeros((len(clips), n_frames, 2, size, size), dtype=np.uint8)
    lengths = np.zeros(len(clips), dtype=np.int64)
    kept = []
    for clip in clips:
        paths = clip[2]
        try:
            clip_frame_size(paths)
            gray = read_gray_clip(paths[: n_frames + 1])  # the frames used, each checked whole and decoded
            for path in paths[n_frames + 1 :]:  # never used, but decoded once too: no damaged frame passes
                verify_jpeg(path)
        except DataFormatError as exc:
            bad.reject(exc, split=split)
            continue
        lengths[len(kept)] = len(paths)
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

    Every frame file of a clip is checked (:func:`bidl.data.jpeg.clip_frame_size`: JPEG signature, header,
    end-of-image marker, one size per clip), then checked whole and decoded once
    (:func:`bidl.data.jpeg.jpeg_structure` and PIL): the first ``n_frames + 1``, the ones used, to grey,
    the others only to find a damaged frame.

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
        "splits": {},
    }
    with staged_cache(out_dir) as stage:
        for split in SPLIT_DIRS:
            frames, lengths, clips = _frames_of_split(raw_root, split, names, threshold, size, n_frames, bad)
            labels = np.array([label for _, label, _ in clips], dtype=np.int64)
            clip_names = np.array([name for name, _, _ in clips], dtype=str)
            atomic_savez(stage / f"{split}.npz", frames=frames, labels=labels, names=clip_names)
            summary["splits"][split] = {
                "n": len(clips),
                "class_counts": np.bincount(labels, minlength=len(names)).tolist(),
                "padded": int((lengths < n_frames + 1).sum()),
                "cut": int((lengths > n_frames + 1).sum()),
                "names": clip_names.tolist(),
            }
            log.info("%s: %d clips -> %s", split, len(clips), frames.shape)
        summary["skipped"] = bad.summary()
        atomic_write_text(stage / "split.json", json.dumps(summary, indent=1) + "\n")
    return summary


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


# =========================================================================================================
# The stand-in generator
# =========================================================================================================
_FRAME_SIZE = 64  # px, square grey frames (64 -> 40 is not an integer ratio, as with a real camera)
_LENGTH = (52, 72)  # frames per clip (inclusive): some are padded, some cut to 60 differences
_RADIUS = (4.0, 6.0)  # px, the "hand"
_SPEED = (1.5, 2.4)  # px per frame (40 ms)
_SEGMENT_FRAMES = (8, 12)
_PAUSE_FRAMES = (3, 6)  # the hand is out of view
_CIRCLE_RADIUS = (9.0, 13.0)
_CIRCLE_PERIOD = (26.0, 34.0)  # frames per turn
_CIRCLE_FRAMES = (20, 28)
_HAND_CONTRAST = (55.0, 85.0)  # grey levels above the background
_NOISE = 1.5  # grey levels per pixel and frame
_JPEG_QUALITY = 90
_DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def _repetition(rng: np.random.Generator, label: int) -> tuple[np.ndarray, int]:
    """Centre positions ``[n, 2]`` (x, y) of one repetition (the hand visible) and the pause after it.

    Pair classes: a stroke of 8-12 frames in direction d1, then, at a frame boundary, the hand jumps to a
    new place and makes a stroke in d2. Each stroke's start is uniform over the places that keep it in the
    frame, so the positions of a d1 (or d2) stroke are distributed the same in both classes of a pair
    (a continuous corner would put, e.g., the rightward stroke of right-then-up low in the frame and that of
    up-then-right high, a cue single frames could use).
    """
    pause = int(rng.integers(_PAUSE_FRAMES[0], _PAUSE_FRAMES[1] + 1))
    margin = _RADIUS[1] + 1
    if label < 8:
        d1, d2 = (np.array(_DIRECTIONS[d]) for d in STANDIN_CLASSES[label].split("_then_"))
        n1, n2 = (int(rng.integers(_SEGMENT_FRAMES[0], _SEGMENT_FRAMES[1] + 1)) for _ in range(2))
        speed = rng.uniform(*_SPEED)
        strokes = []
        for d, n in ((d1, n1), (d2, n2)):  # each stroke at its own uniform place: the hand jumps between
            steps = np.arange(n + 1)[:, None] * d * speed
            lo, hi = margin - steps.min(axis=0), _FRAME_SIZE - 1 - margin - steps.max(axis=0)
            strokes.append(rng.uniform(lo, hi) + steps)
        return np.concatenate(strokes), pause
    n = int(rng.integers(_CIRCLE_FRAMES[0], _CIRCLE_FRAMES[1] + 1))
    orbit = rng.uniform(*_CIRCLE_RADIUS)
    centre = rng.uniform(margin + orbit, _FRAME_SIZE - 1 - margin - orbit, size=2)
    omega = 2 * np.pi / rng.uniform(*_CIRCLE_PERIOD) * (1 if label == 8 else -1)  # y down: + is clockwise
    angles = rng.uniform(0, 2 * np.pi) + omega * np.arange(n)
    return centre + orbit * np.stack([np.cos(angles), np.sin(angles)], axis=1), pause


def standin_positions(rng: np.random.Generator, label: int, length: int) -> np.ndarray:
    """Hand centre per frame ``[length, 2]`` (x, y; NaN = out of view) for one stand-in clip.

    Repetitions (the movement, then a pause with the hand out of view) follow each other, each at a new
    uniformly random place; the clip starts at a uniformly random frame of a length-biased first repetition
    (a stationary renewal process), so neither movement of a pair gets more frames on average.
    """
    reps = []
    while True:  # length-biased draw of the repetition containing the clip start
        positions, pause = _repetition(rng, label)
        longest = (
            2 * _SEGMENT_FRAMES[1] + 2 + _PAUSE_FRAMES[1]
            if label < 8
            else _CIRCLE_FRAMES[1] + _PAUSE_FRAMES[1]
        )
        if rng.random() * longest < len(positions) + pause:
            break
    skip = int(rng.integers(0, len(positions) + pause))
    total = -skip
    while total < length:
        reps.append(np.r_[positions, np.full((pause, 2), np.nan)])
        total += len(positions) + pause
        positions, pause = _repetition(rng, label)
    return np.concatenate(reps)[skip : skip + length]


def standin_clip(seed: int, split: str, label: int, index: int) -> np.ndarray:
    """Grey frames uint8 ``[L, 64, 64]`` of one stand-in clip (deterministic in its arguments).

    A bright textured disc (radius 4-6 px, 55-85 grey levels above a smooth static background) follows
    :func:`standin_positions` at 1.5-2.4 px per frame; per-pixel camera noise 1.5 grey levels.
    """
    rng = np.random.default_rng([seed, list(SPLIT_DIRS).index(split), label, index, 25])
    length = int(rng.integers(_LENGTH[0], _LENGTH[1] + 1))
    positions = standin_positions(rng, label, length)
    size = _FRAME_SIZE
    background = 90.0 + 25.0 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 6.0) * 12.0
    radius = rng.uniform(*_RADIUS)
    contrast = rng.uniform(*_HAND_CONTRAST)
    texture = 1.0 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((33, 33)), 1.0) * 3.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = positions[:, 0, None, None], positions[:, 1, None, None]
    visible = ~np.isnan(cx)
    dist = np.hypot(xx - np.where(visible, cx, -100.0), yy - np.where(visible, cy, -100.0))
    cover = np.clip(radius - dist + 0.5, 0.0, 1.0)
    # texture fixed to the hand: sampled at the offset from the centre (nearest texel)
    tx = np.clip(np.rint(xx - np.nan_to_num(cx)) + 16, 0, 32).astype(int)
    ty = np.clip(np.rint(yy - np.nan_to_num(cy)) + 16, 0, 32).astype(int)
    frames = background[None] + cover * contrast * texture[ty, tx]
    frames += _NOISE * rng.standard_normal(frames.shape)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _encode_jpeg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame, mode="L").save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue()


def _standin_readme(seed: int, n_train: int, n_val: int) -> str:
    classes = "\n".join(f"  {k} {name}" for k, name in enumerate(STANDIN_CLASSES))
    return f"""GENERATED STAND-IN for the RGB-gesture dataset of the BIDL paper (not public). NOT real videos.

Written by bidl.data.rgb_gesture.generate_standin(seed={seed}, n_train={n_train}, n_val={n_val}) in the
layout bidl reads: train/<class>/<clip>/%05d.jpg, val/<class>/<clip>/%05d.jpg (grey JPEG, quality
{_JPEG_QUALITY}, {_FRAME_SIZE} x {_FRAME_SIZE} px, {FPS} fps, {_LENGTH[0]}-{_LENGTH[1]} frames), classes.txt.
Same arguments -> identical bytes.

A bright textured disc ("hand", radius 4-6 px) moves over a smooth static background with camera noise.
Classes 0-7: a repetition is a stroke in one direction for 8-12 frames, then, at a frame boundary, the
hand jumps to a new uniformly random place and strokes in the other direction for 8-12 frames (1.5-2.4 px
per frame); then the hand leaves the view for 3-6 frames and the next repetition starts; a clip starts at
a random frame of this cycle. The two classes of a pair (0/1, 2/3, 4/5, 6/7) differ ONLY in the order of
the two strokes: single frames, and the set of frames, are identically distributed. Classes 8-9: 3/4
of a turn of a circle (radius 9-13 px), clockwise or counter-clockwise. Classes (label name):
{classes}
"""


def generate_standin(raw_root: str | Path, *, n_train: int = 300, n_val: int = 100, seed: int = 0) -> Path:
    """Write a generated RGB-gesture stand-in in the layout of the module docstring.

    ``n_train`` / ``n_val`` clips in total, balanced over the 10 classes (the first ``n % 10`` classes get
    one more). The paper's copy has 760 + 102 clips. Everything goes to a temporary sibling folder that
    then replaces ``raw_root``.

    Returns:
        ``raw_root``.
    """
    raw_root = Path(raw_root)
    if n_train < 1 or n_val < 1:
        raise ValueError("n_train and n_val must be >= 1")
    with staged_replacement(raw_root) as tmp:
        for split, total in (("train", n_train), ("test", n_val)):
            for k in range(total):
                label, index = k % len(STANDIN_CLASSES), k // len(STANDIN_CLASSES)
                folder = tmp / SPLIT_DIRS[split] / STANDIN_CLASSES[label] / f"clip{index:04d}"
                folder.mkdir(parents=True)
                for t, frame in enumerate(standin_clip(seed, split, label, index), start=1):
                    (folder / f"{t:05d}.jpg").write_bytes(_encode_jpeg(frame))
        (tmp / "classes.txt").write_text("".join(f"{n}\n" for n in STANDIN_CLASSES), encoding="utf-8")
        (tmp / "README.txt").write_text(_standin_readme(seed, n_train, n_val), encoding="utf-8")
    return raw_root
