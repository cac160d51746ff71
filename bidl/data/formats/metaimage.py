"""MetaImage volumes (``.mhd`` header + ``.raw`` data, or zlib-compressed ``.zraw``): reading with SimpleITK
after a check of the header and data file that names what is wrong, atomic writing, and the voxel <-> world
coordinate maps of an identity-oriented image.

A MetaImage maps voxel index ``(i, j, k)`` (x, y, z; numpy array ``[k, j, i]``) to world mm as
``world = Offset + TransformMatrix-diagonal * index * ElementSpacing``. :func:`read_metaimage` accepts only
diagonal transforms with entries +-1 and flips an axis with -1 on reading, moving its origin to the world
position of the new first voxel, so that every image it returns is identity-oriented and
:func:`world_to_voxel` is ``(world - origin) / spacing`` (then reversed to (z, y, x)).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bidl.errors import DataFormatError
from bidl.io import atomic_write_bytes, default_file_mode

ELEMENT_TYPES: dict[str, str] = {
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_UCHAR": "u1",
    "MET_CHAR": "i1",
    "MET_FLOAT": "f4",
}
"""MetaImage element types this reader accepts (LUNA16 CT: MET_SHORT; masks: MET_UCHAR or others)."""


_REQUIRED_KEYS = ("NDims", "DimSize", "ElementSpacing", "ElementType", "ElementDataFile")
_ORIGIN_KEYS = ("Offset", "Origin", "Position")  # synonyms in MetaIO
_TRANSFORM_KEYS = ("TransformMatrix", "Rotation", "Orientation")


@dataclass(frozen=True)
class MetaImage:
    """A 3-D MetaImage after reading, identity-oriented (see the module docstring).

    Attributes:
        array: ``[z, y, x]`` voxel values in the file's element type (HU for LUNA16 CT).
        origin: ``(x, y, z)`` world mm of voxel ``array[0, 0, 0]`` (after flips).
        spacing: ``(x, y, z)`` voxel size in mm.
        flipped: ``(x, y, z)``: which axes had -1 in the TransformMatrix and were flipped.
        path: the ``.mhd`` file.
    """

    array: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray
    flipped: tuple[bool, bool, bool]
    path: Path


def read_mhd_header(path: str | Path) -> dict[str, str]:
    """Read the ``Key = Value`` lines of a ``.mhd`` header (values as stripped strings).

    Raises:
        DataFormatError: missing, unreadable, empty or binary file, a line without ``=``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError as exc:
        raise DataFormatError(path, "MetaImage header is missing") from exc
    except OSError as exc:
        raise DataFormatError(path, f"cannot read MetaImage header: {exc}") from exc
    if not text.strip():
        raise DataFormatError(path, f"empty MetaImage header ({len(text)} bytes)")
    if "\0" in text:
        raise DataFormatError(path, "not a MetaImage header: binary content (NUL bytes)")
    header: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise DataFormatError(path, f"line {n}: expected 'Key = Value', got {line.strip()!r}")
        header[key.strip()] = value.strip()
    return header


def _numbers(path: Path, header: Mapping[str, str], key: str, n: int, kind: type = float) -> list:
    try:
        values = [kind(v) for v in header[key].split()]
    except ValueError as exc:
        raise DataFormatError(path, f"{key} = {header[key]!r}: not {n} numbers") from exc
    if len(values) != n:
        raise DataFormatError(path, f"{key} = {header[key]!r}: expected {n} values")
    return values


def _first_key(header: Mapping[str, str], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in header), None)


def _itk_reason(exc: RuntimeError) -> str:
    """What a SimpleITK exception says after ``ITK ERROR:`` / ``sitk::ERROR:``, on one line, without the C++
    source location and the object's address (``MetaImageIO(0x...):``)."""
    text = str(exc)
    match = re.search(r"(?:ITK ERROR|sitk::ERROR):\s*(.*)", text, flags=re.DOTALL)
    reason = " ".join((match.group(1) if match else text).split())
    return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", reason) or type(exc).__name__


def _check_compressed_data(data: Path, header_path: Path, header: Mapping[str, str], expected: int) -> None:
    """Inflate the zlib stream of a ``CompressedData = True`` data file (in bounded pieces, output discarded)
    and raise naming ``data`` when it is cut short, corrupt, of another length than ``CompressedDataSize``
    says or inflates to another size than DimSize x element size. SimpleITK reports neither a truncated nor a
    corrupt stream as an error (it prints to stderr and returns an image of partly undefined voxels)."""
    actual = data.stat().st_size
    if actual == 0:
        raise DataFormatError(data, "0 bytes: empty compressed data file")
    if "CompressedDataSize" in header:
        declared = _numbers(header_path, header, "CompressedDataSize", 1, int)[0]
        if actual != declared:
            what = "truncated" if actual < declared else "longer than the header says"
            raise DataFormatError(
                data, f"{actual} bytes, but CompressedDataSize = {declared} in {header_path.name} ({what})"
            )
    inflater = zlib.decompressobj()
    inflated = 0
    try:
        with data.open("rb") as f:
            while (chunk := f.read(1 << 22)) and not inflater.eof:
                while chunk and not inflater.eof:
                    inflated += len(inflater.decompress(chunk, 1 << 24))
                    chunk = inflater.unconsumed_tail
                    if inflated > expected:
                        break
                if inflated > expected:
                    break
    except zlib.error as exc:
        raise DataFormatError(data, f"corrupt compressed data (zlib: {exc})") from None
    if inflated > expected or (inflater.eof and inflated != expected):
        raise DataFormatError(
            data,
            f"inflates to {'more than ' if not inflater.eof else ''}{inflated} bytes, but DimSize of "
            f"{header_path.name} x element size = {expected}",
        )
    if not inflater.eof:
        raise DataFormatError(
            data, f"compressed data cut short: {actual} bytes inflate to {inflated} of {expected} (truncated)"
        )


def read_metaimage(path: str | Path, *, element_types: Collection[str] | None = None) -> MetaImage:
    """Read a 3-D MetaImage (``.mhd`` header + raw data file, uncompressed or zlib-compressed) with SimpleITK.

    The header is checked first, so that a problem is named in words rather than as SimpleITK's C++ trace:
    it must have ``NDims = 3``, ``DimSize``, ``ElementSpacing`` (positive, finite), ``ElementType`` (one of
    ``element_types``, default all of :data:`ELEMENT_TYPES`), ``ElementDataFile`` (a file beside the header)
    and ``Offset`` (or its MetaIO synonyms ``Origin`` / ``Position``; finite); ``TransformMatrix`` is
    optional (identity) and must be diagonal with entries +-1 (axes with -1 are flipped, see the module
    docstring). The data file must hold prod(DimSize) x element size bytes, or, with ``CompressedData =
    True`` (``.zraw``, as the ``seg-lungs-LUNA16`` masks), a complete zlib stream that inflates to that many
    bytes (and is ``CompressedDataSize`` bytes long when the header says). Then ``sitk.ReadImage`` reads
    voxels, origin, spacing and direction (byte order from ``BinaryDataByteOrderMSB``); numpy shape
    (z, y, x) = reversed DimSize.

    Raises:
        DataFormatError: naming the ``.mhd`` for a header problem (missing key, NDims != 3, an ElementType
            unknown or not in ``element_types``, a spacing that is not positive and finite, oblique data)
            or what SimpleITK refuses, and the data file when it is missing, empty, of another size than
            DimSize says (truncated, padded, another element type), or a compressed stream that is cut
            short, corrupt or inflates to another size.
    """
    path = Path(path)
    header = read_mhd_header(path)
    missing = [k for k in _REQUIRED_KEYS if k not in header]
    origin_key = _first_key(header, _ORIGIN_KEYS)
    if origin_key is None:
        missing.append("Offset")
    if missing:
        raise DataFormatError(path, f"header lacks {missing}")
    if header["NDims"].strip() != "3":
        raise DataFormatError(path, f"NDims = {header['NDims']}: only 3-D images are supported")
    if header.get("ElementNumberOfChannels", "1").strip() != "1":
        raise DataFormatError(path, "ElementNumberOfChannels != 1 is not supported")
    compressed = header.get("CompressedData", "False").strip().lower() == "true"
    element = header["ElementType"].strip()
    if element not in ELEMENT_TYPES:
        raise DataFormatError(path, f"unknown ElementType {element!r} (accepted: {sorted(ELEMENT_TYPES)})")
    if element_types is not None and element not in element_types:
        raise DataFormatError(path, f"ElementType {element} where {' or '.join(element_types)} is expected")
    dtype = np.dtype(ELEMENT_TYPES[element])
    dims = _numbers(path, header, "DimSize", 3, int)
    if min(dims) < 1:
        raise DataFormatError(path, f"DimSize {dims}: every size must be >= 1")
    spacing = np.array(_numbers(path, header, "ElementSpacing", 3), dtype=np.float64)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise DataFormatError(path, f"ElementSpacing {spacing.tolist()}: must be positive and finite")
    origin = np.array(_numbers(path, header, origin_key, 3), dtype=np.float64)
    if not np.isfinite(origin).all():
        raise DataFormatError(path, f"{origin_key} {origin.tolist()}: must be finite")
    transform_key = _first_key(header, _TRANSFORM_KEYS)
    matrix = (
        np.array(_numbers(path, header, transform_key, 9), dtype=np.float64).reshape(3, 3)
        if transform_key
        else np.eye(3)
    )
    diagonal = np.diag(matrix)
    if np.abs(matrix - np.diag(diagonal)).max() > 1e-6 or np.abs(np.abs(diagonal) - 1).max() > 1e-6:
        raise DataFormatError(
            path, f"{transform_key} {matrix.ravel().tolist()}: only diagonal +-1 orientations are supported"
        )
    data_name = header["ElementDataFile"].strip()
    if data_name.upper() == "LOCAL" or "/" in data_name or "\\" in data_name:
        raise DataFormatError(
            path, f"ElementDataFile = {data_name!r}: expected a file name beside the header"
        )
    raw = path.parent / data_name
    if not raw.is_file():
        kind = "compressed data file" if compressed else "raw data file"
        raise DataFormatError(raw, f"{kind} named by {path.name} is missing")
    expected = math.prod(dims) * dtype.itemsize
    if compressed:
        _check_compressed_data(raw, path, header, expected)
    else:
        actual = raw.stat().st_size
        if actual != expected:
            voxels = math.prod(dims)
            other = [k for k, v in ELEMENT_TYPES.items() if actual == voxels * np.dtype(v).itemsize]
            size = f"{dtype.itemsize} bytes ({element}) = {expected}"
            problem = f"{actual} bytes, but DimSize {dims} of {path.name} x {size}"
            if actual == 0:
                problem += " (empty file)"
            elif other:
                cut = ", or cut short" if actual < expected else ""
                problem += f" (the size of {' / '.join(other)} data: another element type{cut})"
            else:
                problem += (
                    " (truncated, or DimSize too large)"
                    if actual < expected
                    else " (longer than DimSize says)"
                )
            raise DataFormatError(raw, problem)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DataFormatError(
            path, f"SimpleITK cannot read it ({_itk_reason(exc)}; MetaIO prints the cause on stderr)"
        ) from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataFormatError(path, f"SimpleITK reads a {image.GetDimension()}-D multi-component image")
    if list(image.GetSize()) != dims:
        raise DataFormatError(path, f"SimpleITK reads size {list(image.GetSize())}, DimSize says {dims}")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype != dtype:
        raise DataFormatError(path, f"SimpleITK reads {array.dtype} voxels where {element} is {dtype}")
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    origin = np.array(image.GetOrigin(), dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    flipped = tuple(bool(d < 0) for d in np.diag(direction))
    for axis_xyz, flip in enumerate(flipped):
        if flip:
            array = np.flip(array, axis=2 - axis_xyz)
            origin[axis_xyz] -= (dims[axis_xyz] - 1) * spacing[axis_xyz]
    array = np.array(array, dtype=dtype.newbyteorder("="), order="C", copy=True)  # own the voxels
    return MetaImage(array, origin, spacing, flipped, path)  # type: ignore[arg-type]


def _fmt(values: Sequence[float]) -> str:
    return " ".join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in values)


def write_metaimage(
    path: str | Path,
    array: np.ndarray,
    *,
    spacing: Sequence[float],
    origin: Sequence[float],
    transform: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    compress: bool = False,
) -> Path:
    """Write ``array`` ``[z, y, x]`` as ``path`` (``.mhd``) + ``<stem>.raw``, little-endian, as LUNA16.

    ``array`` is written as stored in the file (x fastest): with a flipped ``transform`` the caller passes
    the array in file order and ``origin`` = the world position of the file's first voxel. ``spacing`` and
    ``origin`` are (x, y, z) mm. Element type from the dtype (int16 -> MET_SHORT, uint8 -> MET_UCHAR,
    float32 -> MET_FLOAT, ...). Each file is written atomically, the data file first.

    ``compress``: write zlib-compressed data ``<stem>.zraw`` (``CompressedData = True``,
    ``CompressedDataSize``) with ``sitk.WriteImage(..., useCompression=True)``, as the ``seg-lungs-LUNA16``
    masks are stored.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"write_metaimage: expected a 3-D [z, y, x] array, got {array.shape}")
    by_dtype = {np.dtype(v).str[-2:]: k for k, v in ELEMENT_TYPES.items()}
    key = array.dtype.str[-2:]
    if key not in by_dtype:
        raise ValueError(f"write_metaimage: unsupported dtype {array.dtype}")
    if compress:
        return _write_compressed_metaimage(path, array, spacing, origin, transform)
    raw = path.with_suffix(".raw")
    atomic_write_bytes(raw, np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"TransformMatrix = {_fmt(transform)}",
        f"Offset = {_fmt(origin)}",
        "CenterOfRotation = 0 0 0",
        "AnatomicalOrientation = RAI",
        f"ElementSpacing = {_fmt(spacing)}",
        f"DimSize = {array.shape[2]} {array.shape[1]} {array.shape[0]}",
        f"ElementType = {by_dtype[key]}",
        f"ElementDataFile = {raw.name}",
    ]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("ascii"))
    return path


def _write_compressed_metaimage(
    path: Path,
    array: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    transform: Sequence[float],
) -> Path:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in transform])
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        try:
            sitk.WriteImage(image, str(staging / path.name), useCompression=True)
        except RuntimeError as exc:
            raise OSError(f"{path}: SimpleITK cannot write it: {_itk_reason(exc)}") from None
        for name in (f"{path.stem}.zraw", path.name):  # the data file first, the header last
            os.chmod(staging / name, default_file_mode())
            os.replace(staging / name, path.parent / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def world_to_voxel(world: np.ndarray, origin: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """World mm ``[..., 3]`` (x, y, z) -> fractional voxel indices ``[..., 3]`` in (z, y, x) array order.

    For an identity-oriented image (any :class:`MetaImage` after reading): ``(world - origin) / spacing``.
    """
    return ((np.asarray(world, dtype=np.float64) - origin) / spacing)[..., ::-1]


def voxel_to_world(voxel_zyx: np.ndarray, origin: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_voxel`: (z, y, x) indices -> world (x, y, z) mm."""
    return origin + np.asarray(voxel_zyx, dtype=np.float64)[..., ::-1] * spacing
