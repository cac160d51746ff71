"""Reader and writer for jAER AEDAT 2.0 files of a DVS128 sensor (the CIFAR10-DVS release).

Layout: ASCII header lines, each starting with ``#`` and ending with ``\\n`` (jAER writes
``\\r\\n``; the first line is ``#!AER-DAT2.0``), then the events as **big-endian** pairs
``uint32 address, uint32 timestamp`` (8 bytes per event, timestamps in µs). The header ends at the first
line that does not start with ``#``; AEDAT 2.0 has no end-of-header marker. (A file without any header
line is accepted and read from byte 0, as spikingjelly does.)

DVS128 address bits (jAER's ``DVS128`` extractor, spikingjelly ``_load_raw_events``):

==========  =========================  ===================================================
bits        field                      meaning
==========  =========================  ===================================================
0           ``p_raw = addr & 1``       polarity as stored
1-7         ``a = (addr & 0xFE) >> 1``  sensor column as jAER names it
8-14        ``b = (addr & 0x7F00) >> 8``  sensor row as jAER names it
15          ``addr & 0x8000``          DVS128 sync / external-input event (special, not a pixel)
16-30       must be 0                  (a DVS128 address has 16 bits)
31          ``addr & 0x80000000``      jAER's special-event bit (special, not a pixel)
==========  =========================  ===================================================

jAER's DVS128 extractor marks an address special when ``addr & (0x8000 | 0x80000000)`` is non-zero
(``CypressFX2DVS128HardwareInterface.SYNC_EVENT_BITMASK | BasicEvent.SPECIAL_EVENT_BIT_MASK``) and gives it
no pixel; spikingjelly's ``_load_raw_events`` (and the authors' ``datasets/utils.py``, ``filter_dvs=False``)
and tonic's ``read_dvs_128`` decode such words as pixels. This reader drops them.

**Timestamps** are the sensor's 32-bit microsecond clock as jAER writes it (an ``int32`` that runs on
through ``2**31``; read unsigned here). Two ways a timestamp can be smaller than the one before it:

- a 32-bit wrap (the step back is larger than ``2**31`` µs): unwrapped, every later timestamp gains
  ``2**32``;
- any other step back of at most :data:`MAX_BACKSTEP_US`: the file order is kept and the timestamp is
  clamped to the largest one seen so far (the event keeps its place and takes the latest time), so the
  returned ``t`` never decreases and time order equals file order (the order in which spikingjelly and
  the authors' code cut a recording into equal-count frames). A step back of more than
  :data:`MAX_BACKSTEP_US` that is not a wrap is a reset of the sensor clock inside the recording, not
  jitter: it raises :class:`bidl.errors.DataFormatError` naming the file, the event and its byte offset
  (so ``on_bad_sample: error`` stops there and ``skip`` leaves the recording out).

**Orientation.** The returned events follow spikingjelly's ``CIFAR10DVS.load_origin_data`` (unchanged since
2021): ``x = 127 - b``, ``y = 127 - a``, ``p = 1 - p_raw`` (so the images stand upright and ON = 1 in the
frames). tonic's generic ``read_dvs_128`` reads the same bits as ``x = b``, ``y = a``, ``p = p_raw``; frames
of the two libraries are therefore rotated/flipped against each other. :func:`encode_aedat2` applies the
exact inverse, so ``read_aedat2(write_aedat2(ev)) == ev``.

Differences from spikingjelly: special events (bit 15 or bit 31 set) are dropped instead of being decoded
as pixels, an address with any of bits 16-30 set raises (not a DVS128 address: spikingjelly would decode
garbage coordinates), 32-bit wraps are unwrapped and small steps back clamped as above (spikingjelly keeps
the raw uint32 timestamps; its equal-count framing uses file order, which clamping keeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bidl.data.formats.aedat import EVENT_DTYPE
from bidl.errors import DataFormatError
from bidl.io import atomic_write_bytes

__all__ = [
    "AEDAT2_MAGIC",
    "MAX_BACKSTEP_US",
    "SPECIAL_ADDRESS",
    "SENSOR_SIZE",
    "encode_aedat2",
    "read_aedat2",
    "split_aedat2_header",
    "write_aedat2",
]

AEDAT2_MAGIC = b"#!AER-DAT2.0\r\n"
"""First header line jAER writes for AEDAT 2.0."""

SENSOR_SIZE = (128, 128)
"""DVS128 (height, width) in pixels."""

SPECIAL_ADDRESS = 0x8000
"""Address of a DVS128 sync / external-input event (bit 15): what :func:`encode_aedat2` writes for a
special event."""

MAX_BACKSTEP_US = 1_000_000
"""Largest step back of a timestamp (µs, not a 32-bit wrap) that :func:`read_aedat2` clamps; a larger one
is a clock reset and raises. (A CIFAR10-DVS recording lasts about 1.3 s.)"""

_SPECIAL_BITS = 0x8000 | 0x80000000
_FOREIGN_BITS = 0x7FFF0000  # bits 16-30: not part of a DVS128 address
_TS_WRAP = 1 << 32
_DEFAULT_HEADER = (
    "# This is a raw AE data file - do not edit",
    "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
    "# Timestamps tick is 1 us",
)


def split_aedat2_header(path: str | Path, raw: bytes) -> tuple[list[str], int]:
    """Split an AEDAT 2.0 file's bytes into its header lines and the offset of the first event.

    Args:
        path: the file (for error messages only).
        raw: the whole file content.

    Returns:
        ``(lines, offset)``: the header lines decoded as ASCII (``\\r\\n`` stripped, undecodable bytes
        replaced) and the byte offset where the event words start.

    Raises:
        DataFormatError: a ``#`` header line without a terminating newline (the header never ends), or a
            ``#!AER-DAT`` version line that is not 2.x.
    """
    lines: list[str] = []
    pos = 0
    while pos < len(raw) and raw[pos] == ord("#"):
        end = raw.find(b"\n", pos)
        if end < 0:
            raise DataFormatError(
                path, f"header line at byte {pos} has no end of line: missing header end (truncated file?)"
            )
        line = raw[pos : end + 1].rstrip(b"\r\n").decode("ascii", "replace")
        if pos == 0 and line.startswith("#!AER-DAT") and not line.startswith("#!AER-DAT2"):
            raise DataFormatError(path, f"AEDAT version {line!r} is not 2.x")
        lines.append(line)
        pos = end + 1
    return lines, pos


def read_aedat2(path: str | Path) -> np.ndarray:
    """Read the pixel events of a DVS128 AEDAT 2.0 file (one CIFAR10-DVS recording).

    Args:
        path: the ``.aedat`` file.

    Returns:
        Structured array ``[N]`` of :data:`bidl.data.formats.aedat.EVENT_DTYPE` in file order: ``t`` int64 µs
        (the recording's own clock, 32-bit wraps unwrapped), ``x``/``y`` int16 in ``[0, 128)`` and ``p`` int8
        (1 = ON) in the orientation documented in the module docstring; ``t`` never decreases (32-bit wraps
        unwrapped, small steps back clamped: see the module docstring). Special events (address bit 15 or
        31) are dropped.

    Raises:
        DataFormatError: unreadable or empty file, missing header end, an AEDAT version other than 2.x (an
            AEDAT 3.1 file), an event section that is not a whole number of (address, timestamp) pairs (odd
            number of 32-bit words or a partial word: truncated file), a pixel address with any of bits 16-30
            set (outside the DVS128 address space), a timestamp that steps back by more than
            :data:`MAX_BACKSTEP_US` without wrapping (a clock reset; the message names the event and its byte
            offset), or no pixel event at all. (Polarity and the 7-bit coordinates cannot leave their range.)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read file: {exc}") from exc
    if not raw:
        raise DataFormatError(path, "empty file (0 bytes)")
    _, offset = split_aedat2_header(path, raw)
    n_bytes = len(raw) - offset
    if n_bytes % 4:
        raise DataFormatError(
            path, f"event section of {n_bytes} bytes is not a whole number of 32-bit words (truncated file)"
        )
    words = np.frombuffer(raw, dtype=">u4", offset=offset)
    if words.shape[0] % 2:
        raise DataFormatError(
            path,
            f"odd number of 32-bit words ({words.shape[0]}): a trailing address without its timestamp "
            "(truncated file)",
        )
    addr = words[0::2]
    ts = words[1::2].astype(np.int64)
    index = np.arange(addr.shape[0])  # event number in the file, for error messages
    pixel = (addr & np.uint32(_SPECIAL_BITS)) == 0
    if not pixel.all():
        addr, ts, index = addr[pixel], ts[pixel], index[pixel]
    bad = np.flatnonzero(addr & np.uint32(_FOREIGN_BITS))
    if bad.size:
        i, k = int(bad[0]), int(index[bad[0]])
        raise DataFormatError(
            path,
            f"event {k} (byte {offset + 8 * k}): address 0x{int(addr[i]):08x} has bits "
            f"above the 16-bit DVS128 address space (coordinates out of range; {bad.size} such events)",
        )
    if addr.shape[0] == 0:
        raise DataFormatError(
            path,
            f"no pixel events after the {offset}-byte header ({words.shape[0] // 2} events in all, special "
            "ones dropped): truncated or empty recording",
        )
    ts = _monotonic_timestamps(path, ts, index, offset)
    events = np.empty(addr.shape[0], dtype=EVENT_DTYPE)
    events["t"] = ts
    events["x"] = 127 - ((addr & np.uint32(0x7F00)) >> np.uint32(8)).astype(np.int16)
    events["y"] = 127 - ((addr & np.uint32(0xFE)) >> np.uint32(1)).astype(np.int16)
    events["p"] = 1 - (addr & np.uint32(1)).astype(np.int8)
    return events


def _monotonic_timestamps(path: Path, ts: np.ndarray, index: np.ndarray, offset: int) -> np.ndarray:
    """Unwrap 32-bit wraps, clamp small steps back to the running maximum, raise on a clock reset."""
    if ts.shape[0] < 2:
        return ts
    step = np.diff(ts)
    wraps = step < -(_TS_WRAP // 2)
    if wraps.any():
        ts = ts + np.concatenate([[0], np.cumsum(wraps)]) * _TS_WRAP
    running = np.maximum.accumulate(ts)
    back = running - ts  # how far each event lies before the latest time seen
    reset = np.flatnonzero(back > MAX_BACKSTEP_US)
    if reset.size:
        i = int(reset[0])
        raise DataFormatError(
            path,
            f"event {int(index[i])} (byte {offset + 8 * int(index[i])}): timestamp {int(ts[i])} µs lies "
            f"{int(back[i])} µs before an earlier event's {int(running[i])} µs, more than the "
            f"{MAX_BACKSTEP_US} µs a step back may take (the sensor clock was reset inside the recording)",
        )
    return running


def encode_aedat2(
    events: np.ndarray, header_lines: Sequence[str] = (), *, special_times: Sequence[int] = ()
) -> bytes:
    """Encode events as the bytes of a DVS128 AEDAT 2.0 file (inverse of :func:`read_aedat2`).

    Args:
        events: structured array ``[N]`` with fields ``t`` (µs, ``t >= 0``), ``x``, ``y`` (pixels in
            ``[0, 128)``) and ``p`` (0/1), e.g. :data:`bidl.data.formats.aedat.EVENT_DTYPE`; written in the
            given order. Timestamps are written modulo ``2**32``, as a 32-bit sensor clock wraps; the reader
            unwraps them, so a stream that starts below ``2**32`` and never decreases reads back unchanged.
        header_lines: extra header lines (each must start with ``#``), written after jAER's standard lines.
        special_times: times (µs) of DVS128 sync events (address :data:`SPECIAL_ADDRESS`) to write among
            the pixel events, each just after the last event with ``t <= time``; needs ``events`` in time
            order. The reader drops them.

    Returns:
        ``#!AER-DAT2.0\\r\\n`` and the header lines (``\\r\\n``-terminated), then ``8 * (N + S)`` bytes of
        big-endian ``(address, timestamp)`` pairs with ``address = ((127 - x) << 8) | ((127 - y) << 1) |
        (1 - p)`` for a pixel event.

    Raises:
        ValueError: coordinates outside 128 x 128, a polarity other than 0/1, a negative timestamp, special
            times with events out of time order or a negative special time, or a header line that does not
            start with ``#`` or contains a line break.
    """
    for line in header_lines:
        if not line.startswith("#") or "\n" in line or "\r" in line:
            raise ValueError(f"header line {line!r} must start with '#' and hold no line break")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    t = events["t"].astype(np.int64)
    if ((x < 0) | (x > 127) | (y < 0) | (y > 127)).any():
        raise ValueError("event coordinates outside the 128 x 128 DVS128 sensor")
    if ((p != 0) & (p != 1)).any():
        raise ValueError("event polarity must be 0 or 1")
    if (t < 0).any():
        raise ValueError("event timestamps must not be negative")
    addr = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)
    special = np.asarray(special_times, dtype=np.int64).reshape(-1)
    if special.size:
        if (np.diff(t) < 0).any():
            raise ValueError("special_times need events in time order")
        if (special < 0).any():
            raise ValueError("special_times must not be negative")
        special = np.sort(special)
        where = np.searchsorted(t, special, side="right")
        addr = np.insert(addr, where, SPECIAL_ADDRESS)
        t = np.insert(t, where, special)
    words = np.empty((addr.shape[0], 2), dtype=">u4")
    words[:, 0] = addr
    words[:, 1] = t % _TS_WRAP
    header = AEDAT2_MAGIC + "".join(f"{line}\r\n" for line in (*_DEFAULT_HEADER, *header_lines)).encode(
        "ascii"
    )
    return header + words.tobytes()


def write_aedat2(
    path: str | Path,
    events: np.ndarray,
    header_lines: Sequence[str] = (),
    *,
    special_times: Sequence[int] = (),
) -> Path:
    """Write :func:`encode_aedat2`'s bytes to ``path`` atomically (:func:`bidl.io.atomic_write_bytes`)."""
    return atomic_write_bytes(path, encode_aedat2(events, header_lines, special_times=special_times))
