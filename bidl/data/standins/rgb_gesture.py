"""Generated stand-in of RGB-gesture: grey JPEG frame folders per clip, in the layout the reader expects.

10 classes of moving-hand-like trajectories seen by a grey camera at 25 fps (the classes of the
DVS128 stand-in): eight direction pairs that differ only in the ORDER of two strokes (e.g. right-then-up vs
up-then-right; the second stroke starts at a frame boundary at a new uniformly random place, so the frames
of the two classes are identically distributed), and a circle run clockwise or counter-clockwise (these
two differ only near the frame's edges in single frames).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from bidl.data.rgb_gesture import FPS, SPLIT_DIRS
from bidl.data.staging import staged_replacement
from bidl.data.standins.dvs128_gesture import STANDIN_CLASSES as DVS128_CLASSES

STANDIN_CLASSES: tuple[str, ...] = DVS128_CLASSES[:10]  # its moving gestures, not its pulsing disc
"""The stand-in's 10 classes; index = label. Classes 2k and 2k+1 are order-only pairs (up = row 0)."""
ORDER_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


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
