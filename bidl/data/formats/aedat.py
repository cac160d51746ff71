"""Readers and a writer for DVS128 Gesture event files.

Two on-disk forms of the same recordings are supported:

- **AEDAT 3.1** (IBM's original release, ``DvsGesture/userNN_<lighting>.aedat``): ASCII header lines
  starting with ``#`` and ending with the line ``#!END-HEADER\\r\\n``, then packets, each a 28-byte
  little-endian header

  ==========  ===============  ===============================================
  offset      type             field
  ==========  ===============  ===============================================
  0           uint16           eventType (1 = polarity)
  2           uint16           eventSource
  4           uint32           eventSize (bytes per event; 8 for polarity)
  8           uint32           eventTSOffset (byte offset of the timestamp)
  12          uint32           eventTSOverflow (number of 2**31 µs wraps)
  16          uint32           eventCapacity (events stored in the payload)
  20          uint32           eventNumber (events present, <= capacity)
  24          uint32           eventValid (valid events, <= number)
  ==========  ===============  ===============================================

  followed by ``eventCapacity * eventSize`` payload bytes. A polarity event is ``uint32 data, uint32 ts``
  with ``x = (data >> 17) & 0x1FFF``, ``y = (data >> 2) & 0x1FFF``, ``p = (data >> 1) & 1`` and bit 0 the
  valid mark; the full timestamp is ``ts | (eventTSOverflow << 31)`` in µs. Real recordings also hold
  packets of other types (special events, type 0: timestamp wraps, external inputs; IMU, frames, ...),
  which the reader skips by their ``eventCapacity * eventSize`` payload, and polarity events whose valid
  bit is 0, which it drops. Timestamps past ``2**31`` µs (recordings made after the camera ran 36 minutes)
  live in the overflow counter.

- **tonic's copy** (``ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy``): an ``(N, 4)`` array with
  columns x, y, p, t where t is in **milliseconds** (tonic multiplies it by 1000 on load).

Both readers return the same structured array (:data:`EVENT_DTYPE`): ``t`` int64 µs, ``x`` int16, ``y`` int16,
``p`` int8 (0 = OFF, 1 = ON). Sensor size 128 x 128. All malformed input (empty,
truncated, of another format, or with values out of range) raises :class:`bidl.errors.DataFormatError` whose
message starts with the offending file's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bidl.errors import DataFormatError
from bidl.io import atomic_write_bytes, default_file_mode  # noqa: F401

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
"""Structured dtype of an event array: t (µs), x, y (pixels), p (0 = OFF, 1 = ON)."""

SENSOR_SIZE = (128, 128)
"""DVS128 sensor (height, width) in pixels."""

SPECIAL_EVENT_TYPE = 0
POLARITY_EVENT_TYPE = 1
POLARITY_EVENT_SIZE = 8
SPECIAL_TIMESTAMP_WRAP = 0
"""libcaer special-event type written when the timestamp passes a multiple of 2**31 µs."""
SPECIAL_EXTERNAL_INPUT_PULSE = 4
"""libcaer special-event type of a pulse on the camera's external input pin."""
_PACKET_HEADER = np.dtype(
    [
        ("eventType", "<u2"),
        ("eventSource", "<u2"),
        ("eventSize", "<u4"),
        ("eventTSOffset", "<u4"),
        ("eventTSOverflow", "<u4"),
        ("eventCapacity", "<u4"),
        ("eventNumber", "<u4"),
        ("eventValid", "<u4"),
    ]
)
_PACKET_HEADER_BYTES = _PACKET_HEADER.itemsize  # 28
_POLARITY_EVENT = np.dtype([("data", "<u4"), ("ts", "<u4")])
_END_HEADER = b"#!END-HEADER\r\n"
_NPY_MAGIC = b"\x93NUMPY"
_TS_BITS = 31  # an AEDAT 3.1 timestamp is a non-negative int32; overflow counts 2**31 wraps


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event array of length ``n`` with dtype :data:`EVENT_DTYPE`."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def _split_header(path: Path, raw: bytes) -> int:
    """Return the byte offset of the first packet (just past ``#!END-HEADER\\r\\n``)."""
    if not raw:
        raise DataFormatError(path, "empty file (0 bytes)")
    if not raw.startswith(b"#"):
        raise DataFormatError(path, "not an AEDAT file: does not start with a '#' header line")
    newline = raw.find(b"\n")
    first_line = raw[: newline + 1] if newline >= 0 else raw
    if first_line.startswith(b"#!AER-DAT") and not first_line.startswith(b"#!AER-DAT3"):
        version = first_line.strip().decode("ascii", "replace")
        raise DataFormatError(path, f"AEDAT version {version!r} is not 3.x")
    end = raw.find(_END_HEADER)
    if end < 0:
        raise DataFormatError(path, "AEDAT header has no '#!END-HEADER' line (file truncated or not AEDAT)")
    return end + len(_END_HEADER)


def read_aedat31(path: str | Path) -> np.ndarray:
    """Read all polarity events of an AEDAT 3.1 file (the DVS128 Gesture original release).

    Args:
        path: the ``.aedat`` file.

    Returns:
        Structured array ``[N]`` of :data:`EVENT_DTYPE` in file order: ``t`` int64 µs (overflow applied),
        ``x``/``y`` int16 in ``[0, 128)``, ``p`` int8 (0 = OFF, 1 = ON). Packets of other event types are
        skipped by their payload size; events whose valid bit (bit 0 of ``data``) is clear are dropped, as
        the format prescribes.

    Timestamps that step back (policy): within a packet the valid events' timestamps must not decrease
    (libcaer, which writes AEDAT 3.1, drops an event whose timestamp goes back when it acquires it), so a
    step back there is a damaged file and raises, naming the packet and its byte offset (preprocessing's
    ``on_bad_sample: error`` stops there, ``skip`` leaves the trial out). From one packet to the next a
    step back is kept in file order, unchanged (packets of several sources may interleave; the DVS128
    cutting selects each labelled window by time and does not need sorted events).

    Raises:
        DataFormatError: an empty file, an AEDAT version other than 3.x (an AEDAT 2 file), a missing header
            end, a packet header or payload cut short, a polarity packet whose event size is not 8 or whose
            timestamp offset is not 4, more events than capacity, a timestamp field with bit 31 set (AEDAT
            3.1 timestamps are non-negative int32; the overflow counter holds the higher bits), timestamps
            going back within a packet, no polarity event at all, or coordinates outside 128 x 128.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read file: {exc}") from exc
    pos = _split_header(path, raw)
    buf = memoryview(raw)
    chunks: list[np.ndarray] = []
    packet_index = 0
    while pos < len(raw):
        if len(raw) - pos < _PACKET_HEADER_BYTES:
            raise DataFormatError(
                path, f"truncated packet header at byte {pos} ({len(raw) - pos} of 28 bytes present)"
            )
        header = np.frombuffer(buf, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        event_type = int(header["eventType"])
        size = int(header["eventSize"])
        capacity = int(header["eventCapacity"])
        number = int(header["eventNumber"])
        valid = int(header["eventValid"])
        pos += _PACKET_HEADER_BYTES
        if event_type == POLARITY_EVENT_TYPE and size != POLARITY_EVENT_SIZE:
            raise DataFormatError(
                path, f"packet {packet_index}: polarity packet with eventSize {size} (expected 8)"
            )
        if event_type == POLARITY_EVENT_TYPE and int(header["eventTSOffset"]) != 4:
            raise DataFormatError(
                path,
                f"packet {packet_index}: polarity packet with eventTSOffset {int(header['eventTSOffset'])} "
                "(expected 4)",
            )
        if size == 0 and capacity > 0:
            raise DataFormatError(path, f"packet {packet_index}: eventSize 0 with eventCapacity {capacity}")
        if number > capacity or valid > number:
            raise DataFormatError(
                path,
                f"packet {packet_index}: inconsistent counts (capacity {capacity}, number {number}, "
                f"valid {valid})",
            )
        payload = capacity * size
        if len(raw) - pos < payload:
            raise DataFormatError(
                path,
                f"packet {packet_index}: truncated payload at byte {pos} "
                f"({len(raw) - pos} of {payload} bytes present)",
            )
        if event_type == POLARITY_EVENT_TYPE and number > 0:
            ev = np.frombuffer(buf, dtype=_POLARITY_EVENT, count=number, offset=pos)
            data = ev["data"]
            keep = (data & 1).astype(bool)
            data = data[keep]
            ts = ev["ts"][keep]
            _check_packet_timestamps(path, packet_index, pos, ts)
            out = np.empty(data.shape[0], dtype=EVENT_DTYPE)
            out["t"] = ts.astype(np.int64) | (np.int64(header["eventTSOverflow"]) << _TS_BITS)
            out["x"] = (data >> 17) & 0x1FFF
            out["y"] = (data >> 2) & 0x1FFF
            out["p"] = (data >> 1) & 1
            chunks.append(out)
        pos += payload
        packet_index += 1
    events = np.concatenate(chunks) if chunks else empty_events()
    if events.shape[0] == 0:
        raise DataFormatError(path, f"no valid polarity events in its {packet_index} packet(s)")
    _check_coordinates(path, events)
    return events


def _check_packet_timestamps(path: Path, packet_index: int, pos: int, ts: np.ndarray) -> None:
    """Raise unless the uint32 timestamps of one packet's valid events fit 31 bits and never decrease."""
    if ts.shape[0] == 0:
        return
    if (ts >> _TS_BITS).any():
        i = int(np.flatnonzero(ts >> _TS_BITS)[0])
        raise DataFormatError(
            path,
            f"packet {packet_index} (payload at byte {pos}): event {i} has timestamp field {int(ts[i])} "
            f">= 2**31 (AEDAT 3.1 timestamps are non-negative int32)",
        )
    back = np.flatnonzero(ts[1:] < ts[:-1])
    if back.size:
        i = int(back[0]) + 1
        raise DataFormatError(
            path,
            f"packet {packet_index} (payload at byte {pos}): timestamps go back from {int(ts[i - 1])} to "
            f"{int(ts[i])} µs at event {i} ({back.size} such steps; an AEDAT 3.1 packet is in time order)",
        )


def _check_coordinates(path: Path, events: np.ndarray) -> None:
    """Raise if any event lies outside the 128 x 128 sensor."""
    if events.shape[0] == 0:
        return
    height, width = SENSOR_SIZE
    bad = (events["x"] < 0) | (events["x"] >= width) | (events["y"] < 0) | (events["y"] >= height)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path,
            f"{int(bad.sum())} event(s) outside the {width}x{height} sensor, first at index {i}: "
            f"x={int(events['x'][i])}, y={int(events['y'][i])}",
        )


def _validate_events_for_writing(events: np.ndarray) -> None:
    """Raise ValueError unless ``events`` can be stored as DVS128 polarity events."""
    missing = {"t", "x", "y", "p"} - set(events.dtype.names or ())
    if missing:
        raise ValueError(f"events need fields t, x, y, p; missing {sorted(missing)}")
    if events.shape[0] == 0:
        return
    if (events["t"] < 0).any():
        raise ValueError("events: negative timestamps cannot be stored in AEDAT 3.1")
    if (np.diff(events["t"]) < 0).any():
        raise ValueError("events: timestamps must not decrease (an AEDAT 3.1 packet is in time order)")
    if not np.isin(events["p"], (0, 1)).all():
        raise ValueError("events: polarity must be 0 or 1")
    height, width = SENSOR_SIZE
    x, y = events["x"], events["y"]
    if ((x < 0) | (x >= width) | (y < 0) | (y >= height)).any():
        raise ValueError(f"events: coordinates outside the {width}x{height} sensor")


def encode_aedat31(
    events: np.ndarray,
    *,
    source_id: int = 1,
    packet_events: int = 4096,
    header_lines: tuple[str, ...] = (),
    valid: np.ndarray | None = None,
    special: Sequence[tuple[int, int]] = (),
) -> bytes:
    """Encode events as the bytes of an AEDAT 3.1 file (see :func:`write_aedat31`)."""
    _validate_events_for_writing(events)
    if packet_events < 1:
        raise ValueError(f"packet_events must be >= 1, got {packet_events}")
    lines = ["#!AER-DAT3.1", "#Format: RAW", f"#Source {source_id}: DVS128", *header_lines, "#!END-HEADER"]
    for line in lines:
        if not line.startswith("#") or "\n" in line or "\r" in line:
            raise ValueError(f"header line {line!r} must start with '#' and be a single line")
    header = "".join(f"{line}\r\n" for line in lines).encode("ascii")
    n = events.shape[0]
    valid_bit = np.ones(n, dtype=np.uint32)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (n,):
            raise ValueError(f"valid: expected a bool array of shape ({n},), got shape {valid.shape}")
        valid_bit = valid.astype(np.uint32)
    t = events["t"].astype(np.int64)
    body = np.empty(n, dtype=_POLARITY_EVENT)
    body["data"] = (
        (events["x"].astype(np.uint32) << 17)
        | (events["y"].astype(np.uint32) << 2)
        | (events["p"].astype(np.uint32) << 1)
        | valid_bit
    )
    body["ts"] = (t & ((1 << _TS_BITS) - 1)).astype(np.uint32)
    overflow = t >> _TS_BITS
    special_t = np.array([int(st) for st, _ in special], dtype=np.int64)
    special_type = np.array([int(kind) for _, kind in special], dtype=np.int64)
    if special_t.size and ((special_t < 0).any() or (special_type < 0).any() or (special_type > 127).any()):
        raise ValueError("special: times must be >= 0 and types in 0..127")
    order = np.argsort(special_t, kind="stable")
    special_t, special_type = special_t[order], special_type[order]
    special_at = np.searchsorted(t, special_t, side="left")  # written before the first event at or after it
    # Packet boundaries: every packet_events events, wherever the overflow counter changes, and wherever
    # special events go in between.
    cuts = set(range(0, n, packet_events))
    cuts.update((np.flatnonzero(np.diff(overflow)) + 1).tolist())
    cuts.update(int(k) for k in special_at if k < n)
    starts = sorted(cuts)
    ends = starts[1:] + [n]
    parts: list[bytes] = [header]

    def packet(event_type: int, overflow_count: int, payload: bytes, count: int, n_valid: int) -> None:
        ph = np.zeros(1, dtype=_PACKET_HEADER)
        ph["eventType"] = event_type
        ph["eventSource"] = source_id
        ph["eventSize"] = POLARITY_EVENT_SIZE  # special and polarity events are both 8 bytes
        ph["eventTSOffset"] = 4
        ph["eventTSOverflow"] = overflow_count
        ph["eventCapacity"] = count
        ph["eventNumber"] = count
        ph["eventValid"] = n_valid
        parts.append(ph.tobytes())
        parts.append(payload)

    def special_packets(at: int) -> None:
        chosen = np.flatnonzero(special_at == at)
        for ov in np.unique(special_t[chosen] >> _TS_BITS):  # one overflow value per packet
            k = chosen[(special_t[chosen] >> _TS_BITS) == ov]
            ev = np.empty(k.size, dtype=_POLARITY_EVENT)
            ev["data"] = (special_type[k].astype(np.uint32) << 1) | np.uint32(1)
            ev["ts"] = (special_t[k] & ((1 << _TS_BITS) - 1)).astype(np.uint32)
            packet(SPECIAL_EVENT_TYPE, int(ov), ev.tobytes(), k.size, k.size)

    for start, end in zip(starts, ends):
        special_packets(start)
        packet(
            POLARITY_EVENT_TYPE,
            int(overflow[start]),
            body[start:end].tobytes(),
            end - start,
            int(valid_bit[start:end].sum()),
        )
    special_packets(n)
    return b"".join(parts)


def write_aedat31(
    path: str | Path,
    events: np.ndarray,
    *,
    source_id: int = 1,
    packet_events: int = 4096,
    header_lines: tuple[str, ...] = (),
    valid: np.ndarray | None = None,
    special: Sequence[tuple[int, int]] = (),
) -> None:
    """Write polarity events as an AEDAT 3.1 file, atomically (temporary file, then rename).

    Args:
        path: destination ``.aedat`` file.
        events: structured array ``[N]`` with fields ``t`` (µs, >= 0, non-decreasing), ``x``, ``y`` (in
            ``[0, 128)``) and ``p`` (0/1), e.g. :data:`EVENT_DTYPE`. Written in the given order.
        source_id: the ``eventSource`` of every packet and the ``#Source`` header line.
        packet_events: the most events per packet; a packet also ends where ``t >> 31`` changes, so each
            packet has a single ``eventTSOverflow``.
        header_lines: extra header lines, each starting with ``#``, put before ``#!END-HEADER``.
        valid: bool ``[N]``; an event marked False is written with its valid bit (bit 0) clear, counted in
            its packet's ``eventNumber`` but not ``eventValid`` (the reader drops it). Default: all valid.
        special: ``(t, type)`` pairs of libcaer special events (e.g. :data:`SPECIAL_TIMESTAMP_WRAP`,
            :data:`SPECIAL_EXTERNAL_INPUT_PULSE`), written as packets of event type 0 just before the first
            polarity event at or after ``t`` (the reader skips them).
    """
    path = Path(path)
    data = encode_aedat31(
        events,
        source_id=source_id,
        packet_events=packet_events,
        header_lines=header_lines,
        valid=valid,
        special=special,
    )
    atomic_write_bytes(path, data)


def read_tonic_npy(path: str | Path) -> np.ndarray:
    """Read one sample of tonic's preprocessed DVS128 Gesture copy.

    Args:
        path: a ``.npy`` file holding an ``(N, 4)`` array with columns x, y, p, t, t in milliseconds.

    Returns:
        Structured array ``[N]`` of :data:`EVENT_DTYPE`; ``t = round(t_ms * 1000)`` µs (tonic multiplies by
        1000 and truncates; rounding avoids float artefacts such as 0.001 * 1000 = 0.99999...).

    Raises:
        DataFormatError: unreadable, empty or truncated file, not a ``.npy`` file, wrong shape, non-finite or
            negative values, polarity not 0/1 (booleans accepted), non-integer coordinates or coordinates
            outside 128 x 128.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
            if not magic:
                raise DataFormatError(path, "empty file (0 bytes)")
            if magic != _NPY_MAGIC:
                raise DataFormatError(path, "not a .npy file (no \\x93NUMPY signature)")
            handle.seek(0)
            arr = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(path, f"cannot load as .npy: {exc}") from exc
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != 4:
        raise DataFormatError(path, f"expected an (N, 4) array of x, y, p, t; got shape {np.shape(arr)}")
    if arr.dtype.kind not in "biuf":
        raise DataFormatError(path, f"expected a numeric array, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataFormatError(path, "non-finite values")
    x, y, p, t_ms = values.T
    if (np.round(x) != x).any() or (np.round(y) != y).any():
        raise DataFormatError(path, "non-integer pixel coordinates")
    if not np.isin(p, (0.0, 1.0)).all():
        raise DataFormatError(path, "polarity column holds values other than 0/1")
    if (t_ms < 0).any():
        raise DataFormatError(path, "negative timestamps")
    height, width = SENSOR_SIZE
    if ((x < 0) | (x >= width) | (y < 0) | (y >= height)).any():
        raise DataFormatError(path, f"event(s) outside the {width}x{height} sensor")
    events = np.empty(arr.shape[0], dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["p"] = p > 0
    events["t"] = np.rint(t_ms * 1000.0).astype(np.int64)
    return events
