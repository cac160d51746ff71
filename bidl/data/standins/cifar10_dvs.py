"""Generated stand-in of CIFAR10-DVS in the figshare release's layout and jAER AEDAT 2.0 format.

The real recordings are CIFAR-10 images on an LCD moved in front of a
DVS128; the stand-in draws textured or shaped objects (:data:`STANDIN_PATTERNS`) with random scale,
position, contrast (bright-on-dark or dark-on-bright) and blurred clutter blobs, and moves the view in
L-shaped saccade-like steps (1 pixel along x and 1 along y) spread evenly over 1.2-1.4 s (the real
recordings last about 1.3 s). Partway through, the object changes into another; the class is the ordered
pair of objects (:data:`STANDIN_SEQUENCES`: classes 2k and 2k+1 are the same two objects in opposite
order), so the class lies in the order of what happens over the whole recording: a time-shuffled input,
a bag of frames or the first 50 ms cannot tell it. Every move (and the change) emits events where the log
intensity of a sensor pixel changes by more than a contrast threshold (sign = polarity), thinned at random
(the real recordings hold many more events), plus uniform background noise. The files carry what real
jAER files carry: a start at a random time of the sensor clock, a 32-bit timestamp wrap in every fifth
recording, and DVS128 sync events (address bit 15) among the pixel events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bidl.data.cifar10_dvs import CLASSES
from bidl.data.formats.aedat import EVENT_DTYPE
from bidl.data.formats.aedat2 import SENSOR_SIZE, encode_aedat2
from bidl.data.staging import staged_replacement

STANDIN_PATTERNS: tuple[str, ...] = (
    "horizontal_stripes",
    "vertical_stripes",
    "checkerboard",
    "filled_disc",
    "filled_triangle",
)
"""The objects the stand-in shows (indices used by :data:`STANDIN_SEQUENCES`)."""

STANDIN_SEQUENCES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 0),
    (2, 3),
    (3, 2),
    (4, 0),
    (0, 4),
    (1, 2),
    (2, 1),
    (3, 4),
    (4, 3),
)
"""Per class (same index as :data:`CLASSES`): the object shown in the first part of the recording and the
one it changes to (indices into :data:`STANDIN_PATTERNS`). Classes 2k and 2k+1 show the same two objects in
opposite order, and every object opens two classes, so neither the set of frames nor the first 50 ms
tell the class: only the order over the whole recording does."""

_STRIPE_ANGLES = {  # direction the stripes run in, degrees (image y down)
    "horizontal_stripes": 0.0,
    "vertical_stripes": 90.0,
    "diagonal_stripes_up": 135.0,
    "diagonal_stripes_down": 45.0,
}


# ---------------------------------------------------------------------------------------------------------
# Stand-in parameters (pixels of the 128 x 128 sensor, µs)
# ---------------------------------------------------------------------------------------------------------
_MARGIN = 6  # the image wanders at most this many pixels from its start, per axis
_CANVAS = SENSOR_SIZE[0] + 2 * _MARGIN
_OBJECT_RADIUS = (24.0, 34.0)
_CENTRE_JITTER = 10.0  # object centre within +-this of the sensor centre
_EDGE_PX = 0.6  # softness of edges (sigmoid scale)
_PERIOD = (9.0, 14.0)  # stripes, checkerboard cells, rings
_DOT_SPACING = (9.0, 12.0)
_DOT_RADIUS = (2.2, 3.2)
_BRIGHT = (0.6, 1.0)
_DARK = (0.08, 0.3)
_BLOBS = (3, 6)  # clutter blobs per recording
_BLOB_SIGMA = (2.0, 5.0)
_BLOB_AMPLITUDE = (0.05, 0.2)
_THRESHOLD = 0.3  # log-intensity change per event
_MAX_EVENTS_PER_STEP = 1  # per pixel and step
_KEEP = 0.16  # probability that a threshold crossing is emitted
_STEP_US = 2_000  # a step is two 1-pixel moves (x, y in random order), each spreading its events over this
_N_STEPS = 16  # steps per recording, spread evenly over the whole recording
_SWITCH = (0.4, 0.6)  # the object changes at this fraction of the recording
_DURATION_US = (1_200_000, 1_400_000)  # the real recordings last about 1.3 s
_NOISE_PER_S = 150.0
_CLOCK_OFFSET_US = (0, 50_000_000)  # recordings start at an arbitrary time of the sensor's clock
_WRAP_EVERY = 5  # every 5th recording (index % 5 == 4) runs through the 32-bit clock's wrap
_SPECIAL_EVENTS = (1, 3)  # DVS128 sync events written among the pixel events of each recording


# =========================================================================================================
# The stand-in generator
# =========================================================================================================
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _soft_square_wave(phase: np.ndarray) -> np.ndarray:
    """A square wave in [0, 1] with soft edges, period 2*pi in ``phase``."""
    return _sigmoid(6.0 * np.sin(phase))


def _standin_image(rng: np.random.Generator, pattern: str) -> np.ndarray:
    """Intensity image ``[_CANVAS, _CANVAS]`` in (0, 1] of one stand-in object (:data:`STANDIN_PATTERNS`)."""
    grid = np.arange(_CANVAS, dtype=np.float64)
    centre = _CANVAS / 2 + rng.uniform(-_CENTRE_JITTER, _CENTRE_JITTER, size=2)
    dx = grid[None, :] - centre[0]
    dy = grid[:, None] - centre[1]
    r = np.hypot(dx, dy)
    radius = rng.uniform(*_OBJECT_RADIUS)
    disc = _sigmoid((radius - r) / _EDGE_PX)
    period = rng.uniform(*_PERIOD)
    phase = rng.uniform(0, 2 * np.pi)
    if pattern in _STRIPE_ANGLES:
        theta = np.deg2rad(_STRIPE_ANGLES[pattern] + rng.uniform(-8, 8))
        # stripes run along direction theta: the wave varies across them
        across = -dx * np.sin(theta) + dy * np.cos(theta)
        mask = disc * _soft_square_wave(2 * np.pi * across / period + phase)
    elif pattern == "checkerboard":
        theta = np.deg2rad(rng.uniform(-10, 10))
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        wave = np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period + phase)
        mask = disc * _sigmoid(6.0 * wave)
    elif pattern == "concentric_rings":
        mask = disc * _soft_square_wave(2 * np.pi * r / period + phase)
    elif pattern == "dot_lattice":
        spacing = rng.uniform(*_DOT_SPACING)
        offset = rng.uniform(0, spacing, size=2)
        fx = np.mod(dx + offset[0], spacing) - spacing / 2
        fy = np.mod(dy + offset[1], spacing) - spacing / 2
        mask = disc * _sigmoid((rng.uniform(*_DOT_RADIUS) - np.hypot(fx, fy)) / _EDGE_PX)
    elif pattern == "filled_disc":
        mask = disc
    elif pattern == "filled_triangle":
        theta = np.deg2rad(rng.uniform(-15, 15))
        angles = theta - np.pi / 2 + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])  # outward edge normals
        dist = np.max(
            dx[None] * np.cos(angles)[:, None, None] + dy[None] * np.sin(angles)[:, None, None], axis=0
        )
        mask = _sigmoid((0.55 * radius - dist) / _EDGE_PX)
    else:  # filled_square
        theta = np.deg2rad(rng.uniform(-15, 15))
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        mask = _sigmoid((0.8 * radius - np.maximum(np.abs(u), np.abs(v))) / _EDGE_PX)
    fg, bg = rng.uniform(*_BRIGHT), rng.uniform(*_DARK)
    if rng.random() < 0.5:
        fg, bg = bg, fg  # dark object on a bright background: polarities swap
    image = bg + (fg - bg) * mask
    n_blobs = int(rng.integers(_BLOBS[0], _BLOBS[1] + 1))
    centres = rng.uniform(0, _CANVAS, size=(n_blobs, 2))
    sigma = rng.uniform(*_BLOB_SIGMA, size=n_blobs)
    amp = rng.uniform(*_BLOB_AMPLITUDE, size=n_blobs) * rng.choice([-1.0, 1.0], size=n_blobs)
    # a Gaussian blob is separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dy^2 / 2s^2) * exp(-dx^2 / 2s^2)
    gx = np.exp(-((grid[None, :] - centres[:, 0, None]) ** 2) / (2 * sigma[:, None] ** 2))
    gy = np.exp(-((grid[None, :] - centres[:, 1, None]) ** 2) / (2 * sigma[:, None] ** 2))
    image = image + np.einsum("k,ki,kj->ij", amp, gy, gx)
    return np.clip(image, 0.03, 1.0)


def _step_times(rng: np.random.Generator, duration: int) -> np.ndarray:
    """Start times (µs) of the movement steps: one at 0, then one in each of ``_N_STEPS - 1`` equal slots."""
    slot = duration / _N_STEPS
    starts = (np.arange(_N_STEPS) + rng.uniform(0.0, 1.0, size=_N_STEPS)) * slot
    starts = np.minimum(starts, duration - 2 * _STEP_US)
    starts[0] = 0
    return starts.astype(np.int64)


def _move_events(
    rng: np.random.Generator, change: np.ndarray, t0: int, duration_us: int = _STEP_US
) -> np.ndarray:
    """Events of one change of log intensity ``change [H, W]``, spread over ``[t0, t0 + duration_us)``."""
    n_ev = np.minimum(np.floor(np.abs(change) / _THRESHOLD), _MAX_EVENTS_PER_STEP).astype(np.int64)
    iy, ix = np.nonzero(n_ev)
    reps = n_ev[iy, ix]
    iy, ix = np.repeat(iy, reps), np.repeat(ix, reps)
    keep = rng.random(iy.shape[0]) < _KEEP
    iy, ix = iy[keep], ix[keep]
    ev = np.empty(iy.shape[0], dtype=EVENT_DTYPE)
    ev["t"] = t0 + rng.integers(0, duration_us, size=iy.shape[0])
    ev["x"], ev["y"] = ix, iy
    ev["p"] = change[iy, ix] > 0
    return ev


def _standin_clock(rng: np.random.Generator, index: int, duration: int) -> int:
    """Sensor-clock time (µs) of a recording's first event; every ``_WRAP_EVERY``-th one straddles 2**32."""
    if index % _WRAP_EVERY == _WRAP_EVERY - 1:
        return (1 << 32) - int(rng.integers(duration // 4, 3 * duration // 4))
    return int(rng.integers(*_CLOCK_OFFSET_US))


def standin_recording(seed: int, label: int, index: int) -> np.ndarray:
    """Events of one stand-in recording (deterministic in its arguments).

    Returns:
        Structured array ``[N]`` of :data:`bidl.data.formats.aedat.EVENT_DTYPE` sorted by time, in the
        orientation of :func:`bidl.data.formats.aedat2.read_aedat2`, lasting 1.2-1.4 s: the first object of
        ``STANDIN_SEQUENCES[label]`` until 40-60 % of the recording, then the second, with movement steps
        spread evenly over the whole recording. The first event lies at the recording's start time (a
        random time of the sensor clock; every fifth recording, ``index % 5 == 4``, runs past ``2**32`` µs,
        which the AEDAT 2.0 file stores wrapped).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, label, index]))
    first, second = STANDIN_SEQUENCES[label]
    log_images = [np.log(_standin_image(rng, STANDIN_PATTERNS[k])) for k in (first, second)]
    height, width = SENSOR_SIZE
    duration = int(rng.integers(*_DURATION_US))
    switch = int(rng.uniform(*_SWITCH) * duration)
    starts = _step_times(rng, duration)
    # Each step moves the image by one pixel along x and one along y, in random order, one move after the
    # other (an L-shaped saccade: edges of every orientation change in every step); a move that would leave
    # +-_MARGIN goes the other way.
    signs = rng.choice([-1, 1], size=(starts.shape[0], 2))
    y_first = rng.random(starts.shape[0]) < 0.5
    times = np.repeat(starts, 2) + np.tile([0, _STEP_US], starts.shape[0])
    pos = np.zeros(2, dtype=np.int64)
    positions = [pos.copy()]
    for k in range(starts.shape[0]):
        for axis in (1, 0) if y_first[k] else (0, 1):
            step = signs[k, axis] if abs(pos[axis] + signs[k, axis]) <= _MARGIN else -signs[k, axis]
            pos = pos.copy()
            pos[axis] += step
            positions.append(pos)

    def view(image: np.ndarray, p: np.ndarray) -> np.ndarray:  # the sensor sees the image shifted by p
        return image[_MARGIN - p[1] : _MARGIN - p[1] + height, _MARGIN - p[0] : _MARGIN - p[0] + width]

    parts = []
    for k, t0 in enumerate(times):
        image = log_images[int(t0 >= switch)]
        parts.append(_move_events(rng, view(image, positions[k + 1]) - view(image, positions[k]), int(t0)))
    # the object changes in place: every pixel whose log intensity changes by the threshold fires
    here = positions[int(np.searchsorted(times, switch, side="left"))]
    parts.append(_move_events(rng, view(log_images[1], here) - view(log_images[0], here), switch))
    n_noise = int(rng.poisson(_NOISE_PER_S * duration / 1e6)) + 1
    noise = np.empty(n_noise, dtype=EVENT_DTYPE)
    noise["t"] = rng.integers(0, duration, size=n_noise)
    noise["t"][0] = 0  # the recording starts with an event
    noise["x"] = rng.integers(0, width, size=n_noise)
    noise["y"] = rng.integers(0, height, size=n_noise)
    noise["p"] = rng.integers(0, 2, size=n_noise)
    parts.append(noise)
    events = np.concatenate(parts)
    events = events[np.argsort(events["t"], kind="stable")]
    events["t"] += _standin_clock(rng, index, duration)
    return events


def _standin_special_times(seed: int, label: int, index: int, events: np.ndarray) -> np.ndarray:
    """Times of the sync events written into a stand-in recording's file (after its first event)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, label, index, 1]))
    n = int(rng.integers(_SPECIAL_EVENTS[0], _SPECIAL_EVENTS[1] + 1))
    return np.sort(rng.integers(int(events["t"][0]) + 1, int(events["t"][-1]) + 1, size=n))


def _standin_readme(seed: int, per_class: int) -> str:
    classes = "\n".join(
        f"  {k} {c:<11s} {STANDIN_PATTERNS[a]} -> {STANDIN_PATTERNS[b]}"
        for k, (c, (a, b)) in enumerate(zip(CLASSES, STANDIN_SEQUENCES))
    )
    move_ms = _STEP_US // 1000
    lo, hi = (int(100 * f) for f in _SWITCH)
    return f"""GENERATED STAND-IN for CIFAR10-DVS (Li et al. 2017). NOT real sensor recordings.

Written by bidl.data.cifar10_dvs.generate_standin(seed={seed}, per_class={per_class}) in the layout and
file format of the figshare release: <class>/cifar10_<class>_<i>.aedat, jAER AEDAT 2.0 (#-header lines,
big-endian uint32 address + uint32 timestamp in us, DVS128 address bits as read by spikingjelly). Same
arguments -> identical bytes.

How it is made: each recording lasts 1.2-1.4 s (the real ones about 1.3 s) and shows one object, which
changes into another at {lo}-{hi} % of the recording. Objects are drawn on a 128x128 field with a random
size (radius 24-34 px), position, contrast (bright on dark or dark on bright, 50/50) and 3-6 blurred
clutter blobs. The class decides the two objects and their ORDER (label, class, first -> second):
{classes}
Classes 2k and 2k+1 show the same two objects in opposite order and every object opens two classes, so
neither the set of frames nor the first 50 ms (the paper's 10 x 5 ms time framing) tell the class: the
order over the whole recording does (equal-event-count framing of the whole recording sees it).
The image moves in {_N_STEPS} L-shaped steps spread evenly over the recording, 1 px along x then 1 px
along y or the other way round (a reflected random walk within +-{_MARGIN} px; each 1-px move spreads
its events over {move_ms} ms). A pixel whose log intensity changes by k times {_THRESHOLD} in a move (or
when the object changes) emits min(k, {_MAX_EVENTS_PER_STEP}) events (ON for brighter), each kept with
probability {_KEEP}; plus {_NOISE_PER_S:.0f} noise events per second. (The real release has far more
events per recording; the stand-in is thinned to keep the files small.)
File features of real jAER recordings the reader must handle: timestamps start at a random time of the
sensor clock, every fifth recording (i % 5 == 4) runs through the 32-bit clock's wrap (stored wrapped),
and each file holds {_SPECIAL_EVENTS[0]}-{_SPECIAL_EVENTS[1]} DVS128 sync events (address 0x8000), which
are not pixels.
There is no official split (neither in the real release): preprocessing draws a seeded per-class split.
"""


def generate_standin(raw_root: str | Path, *, per_class: int = 100, seed: int = 0) -> Path:
    """Write a generated stand-in of CIFAR10-DVS in the figshare release's layout and format.

    Writes ``raw_root/<class>/cifar10_<class>_<i>.aedat`` (i = 0..per_class-1) for the ten
    :data:`CLASSES` and ``raw_root/README.txt`` saying what it is. Everything goes into a temporary sibling
    folder that then replaces ``raw_root`` (an existing one is swapped out and removed), so a crash leaves
    no half-written copy. Same arguments -> identical bytes. Default: 1000 recordings, about 33 MB.

    Returns:
        ``raw_root``.
    """
    raw_root = Path(raw_root)
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    with staged_replacement(raw_root) as tmp:
        for label, cls in enumerate(CLASSES):
            folder = tmp / cls
            folder.mkdir()
            for i in range(per_class):
                events = standin_recording(seed, label, i)
                header = (f"# bidl generated stand-in: seed={seed} class={cls} index={i}",)
                special = _standin_special_times(seed, label, i, events)
                data = encode_aedat2(events, header, special_times=special)
                (folder / f"cifar10_{cls}_{i}.aedat").write_bytes(data)
        (tmp / "README.txt").write_text(_standin_readme(seed, per_class), encoding="utf-8")
    return raw_root
