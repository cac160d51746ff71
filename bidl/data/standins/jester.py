"""Generated stand-in of 20BN-Jester v1 in its layout: JPEG frame folders and ``;``-separated label files.

Classes: 7 of the 27 real class names; three pairs (Swiping Left / Right, Sliding Two Fingers Up / Down,
Rolling Hand Forward / Backward) whose second class is generated as the first one PLAYED BACKWARDS, so the
frames of a pair are identically distributed and only their order tells them apart; plus No gesture.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from bidl.data.jester import (
    FPS,
    FRAME_HEIGHT,
    FRAMES_DIR,
)
from bidl.data.staging import staged_replacement

STANDIN_CLASSES: tuple[str, ...] = (
    "No gesture",
    "Rolling Hand Backward",
    "Rolling Hand Forward",
    "Sliding Two Fingers Down",
    "Sliding Two Fingers Up",
    "Swiping Left",
    "Swiping Right",
)
"""The stand-in's classes (real names, alphabetical); the stand-in's labels file lists exactly these."""

REVERSED_PAIRS: dict[str, str] = {
    "Swiping Left": "Swiping Right",
    "Sliding Two Fingers Down": "Sliding Two Fingers Up",
    "Rolling Hand Backward": "Rolling Hand Forward",
}
"""Stand-in class -> the class whose clips it plays backwards."""


# =========================================================================================================
# The stand-in generator
# =========================================================================================================
# frames per clip (inclusive), 12 fps. Real clips hold about 36 frames; the stand-in's are shorter, so that
# its many clips stay within the default preset's disk budget (the movement is not shortened).
_LENGTH = (16, 24)
_WIDTH = (128, 176)  # px, frames are 100 px high
_MOVE_FRAMES = (6, 12)  # frames of the movement itself
_JPEG_QUALITY = 90
_NOISE = 2.0  # grey levels, per pixel and frame
_FLICKER = 2.0  # grey levels, per frame


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered static scene: smooth colour field + a few random shaded boxes; float [H, W, 3]."""
    base = rng.uniform(60, 200, size=3)
    field = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), (10, 10, 0)) * 300
    img = base + field
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(3, 7))):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(8, 40), rng.integers(8, 60)
        box = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        img[box] = (
            rng.uniform(20, 235, size=3) + rng.uniform(-15, 15) * (yy[box, None] - y0) / h
        )  # shaded box
    return img


def _hand_alpha(
    xx: np.ndarray, yy: np.ndarray, cx: np.ndarray, cy: np.ndarray, sy: np.ndarray, shape: dict
) -> np.ndarray:
    """Soft coverage [L, H, W] of a palm ellipse plus finger capsules at per-frame centre / vertical scale."""
    a, b = shape["palm"]
    cx, cy, sy = cx[:, None, None], cy[:, None, None], sy[:, None, None]
    palm = 1.0 - np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / (b * sy)) ** 2)
    alpha = np.clip(palm * min(a, b) + 0.5, 0.0, 1.0)
    top = cy - 0.5 * b * sy
    for offset, length, width in shape["fingers"]:
        fx = cx + offset * a
        y_end = top - length * sy
        d = np.hypot(xx - fx, yy - np.clip(yy, y_end, top)) - width
        alpha = np.maximum(alpha, np.clip(0.5 - d, 0.0, 1.0))
    return alpha


def _hand_shape(rng: np.random.Generator, two_fingers: bool) -> dict:
    a, b = rng.uniform(15, 19), rng.uniform(18, 22)
    if two_fingers:
        return {
            "palm": (a * 0.85, b * 0.85),
            "fingers": [(-0.3, rng.uniform(24, 30), 3.9), (0.3, rng.uniform(23, 29), 3.9)],
        }
    lengths = rng.uniform(16, 22, size=4)
    return {"palm": (a, b), "fingers": [(o, ln, 4.2) for o, ln in zip((-0.75, -0.25, 0.25, 0.75), lengths)]}


def standin_clip(seed: int, clip_id: int, label_name: str) -> np.ndarray:
    """Frames uint8 ``[L, 100, W, 3]`` (RGB) of one stand-in clip (deterministic in its arguments).

    A textured skin-coloured hand (palm + 4 fingers, or + 2 fingers for Sliding Two Fingers) on a cluttered
    static scene with camera noise. "Swiping Right": the hand rests, moves right by 35-55 % of the width
    in 6-12 frames, rests; "Sliding Two Fingers Up": up by 22-35 px; "Rolling Hand Forward": the hand's
    height shrinks to 35-50 % while its knuckle shading scrolls and darkens. The movement is centred at a
    uniformly random time in the middle 30 % of the clip. The partner classes (:data:`REVERSED_PAIRS`)
    are drawn the same way and played backwards. "No gesture": the hand (or, half the time, no hand) rests
    with 1 px jitter.
    """
    rng = np.random.default_rng([seed, clip_id, 12])
    length = int(rng.integers(_LENGTH[0], _LENGTH[1] + 1))
    height, width = FRAME_HEIGHT, int(rng.integers(_WIDTH[0], _WIDTH[1] + 1))
    base = REVERSED_PAIRS.get(label_name, label_name)
    t = np.arange(length, dtype=np.float64)
    centre_t = rng.uniform(0.35, 0.65) * (length - 1)
    n_move = rng.uniform(*_MOVE_FRAMES)
    progress = _smoothstep((t - (centre_t - n_move / 2)) / n_move)  # 0 -> 1 during the movement
    shape = _hand_shape(rng, two_fingers=base == "Sliding Two Fingers Up")
    sy = np.ones(length)
    shade = np.ones(length, dtype=np.float32)
    phase = np.zeros(length)
    present = True
    if base == "Swiping Right":
        dist = rng.uniform(0.35, 0.55) * width
        x0 = rng.uniform(20, width - 20 - dist)
        cx, cy = x0 + dist * progress, np.full(length, rng.uniform(55, 75)) + rng.uniform(-6, 6) * progress
    elif base == "Sliding Two Fingers Up":
        dist = rng.uniform(22, 35)
        cx = np.full(length, rng.uniform(25, width - 25)) + rng.uniform(-4, 4) * progress
        cy = rng.uniform(45 + dist, 90) - dist * progress
    elif base == "Rolling Hand Forward":
        cx = np.full(length, rng.uniform(25, width - 25))
        cy = np.full(length, rng.uniform(55, 75))
        sy = 1.0 - rng.uniform(0.5, 0.65) * progress
        shade = 1.0 - 0.25 * progress
        phase = 2.5 * np.pi * progress
    elif base == "No gesture":
        present = rng.random() < 0.5
        cx = rng.uniform(25, width - 25) + rng.integers(-1, 2, size=length)
        cy = rng.uniform(55, 75) + rng.integers(-1, 2, size=length)
    else:
        raise ValueError(f"no stand-in generator for class {label_name!r}")

    scene = _background(rng, height, width)
    frames = np.broadcast_to(scene.astype(np.float32), (length, height, width, 3)).copy()
    if present:
        cx, cy, sy = (np.asarray(v, dtype=np.float32) for v in (cx, cy, sy))
        # render only inside the box the hand can reach (palm + fingers + a margin)
        x0, x1 = max(int(cx.min()) - 35, 0), min(int(cx.max()) + 36, width)
        y0, y1 = max(int(cy.min()) - 55, 0), min(int(cy.max()) + 30, height)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        alpha = _hand_alpha(xx, yy, cx, cy, sy, shape)
        skin = rng.uniform([170, 110, 80], [230, 165, 135]).astype(np.float32)
        knuckles = 1.0 + 0.07 * np.sin(
            (yy[None] - cy[:, None, None]) / (2.5 * sy[:, None, None]) + phase[:, None, None]
        )
        pad = 130  # the texture moves with the hand (wrapping beyond the pad)
        texture = (
            ndimage.gaussian_filter(rng.standard_normal((height + pad, width + pad), np.float32), 1.5) * 25
        )
        ox, oy = np.rint(cx - cx[0]).astype(int), np.rint(cy - cy[0]).astype(int)
        hand_tex = np.stack(
            [
                np.roll(texture, (int(dy), int(dx)), axis=(0, 1))[
                    pad // 2 + y0 : pad // 2 + y1, pad // 2 + x0 : pad // 2 + x1
                ]
                for dx, dy in zip(ox, oy)
            ]
        )
        colour = skin * (shade[:, None, None, None] * knuckles[..., None]) + hand_tex[..., None]
        region = frames[:, y0:y1, x0:x1]
        region += alpha[..., None] * (colour - region)
    frames += _NOISE * rng.standard_normal(frames.shape, np.float32)  # camera noise
    frames += _FLICKER * rng.standard_normal((length, 1, 1, 1), np.float32)  # exposure flicker
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    if label_name in REVERSED_PAIRS:
        frames = frames[::-1]
    return np.ascontiguousarray(frames)


def _encode_jpeg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame, mode="RGB").save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue()


def _standin_readme(seed: int, n_train: int, n_val: int) -> str:
    pairs = "\n".join(f"  {b!r} = {a!r} played backwards" for b, a in REVERSED_PAIRS.items())
    return f"""GENERATED STAND-IN for 20BN-Jester v1. NOT real videos.

Written by bidl.data.jester.generate_standin(seed={seed}, n_train_per_class={n_train},
n_val_per_class={n_val}) in the 20BN layout: {FRAMES_DIR}/<video id>/%05d.jpg (JPEG quality {_JPEG_QUALITY},
{FRAME_HEIGHT} px high, 128-176 px wide, {FPS} fps, {_LENGTH[0]}-{_LENGTH[1]} frames), jester-v1-labels.csv
(the {len(STANDIN_CLASSES)} real class names used here), jester-v1-train.csv and jester-v1-validation.csv
("<id>;<label>"). Same arguments -> identical bytes.

A textured skin-coloured hand on a cluttered static scene with camera noise rests, performs one movement
(6-12 frames, centred in the middle 30 % of the clip) and rests. Swiping Right: moves right by 35-55 % of
the width; Sliding Two Fingers Up: a two-finger hand moves up 22-35 px; Rolling Hand Forward: the hand's
height shrinks to 35-50 % while its knuckle shading scrolls and darkens. No gesture: a resting hand (or
none). Pairs whose frames are identically distributed (only the order differs):
{pairs}
"""


def generate_standin(
    raw_root: str | Path,
    *,
    n_train_per_class: int = 30,
    n_val_per_class: int = 10,
    seed: int = 0,
) -> Path:
    """Write a generated Jester stand-in in the 20BN layout (see :func:`standin_clip`).

    Video ids 1..N are assigned in a seeded random order across the two splits. Everything is written to
    a temporary sibling folder that then replaces ``raw_root``. Default: 7 classes x (30 + 10) = 280 clips.

    Returns:
        ``raw_root``.
    """
    raw_root = Path(raw_root)
    if n_train_per_class < 1 or n_val_per_class < 1:
        raise ValueError("n_train_per_class and n_val_per_class must be >= 1")
    per_class = n_train_per_class + n_val_per_class
    rng = np.random.default_rng([seed, 0])
    labels = np.repeat(np.arange(len(STANDIN_CLASSES)), per_class)
    is_train = np.tile(np.arange(per_class) < n_train_per_class, len(STANDIN_CLASSES))
    ids = rng.permutation(labels.size) + 1
    with staged_replacement(raw_root) as tmp:
        rows: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
        for video, label, train in zip(ids.tolist(), labels.tolist(), is_train.tolist()):
            name = STANDIN_CLASSES[label]
            folder = tmp / FRAMES_DIR / str(video)
            folder.mkdir(parents=True)
            for k, frame in enumerate(standin_clip(seed, video, name), start=1):
                (folder / f"{k:05d}.jpg").write_bytes(_encode_jpeg(frame))
            rows[train].append((video, name))
        (tmp / "jester-v1-labels.csv").write_text(
            "".join(f"{n}\n" for n in STANDIN_CLASSES), encoding="utf-8"
        )
        for train, file_name in ((True, "jester-v1-train.csv"), (False, "jester-v1-validation.csv")):
            text = "".join(f"{video};{name}\n" for video, name in sorted(rows[train]))
            (tmp / file_name).write_text(text, encoding="utf-8")
        (tmp / "README.txt").write_text(
            _standin_readme(seed, n_train_per_class, n_val_per_class), encoding="utf-8"
        )
    return raw_root
