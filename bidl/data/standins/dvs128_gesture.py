"""Generated stand-in of DVS128 Gesture in IBM's original layout and AEDAT 3.1 format.

IBM's files cannot be fetched by a script (Box needs a login), so the
pipeline can generate a recording set in exactly the original layout and format. Its 11 classes are motion
patterns of a small bright disc (:data:`STANDIN_CLASSES`); eight of them form four pairs that differ only in
the ORDER of two movements (a path that turns right-then-up against up-then-right), so the task cannot be
solved from single frames. Its files carry what real AEDAT 3.1 recordings carry: special-event packets,
polarity events whose valid bit is 0, and (every third user) timestamps past 2**31 µs, with the labels
csv on the same clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bidl.data.dvs128 import FRAME_US, LABELS_HEADER, N_CLASSES
from bidl.data.formats.aedat import (
    EVENT_DTYPE,
    SENSOR_SIZE,
    SPECIAL_EXTERNAL_INPUT_PULSE,
    SPECIAL_TIMESTAMP_WRAP,
    encode_aedat31,
)
from bidl.data.staging import staged_replacement

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
    "pulsing_disc",
)
"""The 11 motion patterns of the generated stand-in; index = label. Classes 2k and 2k+1 (k = 0..3) are the
order-only pairs. "up" is towards row 0 (image coordinates, y grows downwards)."""

ORDER_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7))
"""Stand-in class pairs that differ only in the order of their two movements."""


# ---------------------------------------------------------------------------------------------------------
# Stand-in parameters (pixels at 128 x 128, times in 25 ms frames unless stated)
# ---------------------------------------------------------------------------------------------------------
_DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
_PAIR_MOVES = (
    ("right", "up"),
    ("up", "right"),
    ("left", "down"),
    ("down", "left"),
    ("right", "down"),
    ("down", "right"),
    ("left", "up"),
    ("up", "left"),
)
_RADIUS = (4.0, 6.0)  # disc radius, drawn per repetition
_SPEED = (1.6, 2.4)  # px per frame, drawn per segment, times the user's factor
_USER_SPEED_FACTOR = (0.9, 1.1)
_SEGMENT_FRAMES = (8, 12)  # inclusive range of one straight movement
_PAUSE_FRAMES = (2, 5)  # inclusive range of the blank pause after each repetition
_CIRCLE_RADIUS = (10.0, 16.0)
_CIRCLE_PERIOD = (26.0, 34.0)  # frames per revolution
_CIRCLE_FRAMES = (20, 30)  # frames of one repetition (about 3/4 to one revolution)
_PULSE_MIN_RADIUS = 2.0
_PULSE_MAX_RADIUS = (8.0, 10.0)
_PULSE_HALF_FRAMES = (5, 7)  # frames to grow, then the same to shrink
_PULSES_PER_REP = (2, 3)
_GESTURE_MIN_FRAMES = 64  # 1.6 s, > the 60 windows of 25 ms the network sees
_GAP_US = (200_000, 600_000)  # silence (background noise only) between gestures
_LEAD_IN_US = (500_000, 1_500_000)  # noise before the first gesture
_KEEP = 0.8  # probability that a pixel crossing by the disc's edge emits its event
_NOISE_PER_FRAME = {"fluorescent": 6.0, "led": 4.0, "natural": 3.0}  # background events per 25 ms
_DEFAULT_NOISE_PER_FRAME = 4.0
_CLOCK_WRAP_USERS = 3  # every third user's trials (user % 3 == 0) run through 2**31 µs of the camera clock
_INVALID_EVENTS = (3, 8)  # events written with the valid bit clear, per trial file
_TS_OVERFLOW = 1 << 31


# =========================================================================================================
# The stand-in generator
# =========================================================================================================
def _events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def _thin(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    keep = rng.random(arrays[0].shape[0]) < _KEEP
    return [a[keep] for a in arrays]


def _translation_events(
    rng: np.random.Generator,
    starts: np.ndarray,
    velocities: np.ndarray,
    frames: np.ndarray,
    t0: np.ndarray,
    radius: float,
) -> np.ndarray:
    """Events of a bright disc sliding along K straight pieces (vectorised over pieces and pixels).

    A pixel centre at distance < ``radius`` from the disc's centre is bright. Piece k moves the centre from
    ``starts[k]`` with ``velocities[k]`` (px per frame) for ``frames[k]`` frames starting at ``t0[k]`` µs.
    A pixel entering the disc emits an ON event at the exact crossing time, a pixel leaving it an OFF event
    (solving ``|q - c - v s|^2 = r^2`` for s); each crossing is kept with probability ``_KEEP``.

    Args:
        rng: random generator (thinning).
        starts: ``[K, 2]`` centre (x, y) at the start of each piece, px.
        velocities: ``[K, 2]`` (x, y) px per frame, non-zero.
        frames: ``[K]`` duration of each piece in frames (may be fractional).
        t0: ``[K]`` int64 start time of each piece, µs.
        radius: disc radius, px.

    Returns:
        Event array ``[N]`` (unsorted).
    """
    ends = starts + velocities * frames[:, None]
    lo = np.floor(np.minimum(starts, ends).min(axis=0) - radius - 1).astype(int)
    hi = np.ceil(np.maximum(starts, ends).max(axis=0) + radius + 1).astype(int)
    height, width = SENSOR_SIZE
    xs = np.arange(max(lo[0], 0), min(hi[0], width - 1) + 1)
    ys = np.arange(max(lo[1], 0), min(hi[1], height - 1) + 1)
    dx = xs[None, None, :] - starts[:, 0, None, None]  # [K, 1, W]
    dy = ys[None, :, None] - starts[:, 1, None, None]  # [K, H, 1]
    vx = velocities[:, 0, None, None]
    vy = velocities[:, 1, None, None]
    a = vx * vx + vy * vy
    b = dx * vx + dy * vy
    c = dx * dx + dy * dy - radius * radius
    discriminant = b * b - a * c  # [K, H, W]
    sq = np.sqrt(np.maximum(discriminant, 0.0))
    crossing = discriminant > 0
    dur = frames[:, None, None]
    out = []
    for polarity, s in ((1, (b - sq) / a), (0, (b + sq) / a)):
        k, iy, ix = np.nonzero(crossing & (s >= 0) & (s < dur))
        t = t0[k] + np.floor(s[k, iy, ix] * FRAME_US).astype(np.int64)
        t, x, y = _thin(rng, t, xs[ix], ys[iy])
        out.append(_events(t, x, y, np.full(t.shape[0], polarity)))
    return np.concatenate(out)


def _scaling_events(
    rng: np.random.Generator, centre: np.ndarray, r0: float, r1: float, frames: int, t0: int
) -> np.ndarray:
    """Events of a disc at a fixed centre whose radius goes linearly from r0 to r1 in ``frames`` frames.

    Pixels swept by a growing edge emit ON, by a shrinking edge OFF, at their crossing times.
    """
    rmax = max(r0, r1)
    height, width = SENSOR_SIZE
    xs = np.arange(max(int(centre[0] - rmax - 1), 0), min(int(centre[0] + rmax + 2), width))
    ys = np.arange(max(int(centre[1] - rmax - 1), 0), min(int(centre[1] + rmax + 2), height))
    rho = np.hypot(xs[None, :] - centre[0], ys[:, None] - centre[1])
    s = (rho - r0) / ((r1 - r0) / frames)
    iy, ix = np.nonzero((s >= 0) & (s < frames))
    t = t0 + np.floor(s[iy, ix] * FRAME_US).astype(np.int64)
    t, x, y = _thin(rng, t, xs[ix], ys[iy])
    return _events(t, x, y, np.full(t.shape[0], 1 if r1 > r0 else 0))


def _pair_rep_lengths(rng: np.random.Generator) -> tuple[int, int, int]:
    """Frames of (first movement, second movement, pause) of one repetition."""
    n1, n2 = (int(rng.integers(_SEGMENT_FRAMES[0], _SEGMENT_FRAMES[1] + 1)) for _ in range(2))
    return n1, n2, int(rng.integers(_PAUSE_FRAMES[0], _PAUSE_FRAMES[1] + 1))


def _path_start(rng: np.random.Generator, offsets: np.ndarray, margin: float) -> np.ndarray:
    """A uniform start point such that a path with the given ``[K, 2]`` offsets stays on the sensor."""
    height, width = SENSOR_SIZE
    lo = np.array([margin, margin]) - offsets.min(axis=0)
    hi = np.array([width - 1 - margin, height - 1 - margin]) - offsets.max(axis=0)
    return rng.uniform(lo, hi)


def _pair_gesture(rng: np.random.Generator, label: int, speed_factor: float, t0: int) -> tuple[list, int]:
    """Repetitions of (move d1, then turn at a frame boundary and move d2 from where d1 ended), pause.

    Each repetition starts at a uniformly random place, so every single frame (one straight movement, d1 or
    d2, at a random position, with its ON/OFF edges) is distributed the same for the two classes of a pair:
    only the order d1 -> d2 at the corner tells them apart, which a network sees by relating neighbouring
    frames. The gesture starts at a uniformly random frame of the repetition cycle (the first repetition is
    drawn length-biased, as for a stationary renewal process): starting every gesture with d1 would give d1
    more frames than d2 in a fixed window, a cue that single frames could use. (A network that integrates
    the whole recording could in principle still see the orientation of the corner in the accumulated image;
    the time-shuffled control measures what a trained network takes from the order of frames.)
    """
    d1, d2 = (np.array(_DIRECTIONS[d]) for d in _PAIR_MOVES[label])
    longest = 2 * _SEGMENT_FRAMES[1] + _PAUSE_FRAMES[1]
    while True:  # length-biased draw of the repetition that contains the gesture start
        lengths = _pair_rep_lengths(rng)
        if rng.random() * longest < sum(lengths):
            break
    parts, frame = [], -int(rng.integers(0, sum(lengths)))
    while frame < _GESTURE_MIN_FRAMES:
        radius = rng.uniform(*_RADIUS)
        speed = rng.uniform(*_SPEED) * speed_factor
        n1, n2 = lengths[0], lengths[1]
        corner = d1 * speed * n1
        start = _path_start(rng, np.stack([np.zeros(2), corner, corner + d2 * speed * n2]), radius + 1)
        ev = _translation_events(
            rng,
            np.stack([start, start + corner]),
            np.stack([d1 * speed, d2 * speed]),
            np.array([n1, n2], dtype=float),
            np.array([t0 + frame * FRAME_US, t0 + (frame + n1) * FRAME_US]),
            radius,
        )
        parts.append(ev[ev["t"] >= t0] if frame < 0 else ev)
        frame += n1 + n2 + lengths[2]
        lengths = _pair_rep_lengths(rng)
    return parts, frame


def _circle_gesture(
    rng: np.random.Generator, clockwise: bool, speed_factor: float, t0: int
) -> tuple[list, int]:
    """Repetitions of the disc running 3/4 to 1 turn of a circle (one chord per frame), then a pause."""
    height, width = SENSOR_SIZE
    parts, frame = [], 0
    while frame < _GESTURE_MIN_FRAMES:
        radius = rng.uniform(*_RADIUS)
        orbit = rng.uniform(*_CIRCLE_RADIUS)
        margin = orbit + radius + 1
        centre = rng.uniform([margin, margin], [width - 1 - margin, height - 1 - margin])
        omega = 2 * np.pi / rng.uniform(*_CIRCLE_PERIOD) * speed_factor * (1 if clockwise else -1)
        n = int(rng.integers(_CIRCLE_FRAMES[0], _CIRCLE_FRAMES[1] + 1))
        # With y pointing down, increasing angle turns clockwise on the image.
        angles = rng.uniform(0, 2 * np.pi) + omega * np.arange(n + 1)
        points = centre + orbit * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        parts.append(
            _translation_events(
                rng,
                points[:-1],
                np.diff(points, axis=0),
                np.ones(n),
                t0 + (frame + np.arange(n)) * FRAME_US,
                radius,
            )
        )
        frame += n + int(rng.integers(_PAUSE_FRAMES[0], _PAUSE_FRAMES[1] + 1))
    return parts, frame


def _pulse_gesture(rng: np.random.Generator, speed_factor: float, t0: int) -> tuple[list, int]:
    """Repetitions of a disc at a random place growing and shrinking 2-3 times, then a pause."""
    height, width = SENSOR_SIZE
    parts, frame = [], 0
    while frame < _GESTURE_MIN_FRAMES:
        r_max = rng.uniform(*_PULSE_MAX_RADIUS)
        margin = r_max + 1
        centre = rng.uniform([margin, margin], [width - 1 - margin, height - 1 - margin])
        for _ in range(int(rng.integers(_PULSES_PER_REP[0], _PULSES_PER_REP[1] + 1))):
            for r0, r1 in ((_PULSE_MIN_RADIUS, r_max), (r_max, _PULSE_MIN_RADIUS)):
                half = rng.integers(_PULSE_HALF_FRAMES[0], _PULSE_HALF_FRAMES[1] + 1)
                n = max(3, round(half / speed_factor))
                parts.append(_scaling_events(rng, centre, r0, r1, n, t0 + frame * FRAME_US))
                frame += n
        frame += int(rng.integers(_PAUSE_FRAMES[0], _PAUSE_FRAMES[1] + 1))
    return parts, frame


def _gesture(rng: np.random.Generator, label: int, speed_factor: float, t0: int) -> tuple[list, int]:
    """Event arrays of one stand-in gesture starting at t0 µs, and its length in frames."""
    if label < len(_PAIR_MOVES):
        return _pair_gesture(rng, label, speed_factor, t0)
    if label in (8, 9):
        return _circle_gesture(rng, label == 8, speed_factor, t0)
    return _pulse_gesture(rng, speed_factor, t0)


def standin_trial(seed: int, user: int, lighting: str, reps_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate one stand-in trial recording (deterministic in its arguments).

    Returns:
        ``(events, labels)``: events sorted by time (:data:`bidl.data.formats.aedat.EVENT_DTYPE`, µs) and an
        int64 ``[11 * reps_per_class, 3]`` array of (csv class 1..11, start µs, end µs) rows in time order,
        both on the camera's clock. Each gesture lasts >= 1.6 s; its first event (a background event) lies
        exactly at its start, so 25 ms windows counted from the first event of a cut line up with the
        gesture's movement changes. The trials of every third user (``user % 3 == 0``) start shortly
        before ``2**31`` µs of the clock and run through it (AEDAT 3.1 stores the high bits in the packet
        headers' overflow counter); the others start at 0.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, *lighting.encode()]))
    speed_factor = rng.uniform(*_USER_SPEED_FACTOR)
    order = rng.permutation(np.repeat(np.arange(N_CLASSES), reps_per_class))
    t = int(rng.integers(*_LEAD_IN_US))
    parts: list[np.ndarray] = []
    rows = []
    starts = []
    for label in order:
        gesture_parts, n_frames = _gesture(rng, int(label), speed_factor, t)
        parts.extend(gesture_parts)
        end = t + n_frames * FRAME_US
        rows.append((int(label) + 1, t, end))
        starts.append(t)
        t = end + int(rng.integers(*_GAP_US))
    duration = t
    noise_rate = _NOISE_PER_FRAME.get(lighting, _DEFAULT_NOISE_PER_FRAME) / FRAME_US
    n_noise = int(rng.poisson(noise_rate * duration))
    height, width = SENSOR_SIZE
    noise_t = np.concatenate([np.array(starts, dtype=np.int64), rng.integers(0, duration, n_noise)])
    n_noise += len(starts)
    noise_x, noise_y = rng.integers(0, width, n_noise), rng.integers(0, height, n_noise)
    parts.append(_events(noise_t, noise_x, noise_y, rng.integers(0, 2, n_noise)))
    events = np.concatenate(parts)
    events = events[np.argsort(events["t"], kind="stable")]
    labels = np.array(rows, dtype=np.int64)
    if user % _CLOCK_WRAP_USERS == 0:
        offset = _TS_OVERFLOW - int(rng.integers(duration // 4, 3 * duration // 4))
        events["t"] += offset
        labels[:, 1:] += offset
    return events, labels


def _standin_file_extras(
    seed: int, user: int, lighting: str, events: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """What a stand-in trial file holds besides its events, as real AEDAT 3.1 files do: a few events with
    the valid bit clear (random pixels and times) merged in, a timestamp-wrap special event wherever the
    clock passes a multiple of 2**31 µs and an external-input pulse halfway through.

    Returns:
        ``(all_events, valid, special)``: the events to write in time order, which of them are valid, and
        the ``(t, type)`` special events (:func:`bidl.data.formats.aedat.encode_aedat31`).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, *lighting.encode(), 1]))
    first, last = int(events["t"][0]), int(events["t"][-1])
    n_invalid = int(rng.integers(_INVALID_EVENTS[0], _INVALID_EVENTS[1] + 1))
    height, width = SENSOR_SIZE
    junk = _events(
        rng.integers(first + 1, last + 1, n_invalid),
        rng.integers(0, width, n_invalid),
        rng.integers(0, height, n_invalid),
        rng.integers(0, 2, n_invalid),
    )
    merged = np.concatenate([events, junk])
    order = np.argsort(merged["t"], kind="stable")
    valid = np.concatenate([np.ones(events.shape[0], bool), np.zeros(n_invalid, bool)])[order]
    special = [((first + last) // 2, SPECIAL_EXTERNAL_INPUT_PULSE)]
    for k in range(first // _TS_OVERFLOW + 1, last // _TS_OVERFLOW + 1):
        special.append((k * _TS_OVERFLOW, SPECIAL_TIMESTAMP_WRAP))
    return merged[order], valid, special


def _standin_readme(
    seed: int, n_users: int, lightings: Sequence[str], reps_per_class: int, n_test_users: int
) -> str:
    n_train = n_users - n_test_users
    classes = "\n".join(f"  {k + 1:2d} {name}" for k, name in enumerate(STANDIN_CLASSES))
    return f"""GENERATED STAND-IN for the DVS128 Gesture dataset (IBM). NOT real sensor recordings.

Written by bidl.data.dvs128.generate_standin(seed={seed}, n_users={n_users},
lightings={tuple(lightings)}, reps_per_class={reps_per_class}) in the layout and file formats of IBM's
release (DvsGesture/userNN_<lighting>.aedat in AEDAT 3.1, *_labels.csv with
class,startTime_usec,endTime_usec, trials_to_train.txt / trials_to_test.txt, gesture_mapping.csv), so that
the same reader handles both. Same arguments -> identical bytes.

How it is made: a bright disc (radius 4-6 px on the 128x128 sensor) moves; pixels its leading edge sweeps
emit ON events, pixels its trailing edge leaves emit OFF events, at the exact crossing times (80 % kept),
plus uniform background noise (3-6 events per 25 ms, by lighting). Each trial file holds every class
{reps_per_class} time(s) in random order, separated by 0.2-0.6 s of noise; each gesture lasts >= 1.6 s and its
movement changes fall on 25 ms boundaries counted from the gesture start. Classes (csv class, name):
{classes}
Classes 1-8 are four pairs (1/2, 3/4, 5/6, 7/8): a repetition moves in one direction for 8-12 frames, jumps
to a new random place at a frame boundary, moves in the other direction for 8-12 frames, then pauses 2-5
frames; a gesture starts at a uniformly random frame of this cycle. The two classes of a pair differ ONLY
in the order of the two directions (single frames and time-averaged frames carry no information about
which of the pair it is). Classes 9-10 run the disc 3/4 to one turn of a circle (radius 10-16 px),
clockwise or counter-clockwise; class 11 grows and shrinks it in place. Start places, speeds (1.6-2.4 px
per 25 ms times a per-user factor 0.9-1.1) and lengths are random. (Frames are counted from the first
event of each labelled cut, which the generator puts exactly at the label's start time.)

File features of real recordings the reader must handle: every third user's trials (user % 3 == 0)
run through 2**31 us of the camera clock (their labels csv on that clock; the file keeps the high bit in
the packet headers' eventTSOverflow, with a timestamp-wrap special event there); every file holds a
special-event packet (an external-input pulse halfway through) and 3-8 polarity events whose
valid bit is 0 (random pixels, to be dropped).

Split: users 01-{n_train:02d} in trials_to_train.txt, users {n_train + 1:02d}-{n_users:02d} in
trials_to_test.txt (the real release: 01-23 / 24-29).
"""


def generate_standin(
    raw_root: str | Path,
    *,
    n_users: int = 29,
    lightings: Sequence[str] = ("fluorescent", "led", "natural"),
    reps_per_class: int = 4,
    seed: int = 0,
    n_test_users: int | None = None,
) -> Path:
    """Write a generated stand-in of DVS128 Gesture in IBM's original layout and formats.

    Layout written (see the module docstring): ``raw_root/DvsGesture/userNN_<lighting>.aedat`` and
    ``_labels.csv`` for every user and lighting, ``DvsGesture/trials_to_{train,test}.txt``,
    ``raw_root/gesture_mapping.csv`` (:data:`STANDIN_CLASSES`) and ``raw_root/README.txt`` saying what it
    is and how it was made. Everything is written into a temporary sibling folder that then replaces
    ``raw_root`` (an existing ``raw_root`` is swapped out and removed), so a crash leaves no half-written
    copy, and the temporary folder of a killed run is removed by the next
    (:func:`bidl.data.staging.staged_replacement`). Same arguments -> identical bytes.

    Args:
        raw_root: destination folder.
        n_users: number of subjects (29 in the real dataset).
        lightings: lighting conditions, one trial file per user and lighting.
        reps_per_class: how many times each of the 11 classes occurs in each trial file.
        seed: seed of everything random.
        n_test_users: the last ``n_test_users`` users form the test split; default ``round(6/29 * n_users)``
            (at least 1 when n_users >= 2), i.e. 24-29 of 29 as in the real release.

    Returns:
        ``raw_root``. Default size: 29 x 3 x 44 = 3828 gestures (3036 train, 792 test).
    """
    raw_root = Path(raw_root)
    if n_users < 1 or reps_per_class < 1 or not lightings:
        raise ValueError("n_users and reps_per_class must be >= 1 and lightings non-empty")
    if n_test_users is None:
        n_test_users = max(1, round(n_users * 6 / 29)) if n_users >= 2 else 0
    if not 0 <= n_test_users <= n_users:
        raise ValueError(f"n_test_users must be in 0..{n_users}, got {n_test_users}")
    with staged_replacement(raw_root) as tmp:
        folder = tmp / "DvsGesture"
        folder.mkdir()
        train, test = [], []
        for user in range(1, n_users + 1):
            for lighting in lightings:
                stem = f"user{user:02d}_{lighting}"
                events, rows = standin_trial(seed, user, lighting, reps_per_class)
                written, valid, special = _standin_file_extras(seed, user, lighting, events)
                data = encode_aedat31(
                    written,
                    header_lines=(f"#bidl generated stand-in: seed={seed} user={user} lighting={lighting}",),
                    valid=valid,
                    special=special,
                )
                (folder / f"{stem}.aedat").write_bytes(data)
                lines = [",".join(LABELS_HEADER)] + [f"{c},{s},{e}" for c, s, e in rows]
                (folder / f"{stem}_labels.csv").write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
                (train if user <= n_users - n_test_users else test).append(f"{stem}.aedat")
        (folder / "trials_to_train.txt").write_text("".join(f"{n}\n" for n in train), encoding="ascii")
        (folder / "trials_to_test.txt").write_text("".join(f"{n}\n" for n in test), encoding="ascii")
        mapping = "action,label\n" + "".join(f"{n},{k + 1}\n" for k, n in enumerate(STANDIN_CLASSES))
        (tmp / "gesture_mapping.csv").write_text(mapping, encoding="ascii")
        (tmp / "README.txt").write_text(
            _standin_readme(seed, n_users, lightings, reps_per_class, n_test_users), encoding="utf-8"
        )
    return raw_root
