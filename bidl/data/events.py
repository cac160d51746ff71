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
            1 = ON), e.g. :data:`bidl.data.aedat.EVENT_DTYPE`. Need not be sorted.
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
