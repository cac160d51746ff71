"""Event streams to frame tensors (the spatio-temporal input of the DVS networks)."""

from __future__ import annotations

import numpy as np


def events_to_frames(
    events: np.ndarray,
    *,
    window_us: int,
    n_frames: int,
    sensor_size: tuple[int, int] = (128, 128),
    out_size: tuple[int, int] = (40, 40),
    t_start: int | None = None,
) -> np.ndarray:
    """Accumulate events into per-window, per-polarity count frames.

    Frame ``k`` counts the events with ``t_start + k * window_us <= t < t_start + (k + 1) * window_us``;
    events before ``t_start`` or after the last of the ``n_frames`` windows are dropped. A pixel ``(y, x)``
    of the sensor lands in cell ``(floor(y * H_out / H_in), floor(x * W_out / W_in))``: 128 -> 40 is the
    paper's ``x // 3.2``. Counts are accumulated in int32, so a busy cell never wraps (the authors' uint8
    frames wrap above 255).

    Args:
        events: structured array ``[N]`` with fields ``t`` (µs), ``x``, ``y`` (pixels) and ``p`` (0 = OFF,
            1 = ON), e.g. :data:`bidl.data.formats.aedat.EVENT_DTYPE`. Need not be sorted.
        window_us: window length in µs (25000 for DVS128 Gesture).
        n_frames: number of windows T (60 for DVS128 Gesture).
        sensor_size: ``(H_in, W_in)`` of the sensor, in pixels.
        out_size: ``(H_out, W_out)`` of the frames, in cells.
        t_start: start of the first window in µs; defaults to the earliest event's time.

    Returns:
        int32 array ``[n_frames, 2, H_out, W_out]``; channel 0 counts OFF events (``p == 0``), channel 1 ON
        events (``p == 1``).

    Raises:
        ValueError: a non-positive window or frame count, coordinates outside ``sensor_size``, or a
            polarity other than 0/1.

    Example:
        >>> ev = np.zeros(3, dtype=[("t", "i8"), ("x", "i2"), ("y", "i2"), ("p", "i1")])
        >>> ev["t"] = [0, 10, 30]; ev["x"] = [0, 127, 5]; ev["p"] = [1, 1, 0]
        >>> f = events_to_frames(ev, window_us=25, n_frames=2)
        >>> f.shape, int(f[0, 1, 0, 0]), int(f[0, 1, 0, 39]), int(f[1, 0, 0, 1])
        ((2, 2, 40, 40), 1, 1, 1)
    """
    if window_us <= 0:
        raise ValueError(f"window_us must be positive, got {window_us}")
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    in_h, in_w = sensor_size
    out_h, out_w = out_size
    frames = np.zeros((n_frames, 2, out_h, out_w), dtype=np.int32)
    if events.shape[0] == 0:
        return frames
    t = events["t"].astype(np.int64)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    if ((x < 0) | (x >= in_w) | (y < 0) | (y >= in_h)).any():
        raise ValueError(f"event coordinates outside the sensor (H, W) = {sensor_size}")
    if ((p != 0) & (p != 1)).any():
        raise ValueError("event polarity must be 0 or 1")
    start = int(t.min()) if t_start is None else int(t_start)
    offset = t - start
    frame = np.floor_divide(offset, window_us)
    keep = (offset >= 0) & (frame < n_frames)
    cell_y = (y[keep] * out_h) // in_h
    cell_x = (x[keep] * out_w) // in_w
    flat = ((frame[keep] * 2 + p[keep]) * out_h + cell_y) * out_w + cell_x
    counts = np.bincount(flat, minlength=frames.size)
    frames.reshape(-1)[:] = counts  # a cell holds at most N events; N < 2**31 for any real recording
    return frames


TONIC_EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
"""tonic's event dtype (``tonic.io.events_struct``): x, y (pixels), t (µs), p (bool, True = ON)."""


def to_tonic(events: np.ndarray) -> np.ndarray:
    """bidl's events (:data:`bidl.data.formats.aedat.EVENT_DTYPE`) as tonic's structured array
    (:data:`TONIC_EVENT_DTYPE`), so that tonic's transforms (``tonic.transforms.ToFrame``, ``Downsample``,
    ``Denoise``, ...) apply to them; tonic itself is not imported.

    Args:
        events: structured array ``[N]`` with fields ``x``, ``y``, ``t`` (µs) and ``p`` (0 = OFF, 1 = ON).

    Returns:
        a new structured array ``[N]`` in the same order, ``p`` as bool.

    Raises:
        ValueError: ``events`` is not a 1-D structured array with fields x, y, t, p, or a polarity is not 0/1.
    """
    _check_event_fields(events, "events")
    p = np.asarray(events["p"])
    if p.dtype != bool and ((p != 0) & (p != 1)).any():
        raise ValueError("events: polarity p must be 0 or 1")
    out = np.empty(events.shape[0], dtype=TONIC_EVENT_DTYPE)
    out["x"] = events["x"]
    out["y"] = events["y"]
    out["t"] = events["t"]
    out["p"] = p.astype(bool)
    return out


def from_tonic(events: np.ndarray) -> np.ndarray:
    """tonic's structured event array (fields x, y, t, p in any order, as ``tonic.io.events_struct`` or a
    dataset's ``dtype``) as bidl's :data:`bidl.data.formats.aedat.EVENT_DTYPE`, e.g. to frame the output of a
    tonic transform with :func:`events_to_frames`.

    Args:
        events: structured array ``[N]``; ``x``, ``y`` integer pixels (or floats holding integers, as after
            some tonic transforms), ``t`` µs (integral), ``p`` bool or 0/1.

    Returns:
        a new array ``[N]`` of ``EVENT_DTYPE`` (``t`` int64, ``x``/``y`` int16, ``p`` int8) in the same order.

    Raises:
        ValueError: a missing field, a non-integral coordinate or time, a coordinate outside int16, a
            polarity other than 0/1.
    """
    from bidl.data.formats.aedat import EVENT_DTYPE

    _check_event_fields(events, "tonic events")
    out = np.empty(events.shape[0], dtype=EVENT_DTYPE)
    for name, kind in (("x", np.int16), ("y", np.int16), ("t", np.int64)):
        values = np.asarray(events[name])
        if values.dtype.kind == "f" and not (
            np.isfinite(values).all() and (np.round(values) == values).all()
        ):
            raise ValueError(f"tonic events: field {name} holds non-integral values")
        info = np.iinfo(kind)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(f"tonic events: field {name} outside the range of {np.dtype(kind).name}")
        out[name] = values
    p = np.asarray(events["p"])
    if p.dtype != bool and ((p != 0) & (p != 1)).any():
        raise ValueError("tonic events: polarity p must be 0 or 1 (or bool)")
    out["p"] = p.astype(np.int8)
    return out


def _check_event_fields(events: np.ndarray, what: str) -> None:
    """Raise ValueError unless ``events`` is a 1-D structured array with fields x, y, t and p."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if names is None or np.ndim(events) != 1:
        raise ValueError(f"{what}: expected a 1-D structured array with fields x, y, t, p")
    missing = [name for name in ("x", "y", "t", "p") if name not in names]
    if missing:
        raise ValueError(f"{what}: missing field(s) {', '.join(missing)} (has {', '.join(names)})")
