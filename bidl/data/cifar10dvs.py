"""CIFAR10-DVS: the raw reader, a generated stand-in in the original format, frame cache and Dataset.

Raw layout read by :func:`index_recordings` / :func:`iter_recordings` (the same loader serves the real
release and the stand-in)::

    raw_root/<class>/cifar10_<class>_<i>.aedat     one recording, jAER AEDAT 2.0 (bidl.data.aedat2)

for the ten CIFAR-10 classes (:data:`CLASSES`, label = index), i = 0..999 in the real release (each of the
ten figshare zips ``<class>.zip`` extracts to ``<class>/``). Other entries of ``raw_root`` (``downloads/``,
``.complete``, a README) are ignored. Events come out in spikingjelly's orientation (``x = 127 - b``,
``y = 127 - a``, ``p = 1 - p_raw``; see :mod:`bidl.data.aedat2`).

The dataset has no official split: :func:`preprocess` draws a seeded per-class split (default 90 % train /
10 % test) and stores the sample names of each side in ``split.json``.

Two framings (:func:`preprocess` ``framing=``):

- ``"count"`` (the authors' code, both presets): the WHOLE recording cut into ``n_frames`` segments of
  ``N // n_frames`` consecutive events, the last one also taking the ``N % n_frames`` remainder, exactly
  as spikingjelly's ``split_by="number"`` and the authors' datasets/utils.py do
  (:func:`events_to_count_frames`).
- ``"time"`` (the paper's words, kept as an option): ``n_frames`` windows of ``window_us`` µs (10 x 5 ms)
  from the recording's first event; the rest of the recording (about 1.25 of its 1.3 s) is not used.

Stand-in (:func:`generate_standin`): the real recordings are CIFAR-10 images on an LCD moved in front of a
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

import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from bidl.data.aedat import EVENT_DTYPE
from bidl.data.aedat2 import SENSOR_SIZE, encode_aedat2, read_aedat2
from bidl.data.cache import CachedSplit
from bidl.data.events import events_to_frames
from bidl.data.preprocessing import BadSamples, staged_cache
from bidl.data.staging import staged_replacement
from bidl.errors import ConfigError, DataFormatError
from bidl.io import atomic_savez, atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "CLASSES",
    "FRAMINGS",
    "LAYOUT",
    "N_CLASSES",
    "STANDIN_PATTERNS",
    "STANDIN_SEQUENCES",
    "CIFAR10DVSFrames",
    "events_to_count_frames",
    "frames_of_events",
    "generate_standin",
    "index_recordings",
    "iter_recordings",
    "preprocess",
    "split_per_class",
    "standin_recording",
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
_NAME = re.compile(r"^cifar10_(?P<cls>[a-z]+)_(?P<i>\d+)\.aedat$")

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

    ``events`` is a structured array ``[N]`` of :data:`bidl.data.aedat.EVENT_DTYPE` (t µs, x, y, p) read by
    :func:`bidl.data.aedat2.read_aedat2`. Malformed files raise :class:`DataFormatError` naming them.
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

    The events, in the order given (file order; :func:`bidl.data.aedat2.read_aedat2` returns timestamps
    that never decrease, so this is also time order), are cut into ``n_frames`` segments: segment ``j``
    holds events ``[j * (N // n_frames), (j + 1) * (N // n_frames))`` and the last one runs to ``N``, so
    it also takes the ``N % n_frames`` remainder. With ``N < n_frames`` all events land in the last
    segment. This is spikingjelly's ``cal_fixed_frames_number_segment_index(t, "number", T)`` and the
    authors' ``integrate_events_file_to_frames_file_by_fixed_frames_number`` (their datasets/utils.py)
    exactly; neither sorts by time either. Channel 0 counts ``p == 0`` (OFF), channel 1 the rest, as in
    both. Cells: those of :func:`bidl.data.events.events_to_frames` (pixel ``(y, x)`` -> cell
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
    (:func:`bidl.data.events.events_to_frames`); ``"count"``: :func:`events_to_count_frames` over the whole
    recording in the order given (``window_us`` unused). ``size < 128`` pools sensor pixels into
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
        Structured array ``[N]`` of :data:`bidl.data.aedat.EVENT_DTYPE` sorted by time, in the orientation of
        :func:`bidl.data.aedat2.read_aedat2`, lasting 1.2-1.4 s: the first object of
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

Written by bidl.data.cifar10dvs.generate_standin(seed={seed}, per_class={per_class}) in the layout and
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
    for name, label, path in samples:
        try:
            events = read_aedat2(path)
        except DataFormatError as exc:
            bad.reject(exc, split=split)
            continue
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
        "splits": {},
    }
    with staged_cache(out_dir) as stage:
        for split, mask in (("train", ~is_test), ("test", is_test)):
            chosen = [s for s, m in zip(samples, mask) if m]
            arrays = _sparse_frames(
                chosen,
                split=split,
                bad=bad,
                framing=framing,
                window_us=window_us,
                n_frames=n_frames,
                size=size,
            )
            n = len(arrays["labels"])
            bad.check_split(raw_root, split, n)
            log.info("%s: %d samples, %d non-zero cells", split, n, arrays["index"].size)
            atomic_savez(stage / f"{split}.npz", **arrays)
            summary["splits"][split] = {
                "n": n,
                "class_counts": np.bincount(arrays["labels"], minlength=N_CLASSES).tolist(),
                "names": arrays["names"].tolist(),
            }
        summary["skipped"] = bad.summary()
        atomic_write_text(stage / "split.json", json.dumps(summary, indent=1) + "\n")
    return summary


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
