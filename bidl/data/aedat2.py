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
15          ``addr & 0x8000``          jAER external / special event (not a pixel event)
16-31       must be 0                  (a DVS128 address has 16 bits)
==========  =========================  ===================================================

**Orientation.** The returned events follow spikingjelly's ``CIFAR10DVS.load_origin_data`` (unchanged since
2021): ``x = 127 - b``, ``y = 127 - a``, ``p = 1 - p_raw`` (so the images stand upright and ON = 1 in the
frames). tonic's generic ``read_dvs_128`` reads the same bits as ``x = b``, ``y = a``, ``p = p_raw``; frames
of the two libraries are therefore rotated/flipped against each other. :func:`encode_aedat2` applies the
exact inverse, so ``read_aedat2(write_aedat2(ev)) == ev``.

Differences from spikingjelly: special events (bit 15 set) are dropped instead of being decoded as pixels,
an address with bits above 15 set raises (spikingjelly would decode garbage coordinates), and a timestamp
that jumps back by more than 2**31 µs is taken as a 32-bit wrap and unwrapped (spikingjelly keeps the raw
uint32).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bidl.data.aedat import EVENT_DTYPE
from bidl.errors import DataFormatError
from bidl.io import default_file_mode

__all__ = [
    "AEDAT2_MAGIC",
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

_EXTERNAL_BIT = 0x8000
_ADDRESS_BITS = 0xFFFF
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
        Structured array ``[N]`` of :data:`bidl.data.aedat.EVENT_DTYPE` in file order: ``t`` int64 µs (the
        recording's own clock, 32-bit wraps unwrapped), ``x``/``y`` int16 in ``[0, 128)`` and ``p`` int8
        (1 = ON) in the orientation documented in the module docstring. jAER special events (address bit
        15) are dropped.

    Raises:
        DataFormatError: unreadable or empty file, missing header end, an AEDAT version other than 2.x (an
            AEDAT 3.1 file), an event section that is not a whole number of (address, timestamp) pairs (odd
            number of 32-bit words or a partial word: truncated file), an address with bits above the 16-bit
            DVS128 address space (coordinates out of range), or no pixel event at all. (Polarity and the 7-bit
            coordinates cannot leave their range; timestamps may step back, as jAER recordings do.)
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
    bad = np.flatnonzero(addr & ~np.uint32(_ADDRESS_BITS))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            path,
            f"event {i}: address 0x{int(addr[i]):08x} has bits above the 16-bit DVS128 address space "
            f"(coordinates out of range; {bad.size} such events)",
        )
    pixel = (addr & np.uint32(_EXTERNAL_BIT)) == 0
    if not pixel.all():
        addr, ts = addr[pixel], ts[pixel]
    if addr.shape[0] == 0:
        raise DataFormatError(
            path,
            f"no pixel events after the {offset}-byte header ({words.shape[0] // 2} events in all, special "
            "ones dropped): truncated or empty recording",
        )
    if ts.shape[0] > 1:
        wraps = np.diff(ts) < -(_TS_WRAP // 2)
        if wraps.any():
            ts = ts + np.concatenate([[0], np.cumsum(wraps)]) * _TS_WRAP
    events = np.empty(addr.shape[0], dtype=EVENT_DTYPE)
    events["t"] = ts
    events["x"] = 127 - ((addr & np.uint32(0x7F00)) >> np.uint32(8)).astype(np.int16)
    events["y"] = 127 - ((addr & np.uint32(0xFE)) >> np.uint32(1)).astype(np.int16)
    events["p"] = 1 - (addr & np.uint32(1)).astype(np.int8)
    return events


def encode_aedat2(events: np.ndarray, header_lines: Sequence[str] = ()) -> bytes:
    """Encode events as the bytes of a DVS128 AEDAT 2.0 file (inverse of :func:`read_aedat2`).

    Args:
        events: structured array ``[N]`` with fields ``t`` (µs, ``0 <= t < 2**32``), ``x``, ``y`` (pixels in
            ``[0, 128)``) and ``p`` (0/1), e.g. :data:`bidl.data.aedat.EVENT_DTYPE`; written in the given
            order.
        header_lines: extra header lines (each must start with ``#``), written after jAER's standard lines.

    Returns:
        ``#!AER-DAT2.0\\r\\n`` and the header lines (``\\r\\n``-terminated), then ``8 * N`` bytes of
        big-endian ``(address, timestamp)`` pairs with ``address = ((127 - x) << 8) | ((127 - y) << 1) |
        (1 - p)``.

    Raises:
        ValueError: coordinates outside 128 x 128, a polarity other than 0/1, a timestamp outside uint32, or
            a header line that does not start with ``#`` or contains a line break.
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
    if ((t < 0) | (t >= _TS_WRAP)).any():
        raise ValueError("event timestamps must lie in [0, 2**32) µs")
    words = np.empty((x.shape[0], 2), dtype=">u4")
    words[:, 0] = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)
    words[:, 1] = t
    header = AEDAT2_MAGIC + "".join(f"{line}\r\n" for line in (*_DEFAULT_HEADER, *header_lines)).encode(
        "ascii"
    )
    return header + words.tobytes()


def write_aedat2(path: str | Path, events: np.ndarray, header_lines: Sequence[str] = ()) -> Path:
    """Write :func:`encode_aedat2`'s bytes to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    data = encode_aedat2(events, header_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
