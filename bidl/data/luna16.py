"""LUNA16: MetaImage reading (SimpleITK) and writing, nodule-centred cube extraction, a generated stand-in and
the cube cache.

Raw layout read by :func:`preprocess` (LUNA16 as extracted from its Zenodo records 3723295 / 4121926, plus the
malignancy labels; the stand-in of :func:`generate_standin` writes the same)::

    raw_root/subset0/<seriesuid>.mhd + .raw       CT volume, int16 HU (MET_SHORT), x fastest
    ...
    raw_root/subset9/<seriesuid>.mhd + .raw
    raw_root/seg-lungs-LUNA16/<seriesuid>.mhd + .zraw  lung segmentation, zlib-compressed MetaImage
                                                       (CompressedData = True): 3 and 4 = the two lungs
    raw_root/annotations.csv     seriesuid,coordX,coordY,coordZ,diameter_mm       (world mm)
    raw_root/candidates.csv      seriesuid,coordX,coordY,coordZ,class             (1 = nodule, 0 = not)
    raw_root/annotations_with_malignancy.csv   seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,
                                  mal_details,bboxLow/High X/Y/Z,len_mal_details  (see "Label source")

The csv files may also lie in ``raw_root/downloads/`` (where the fetch step keeps plain files). Every volume
and mask, compressed or not, is read with SimpleITK (:func:`read_metaimage`) after a check of its header and
data file that names what is wrong (SimpleITK's own messages are C++ traces, and it does not report a
truncated or corrupt compressed stream at all).

Coordinates. A MetaImage maps voxel index ``(i, j, k)`` (x, y, z; numpy array ``[k, j, i]``) to world mm as
``world = Offset + TransformMatrix-diagonal * index * ElementSpacing`` (SimpleITK's origin, direction and
spacing). :func:`read_metaimage` accepts
only diagonal transforms with entries +-1 (LUNA16 has identity and, for a few scans, x/y flipped); an axis
with -1 is flipped on reading (as BIDL's ``prepare_Luna16.py`` and DeepLung do) and its origin moved to the
world position of the new first voxel, ``Offset - (n - 1) * spacing``, so that after reading every image is
"identity-oriented" and :func:`world_to_voxel` is simply ``(world - origin) / spacing`` (then reversed to
(z, y, x)).

Preprocessing (paper section 5; the steps of the DSB2017 "grt123" ``prep.py`` that BIDL
copies), per scan, in the scan's own voxel grid:

1. HU volume and lung mask (mask values 3 and 4, :data:`LUNG_MASK_VALUES`).
2. Per lung, per slice: the convex hull of the lung's pixels (pixel centres inside the hull of the
   pixel centres); if the hull is more than 1.5x the lung's area the slice keeps the plain mask (grt123).
   Then a 3-D binary dilation with the 6-neighbour cross, 10 iterations; the two lungs are OR-ed.
3. HU window [-1200, 600] to 0..255: ``v = floor((clip(HU, -1200, 600) + 1200) / 1800 * 255 + 0.5)``
   (grt123 truncates instead of rounding; e.g. HU -300 -> 127.5 -> 128 here, 127 there).
4. Voxels outside the dilated hull are set to :data:`PAD_VALUE` = 170 (grt123's pad value); voxels in the
   dilation ring (hull but not lung) brighter than :data:`BONE_THRESHOLD` = 210 too (grt123's bone removal).
5. Resampling to ``voxel_mm`` (1 mm) isotropic with trilinear interpolation (order 1), evaluated directly
   on each cube's grid with ``scipy.ndimage.map_coordinates`` (equivalent to zooming the whole volume and
   cutting, without zoom's grid rounding and at a fraction of the cost); outside the volume: 170.
6. Cubes of :data:`CUBE_SHAPE` = (8, 32, 32) voxels (z, y, x) centred on each sample's world coordinate
   (the cube centre lies between voxels 3/4 and 15/16), rounded back to uint8.

Label source:

- ``"malignancy"``: malignant (label 1) vs benign (label 0) nodules, the paper's task (section 5.1.1: "1,186
  nodules"). LUNA16 itself has no malignancy labels; LIDC-IDRI, from which it is drawn, has up to four
  radiologists' ratings 1-5 per nodule. The label file is ``annotations_with_malignancy.csv`` of
  deep-learning-with-pytorch/dlwpt-code (its generate_annotations_with_malignancy.ipynb matched LUNA16's
  annotations.csv to the pylidc rating clusters): 1182 of LUNA16's 1186 nodules in 600 scans, ``mal_bool``
  True (at least 2 readers rated >= 4, :data:`MALIGNANT_READERS` / :data:`MALIGNANT_RATING`) for 378 and
  False for 804; the fetch step downloads it from a fixed commit and verifies its SHA-256
  (:data:`bidl.data.sources.LUNA16_MALIGNANCY`). Every row is a sample (with ``max_negatives_per_scan``
  None; a cap applies to the benign rows). BIDL's own code (datasets/prepare_Luna16.py,
  datasets/bidl_luna16.py) reads a per-scan labels.csv whose origin it does not say.
- ``"candidates"``: nodule (label 1) vs non-nodule (label 0) from the ``class`` column of the
  candidates file (``candidates.csv`` or ``candidates_V2.csv``). Every positive is kept; the negatives of a
  scan are capped at ``max_negatives_per_scan`` (a seeded choice per scan). The real candidates.csv has
  about 1351 positives and 550k negatives over 888 scans: a cap of 3 gives about 4000 samples.

Split: seeded, by scan (no scan in both): scans with samples are shuffled with ``seed`` and
``round(test_fraction * n)`` (at least 1) go to the test split.

Stand-in (:func:`generate_standin`): small CT-like volumes in HU with compressed lung masks and csv files in
the real formats. Nodules (candidates class 1) are compact blobs; negatives (class 0) are vessels running
through all slices that narrow to a waist at the candidate, with radii chosen so that the 8 slices of a
negative's cube show the SAME set of cross-sections as a benign nodule's, in a different order (small at
the cube's ends and large in its middle for a benign nodule, the reverse for a vessel). Every second nodule
of a scan is malignant: a teardrop whose cross-section shrinks steadily from a flat base at one end of the
cube to a tip at the other (tip towards +z), with nearly the benign nodule's set of
cross-sections. The malignancy file lists every nodule with reader ratings that follow the rule above. For
both tasks a classifier of single slices, or of the unordered set of slices, is near chance; the order of
the slices (the depth axis) tells the classes apart.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from bidl.data.cache import DenseSplit
from bidl.data.preprocessing import BadSamples, staged_cache
from bidl.data.staging import staged_replacement
from bidl.errors import ConfigError, DataFormatError
from bidl.io import atomic_savez, atomic_write_text, default_file_mode

log = logging.getLogger(__name__)

HU_WINDOW: tuple[float, float] = (-1200.0, 600.0)
"""HU range mapped linearly to 0..255."""
PAD_VALUE = 170
"""Grey value (0..255) of everything outside the dilated lung hull (grt123's pad_value)."""
BONE_THRESHOLD = 210
"""Grey values above this in the dilation ring (hull minus lungs) are set to PAD_VALUE (grt123)."""
LUNG_MASK_VALUES: tuple[int, ...] = (3, 4)
"""Values of seg-lungs-LUNA16 masks that are lung (as BIDL's prepare_Luna16.py)."""
DILATION_ITERATIONS = 10
CUBE_SHAPE: tuple[int, int, int] = (8, 32, 32)
"""(z, y, x) voxels of one sample at ``voxel_mm`` = 1 mm."""
N_CLASSES = 2
SPLITS = ("train", "test")
LABEL_SOURCES = ("candidates", "malignancy")
CLASS_NAMES = {"candidates": ["non-nodule", "nodule"], "malignancy": ["benign", "malignant"]}

CANDIDATES_HEADER = ("seriesuid", "coordX", "coordY", "coordZ", "class")
ANNOTATIONS_HEADER = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
MALIGNANCY_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "mal_bool")
"""Leading columns of a malignancy label file (more may follow; ``mal_details`` is checked when present)."""
MALIGNANCY_HEADER = (
    *MALIGNANCY_COLUMNS,
    "mal_details",
    "bboxLowX",
    "bboxLowY",
    "bboxLowZ",
    "bboxHighX",
    "bboxHighY",
    "bboxHighZ",
    "len_mal_details",
)
"""Header of ``annotations_with_malignancy.csv`` (deep-learning-with-pytorch/dlwpt-code), which the stand-in
writes too."""
MALIGNANCY_CSV = "annotations_with_malignancy.csv"
MALIGNANT_RATING = 4
"""A LIDC-IDRI reader's malignancy rating (1-5) that counts as "malignant" ..."""
MALIGNANT_READERS = 2
"""... and how many readers must give it for the nodule to be labelled malignant (``mal_bool`` True)."""


# ---------------------------------------------------------------------------------------------------------
# MetaImage (.mhd + .raw)
# ---------------------------------------------------------------------------------------------------------
ELEMENT_TYPES: dict[str, str] = {
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_UCHAR": "u1",
    "MET_CHAR": "i1",
    "MET_FLOAT": "f4",
}
"""MetaImage element types this reader accepts (LUNA16 CT: MET_SHORT; masks: MET_UCHAR or others)."""
CT_ELEMENT_TYPES: tuple[str, ...] = ("MET_SHORT",)
"""ElementType of a LUNA16 CT volume (int16 HU); :func:`preprocess` refuses others."""
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


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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
    _atomic_write_bytes(raw, np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
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
    _atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("ascii"))
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


# ---------------------------------------------------------------------------------------------------------
# Preprocessing of one scan
# ---------------------------------------------------------------------------------------------------------
def window_hu(hu: np.ndarray, window: tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """HU -> uint8: ``floor((clip(hu, lo, hi) - lo) / (hi - lo) * 255 + 0.5)``; e.g. -300 -> 128."""
    lo, hi = window
    scaled = (np.clip(np.asarray(hu, dtype=np.float32), lo, hi) - lo) * np.float32(255.0 / (hi - lo))
    return np.floor(scaled + 0.5).astype(np.uint8)


def convex_hull_slices(mask: np.ndarray, max_growth: float = 1.5) -> np.ndarray:
    """Per z slice of a boolean ``[z, y, x]`` mask, the filled convex hull of its pixels.

    A pixel is in the hull when its centre satisfies every facet inequality of the hull of the mask's pixel
    centres. A slice whose hull has more than ``max_growth`` times the mask's pixels, or whose pixels are
    collinear (no 2-D hull), keeps its mask (grt123's rule).
    """
    out = mask.copy()
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        ys, xs = np.nonzero(mask[z])
        if ys.size < 3:
            continue
        try:
            hull = ConvexHull(np.column_stack([ys, xs]).astype(np.float64))
        except QhullError:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        # facets a*y + b*x + c <= 0; per row y they bound x from below (b < 0) or above (b > 0)
        a, b, c = hull.equations.T[:, :, None]  # each [F, 1]
        gy = np.arange(y0, y1, dtype=np.float64)[None, :]
        rhs = -(a * gy + c)  # [F, rows]: b * x <= rhs
        eps = 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = rhs / b
        lower = np.where(b < -eps, bound, -np.inf).max(axis=0)
        upper = np.where(b > eps, bound, np.inf).min(axis=0)
        rows_ok = np.where(np.abs(b) <= eps, rhs >= -eps, True).all(axis=0)
        gx = np.arange(x0, x1, dtype=np.float64)[None, :]
        inside = rows_ok[:, None] & (gx >= lower[:, None] - eps) & (gx <= upper[:, None] + eps)
        if inside.sum() <= max_growth * ys.size:
            out[z, y0:y1, x0:x1] |= inside
    return out


def lung_hull_mask(mask_labels: np.ndarray, iterations: int = DILATION_ITERATIONS) -> np.ndarray:
    """Dilated per-slice convex hull of each lung (mask values 3 and 4 separately), OR-ed; bool [z, y, x]."""
    structure = ndimage.generate_binary_structure(3, 1)
    out = np.zeros(mask_labels.shape, dtype=bool)
    for value in LUNG_MASK_VALUES:
        lung = mask_labels == value
        if lung.any():
            out |= ndimage.binary_dilation(
                convex_hull_slices(lung), structure=structure, iterations=iterations
            )
    return out


def preprocess_volume(image: MetaImage, mask: MetaImage) -> np.ndarray:
    """Steps 1-4 of the module docstring: HU image + lung labels -> uint8 ``[z, y, x]`` in the scan's grid.

    Raises:
        DataFormatError: naming the mask when its shape or geometry differs from the image's.
    """
    if mask.array.shape != image.array.shape:
        raise DataFormatError(
            mask.path, f"shape {mask.array.shape} differs from the CT's {image.array.shape}"
        )
    if not (
        np.allclose(mask.spacing, image.spacing, atol=1e-3)
        and np.allclose(mask.origin, image.origin, atol=1e-2)
    ):
        raise DataFormatError(mask.path, "ElementSpacing/Offset differ from the CT's")
    labels = mask.array
    lungs = np.isin(labels, LUNG_MASK_VALUES)
    if not lungs.any():
        raise DataFormatError(mask.path, f"no lung voxels (values {LUNG_MASK_VALUES})")
    hull = lung_hull_mask(labels)
    grey = window_hu(image.array)
    out = np.where(hull, grey, np.uint8(PAD_VALUE))
    out[hull & ~lungs & (out > BONE_THRESHOLD)] = PAD_VALUE
    return out


def extract_cubes(
    volume: np.ndarray,
    spacing: np.ndarray,
    centres_zyx: np.ndarray,
    *,
    shape: tuple[int, int, int] = CUBE_SHAPE,
    voxel_mm: float = 1.0,
) -> np.ndarray:
    """Resample cubes of ``shape`` voxels of ``voxel_mm`` mm (trilinear) centred on fractional voxel indices.

    Args:
        volume: uint8 ``[z, y, x]`` (from :func:`preprocess_volume`).
        spacing: (x, y, z) mm of ``volume``'s voxels.
        centres_zyx: ``[N, 3]`` fractional (z, y, x) indices of the cube centres.
        shape: (depth, height, width) of a cube.
        voxel_mm: edge of a resampled voxel in mm (1 mm: the paper's isotropic resampling).

    Returns:
        uint8 ``[N, *shape]``; cube voxel ``(a, b, c)`` lies at centre + ((a, b, c) - (shape - 1) / 2) *
        voxel_mm mm; points outside the volume read :data:`PAD_VALUE`.
    """
    centres = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    n = centres.shape[0]
    if n == 0:
        return np.zeros((0, *shape), dtype=np.uint8)
    spacing_zyx = np.asarray(spacing, dtype=np.float64)[::-1]
    axes = [(np.arange(s) - (s - 1) / 2.0) * voxel_mm / spacing_zyx[a] for a, s in enumerate(shape)]
    grid = np.empty((3, n, *shape), dtype=np.float64)
    grid[0] = centres[:, 0, None, None, None] + axes[0][None, :, None, None]
    grid[1] = centres[:, 1, None, None, None] + axes[1][None, None, :, None]
    grid[2] = centres[:, 2, None, None, None] + axes[2][None, None, None, :]
    values = ndimage.map_coordinates(
        volume, grid.reshape(3, -1), order=1, mode="constant", cval=float(PAD_VALUE), output=np.float32
    )
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8).reshape(n, *shape)


# ---------------------------------------------------------------------------------------------------------
# csv files and scan discovery
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointTable:
    """Rows of a LUNA16-style csv: ``uids`` str [N], ``world`` float64 [N, 3] (x, y, z mm), ``values`` [N]
    (the fifth column: class, diameter_mm or malignant) and ``rows`` int64 [N] (0-based data row)."""

    uids: np.ndarray
    world: np.ndarray
    values: np.ndarray
    rows: np.ndarray


def _csv_rows(path: Path, missing: str) -> list[list[str]]:
    """The non-blank rows of a UTF-8 csv file; DataFormatError naming it where it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataFormatError(path, missing) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read csv: {exc}") from exc
    return [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]


def _point_columns_pandas(path: Path, header: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(uids <U [N], numbers float64 [N, 4])`` of a point csv read by ``pandas.read_csv`` (the series uid
    as a categorical column, the four numbers parsed by pandas' C reader), or None where pandas cannot
    read the file as exactly the header's five columns of plain numbers: then :func:`_point_columns_rows`
    reads it row by row and names the first bad line.

    Raises:
        DataFormatError: missing or unreadable file, a header other than ``header``.
    """
    try:
        columns = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    except FileNotFoundError as exc:
        raise DataFormatError(path, "csv file is missing") from exc
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, f"expected header {','.join(header)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read csv: {exc}") from exc
    except (pd.errors.ParserError, ValueError):
        return None
    if tuple(str(c).strip() for c in columns) != tuple(header):
        raise DataFormatError(path, f"expected header {','.join(header)!r}")
    dtypes = {columns[0]: "category", **{name: np.float64 for name in columns[1:]}}
    try:
        frame = pd.read_csv(path, dtype=dtypes, na_filter=False, encoding="utf-8", engine="c")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read csv: {exc}") from exc
    except (pd.errors.ParserError, ValueError, TypeError):
        return None  # a row of another length, a field that is not a plain number: the row reader names it
    codes = frame.iloc[:, 0]
    names = np.char.strip(np.asarray(codes.cat.categories, dtype=str))
    uids = names[codes.cat.codes.to_numpy()] if len(frame) else np.empty(0, dtype=str)
    return uids, frame.iloc[:, 1:].to_numpy(dtype=np.float64)


def _point_columns_rows(path: Path, header: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(uids, numbers)`` of a point csv read row by row with the csv module: what Python's ``float``
    accepts is a number (also ``" 1.5 "``, ``"nan"``, ``"1_000"``), whitespace-only rows are skipped.

    Raises:
        DataFormatError: missing file, wrong header, a row without 5 fields, a non-number; naming the line.
    """
    rows = _csv_rows(path, "csv file is missing")
    if not rows or tuple(c.strip() for c in rows[0]) != tuple(header):
        raise DataFormatError(path, f"expected header {','.join(header)!r}")
    n = len(rows) - 1
    uids = np.empty(n, dtype=object)
    numbers = np.empty((n, 4), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) != 5:
            raise DataFormatError(path, f"line {i + 2}: expected 5 fields, got {len(row)}")
        uids[i] = row[0].strip()
        try:
            numbers[i] = [float(c) for c in row[1:]]
        except ValueError as exc:
            raise DataFormatError(path, f"line {i + 2}: non-numeric field in {row}") from exc
    return uids.astype(str), numbers


def read_point_csv(path: str | Path, header: Sequence[str], *, binary: bool) -> PointTable:
    """Read a csv with columns ``seriesuid,coordX,coordY,coordZ,<value>`` and exactly ``header``.

    ``binary``: the value column must be 0 or 1 (class, malignant); else any finite number (diameter_mm).
    A well-formed file is read with ``pandas.read_csv`` (LUNA16's candidates.csv, 551,065 rows, in about
    0.1 s); one that pandas cannot read as five columns of plain numbers is read row by row with the csv
    module, which accepts what Python's ``float`` accepts and names the first bad line. Line numbers count
    the non-blank lines (the header is line 1).

    Raises:
        DataFormatError: missing file, wrong header, a row without 5 fields, a non-number, a non-finite
            number, a non-binary value.
    """
    path = Path(path)
    columns = _point_columns_pandas(path, header)
    uids, numbers = columns if columns is not None else _point_columns_rows(path, header)
    n = len(uids)
    if not np.isfinite(numbers).all():
        bad = int(np.flatnonzero(~np.isfinite(numbers).all(axis=1))[0])
        raise DataFormatError(path, f"line {bad + 2}: non-finite number")
    if binary and n and not np.isin(numbers[:, 3], (0.0, 1.0)).all():
        bad = int(np.flatnonzero(~np.isin(numbers[:, 3], (0.0, 1.0)))[0])
        raise DataFormatError(path, f"line {bad + 2}: {header[4]} must be 0 or 1, got {numbers[bad, 3]}")
    return PointTable(uids, numbers[:, :3].copy(), numbers[:, 3].copy(), np.arange(n, dtype=np.int64))


def _ratings(path: Path, line: int, text: str) -> list[int]:
    """``mal_details`` such as ``"[4, 2, 4, 2]"``: the readers' malignancy ratings, integers 1-5."""
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise DataFormatError(path, f"line {line}: mal_details {text!r} is not a list such as [4, 2, 3]")
    try:
        ratings = [int(v) for v in inner[1:-1].split(",") if v.strip()]
    except ValueError:
        raise DataFormatError(path, f"line {line}: mal_details {text!r} holds a non-integer rating") from None
    if not ratings or not all(1 <= r <= 5 for r in ratings):
        raise DataFormatError(path, f"line {line}: mal_details {text!r}: expected ratings 1-5")
    return ratings


def read_malignancy_csv(path: str | Path) -> PointTable:
    """Read a malignancy label file: ``annotations_with_malignancy.csv`` of
    deep-learning-with-pytorch/dlwpt-code (LUNA16's annotations matched to the LIDC-IDRI readers' ratings
    with pylidc), or the stand-in's.

    Columns: :data:`MALIGNANCY_COLUMNS` first (``seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool``), any
    others after them. ``mal_bool`` is ``True``/``False`` (or 1/0); when a ``mal_details`` column (the
    readers' ratings, e.g. ``"[4, 2, 4, 2]"``) is present, ``mal_bool`` must follow the published rule:
    malignant iff at least :data:`MALIGNANT_READERS` readers rated >= :data:`MALIGNANT_RATING`; a
    ``len_mal_details`` column must equal the number of ratings.

    Returns:
        :class:`PointTable` with ``values`` = 1.0 (malignant) / 0.0 (benign).

    Raises:
        DataFormatError: naming the file (and line): missing or unreadable file, a header that does not
            start with the columns above, a row of another length than the header, a non-finite
            coordinate, a diameter that is not positive, an unknown mal_bool, ratings that contradict it.
    """
    path = Path(path)
    rows = _csv_rows(path, "malignancy label file is missing")
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header[: len(MALIGNANCY_COLUMNS)] != MALIGNANCY_COLUMNS:
        raise DataFormatError(path, f"expected a header starting with {','.join(MALIGNANCY_COLUMNS)!r}")
    details = header.index("mal_details") if "mal_details" in header else None
    counted = header.index("len_mal_details") if "len_mal_details" in header else None
    n = len(rows) - 1
    uids = np.empty(n, dtype=object)
    world = np.empty((n, 3), dtype=np.float64)
    values = np.empty(n, dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise DataFormatError(path, f"line {line}: expected {len(header)} fields, got {len(row)}")
        uids[i] = row[0].strip()
        try:
            numbers = [float(c) for c in row[1:5]]
        except ValueError:
            raise DataFormatError(
                path, f"line {line}: non-numeric coordinate or diameter in {row[:5]}"
            ) from None
        if not np.isfinite(numbers).all() or numbers[3] <= 0:
            raise DataFormatError(
                path, f"line {line}: coordinates must be finite and diameter_mm > 0: {row[:5]}"
            )
        world[i] = numbers[:3]
        flag = row[5].strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise DataFormatError(path, f"line {line}: mal_bool must be True or False, got {row[5]!r}")
        values[i] = 1.0 if flag in ("true", "1") else 0.0
        if details is not None:
            ratings = _ratings(path, line, row[details])
            votes = sum(r >= MALIGNANT_RATING for r in ratings)
            if (votes >= MALIGNANT_READERS) != bool(values[i]):
                raise DataFormatError(
                    path,
                    f"line {line}: mal_bool = {row[5].strip()}, but mal_details {ratings} has {votes} "
                    f"rating(s) >= {MALIGNANT_RATING} (malignant: at least {MALIGNANT_READERS})",
                )
            if counted is not None and row[counted].strip() != str(len(ratings)):
                raise DataFormatError(
                    path,
                    f"line {line}: len_mal_details = {row[counted]!r}, but mal_details has {len(ratings)}",
                )
    return PointTable(uids.astype(str), world, values, np.arange(n, dtype=np.int64))


def find_scans(raw_root: str | Path) -> dict[str, Path]:
    """``seriesuid -> .mhd path`` of every CT under ``raw_root/subset*/`` (sorted by uid).

    Raises:
        DataFormatError: no scan found, or one uid in two subsets.
    """
    raw_root = Path(raw_root)
    scans: dict[str, Path] = {}
    for mhd in sorted(raw_root.glob("subset*/*.mhd")):
        if mhd.stem in scans:
            raise DataFormatError(mhd, f"seriesuid also in {scans[mhd.stem]}")
        scans[mhd.stem] = mhd
    if not scans:
        raise DataFormatError(raw_root, "no CT scans found (expected subset*/<seriesuid>.mhd)")
    return dict(sorted(scans.items()))


def _scan_rng(seed: int, uid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(uid.encode())])


def select_samples(
    table: PointTable, scans: Sequence[str], *, max_negatives_per_scan: int | None, seed: int
) -> dict[str, np.ndarray]:
    """Per scan uid (those in ``scans`` only), the row indices of ``table`` that become samples.

    Every row whose value is 1 is kept; rows with value 0 are capped at ``max_negatives_per_scan`` per scan
    (``None``: all), chosen with a generator seeded by ``(seed, crc32(uid))``. Indices are sorted.
    """
    wanted = set(scans)
    order = np.argsort(table.uids, kind="stable")
    uids_sorted = table.uids[order]
    bounds = np.flatnonzero(np.r_[True, uids_sorted[1:] != uids_sorted[:-1], True])
    out: dict[str, np.ndarray] = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        uid = str(uids_sorted[lo])
        if uid not in wanted:
            continue
        idx = order[lo:hi]
        pos, neg = idx[table.values[idx] == 1], idx[table.values[idx] != 1]
        if max_negatives_per_scan is not None and neg.size > max_negatives_per_scan:
            neg = _scan_rng(seed, uid).choice(neg, size=max_negatives_per_scan, replace=False)
        out[uid] = np.sort(np.concatenate([pos, neg]))
    return dict(sorted(out.items()))


def split_scans(uids: Sequence[str], *, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Seeded split of scan uids: ``round(test_fraction * n)`` (>= 1 when n >= 2) shuffled uids to test."""
    uids = sorted(uids)
    n = len(uids)
    n_test = 0 if n < 2 else min(n - 1, max(1, round(test_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    test = {uids[i] for i in perm[:n_test]}
    return {"train": [u for u in uids if u not in test], "test": [u for u in uids if u in test]}


# ---------------------------------------------------------------------------------------------------------
# preprocessing of a raw copy
# ---------------------------------------------------------------------------------------------------------
def _label_file(raw_root: Path, name: str | Path) -> Path:
    """``raw_root/name``, or ``raw_root/downloads/name`` (where scripts/fetch_data.py keeps plain files) when
    only that exists; an absolute ``name`` as it is."""
    path = raw_root / name
    fetched = raw_root / "downloads" / name
    if not path.is_file() and fetched.is_file():
        return fetched
    return path


def _read_labels(
    raw_root: Path, label_source: str, candidates_csv: str, malignancy_csv: str | Path
) -> tuple[PointTable, Path]:
    if label_source == "candidates":
        path = _label_file(raw_root, candidates_csv)
        return read_point_csv(path, CANDIDATES_HEADER, binary=True), path
    path = _label_file(raw_root, malignancy_csv)
    return read_malignancy_csv(path), path


def _check_centres(
    label_path: Path, rows: np.ndarray, centres_zyx: np.ndarray, image: MetaImage, voxel_mm: float
) -> None:
    """Raise naming the label csv when a sample's centre lies so far outside its scan's volume that its
    cube (:data:`CUBE_SHAPE` voxels of ``voxel_mm``) would hold no voxel of it."""
    shape = np.array(image.array.shape, dtype=np.float64)
    spacing_zyx = image.spacing[::-1]
    below = np.clip(-0.5 - centres_zyx, 0.0, None)
    above = np.clip(centres_zyx - (shape - 0.5), 0.0, None)
    outside_mm = (below + above) * spacing_zyx
    half_cube_mm = np.array(CUBE_SHAPE, dtype=np.float64) / 2.0 * voxel_mm
    far = np.flatnonzero((outside_mm > half_cube_mm).any(axis=1))
    if far.size:
        k = int(far[0])
        raise DataFormatError(
            label_path,
            f"line {int(rows[k]) + 2}: the point lies {outside_mm[k].max():.1f} mm outside the volume of "
            f"{image.path} (its cube would hold no voxel of the scan; {far.size} such rows)",
        )


def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    label_source: str = "candidates",
    candidates_csv: str = "candidates.csv",
    malignancy_csv: str | Path = MALIGNANCY_CSV,
    max_negatives_per_scan: int | None = 3,
    test_fraction: float = 0.1,
    voxel_mm: float = 1.0,
    seed: int = 0,
    on_bad_sample: str = "error",
) -> dict:
    """Cut nodule-centred cubes from every scan of a raw LUNA16 copy (real or stand-in) and cache them.

    Steps, label source and split: the module docstring. Scans without samples are skipped; sample rows
    whose scan is not present (e.g. only some subsets extracted) are ignored and counted in split.json.
    A CT must be ``MET_SHORT`` (int16 HU, as every LUNA16 scan); its lung mask may be any
    :data:`ELEMENT_TYPES` type.

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad scan (its CT or
    lung mask ``.mhd`` / ``.raw``: missing, empty, truncated, binary, another element type, a spacing that
    is not positive, a DimSize that does not match the ``.raw``, a mask of another geometry or without lung
    voxels); ``"skip"`` leaves the scan (all its cubes) out, keeps the split of the other scans, and lists
    it in split.json's ``skipped``. The label csv is fatal under both policies, also when a row's
    coordinates lie so far outside its scan that its cube would hold no voxel of the volume.

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure): ``out_dir/train.npz`` and
    ``out_dir/test.npz`` (``cubes`` uint8 ``[N, 8, 32, 32]`` (z, y, x), ``labels`` int64 ``[N]``, ``names``
    str ``[N]`` = ``<uid>/<csv data row>``, ``world`` float64 ``[N, 3]`` (x, y, z mm)) and
    ``out_dir/split.json`` (parameters, label source, class names, scans and per-class counts per split,
    the skipped scans under ``skipped``).

    Args:
        raw_root: folder with ``subset*/``, ``seg-lungs-LUNA16/`` and the csv files.
        out_dir: cache folder.
        label_source: ``"candidates"`` or ``"malignancy"``.
        candidates_csv: candidates file relative to ``raw_root`` (``candidates.csv`` or
            ``candidates_V2/candidates_V2.csv``); if absent there, ``raw_root/downloads/<candidates_csv>``
            (where the fetch step leaves plain files) is used.
        malignancy_csv: the malignancy label file (:func:`read_malignancy_csv`), relative to ``raw_root``
            (or ``raw_root/downloads/``, as ``candidates_csv``) or absolute.
        max_negatives_per_scan: cap on label-0 rows per scan (``None``: no cap); applies to both sources
            (for ``malignancy`` label 0 is benign: use ``None`` to keep every nodule).
        test_fraction: fraction of scans in the test split.
        voxel_mm: resampled voxel edge (mm).
        seed: seed of the negative choice and of the split.
        on_bad_sample: ``"error"`` or ``"skip"`` (above).

    Returns:
        The content of split.json.

    Raises:
        ConfigError: bad label_source / fractions / on_bad_sample. DataFormatError: malformed raw files,
            naming them, or a split whose every scan was skipped (naming the raw root).
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if label_source not in LABEL_SOURCES:
        raise ConfigError(f"label_source: {label_source!r} is not one of {LABEL_SOURCES}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction: must be in (0, 1), got {test_fraction}")
    if max_negatives_per_scan is not None and max_negatives_per_scan < 0:
        raise ConfigError(f"max_negatives_per_scan: must be >= 0 or None, got {max_negatives_per_scan}")
    if voxel_mm <= 0:
        raise ConfigError(f"voxel_mm: must be > 0, got {voxel_mm}")
    bad = BadSamples(on_bad_sample, unit="scans")
    scans = find_scans(raw_root)
    table, label_path = _read_labels(raw_root, label_source, candidates_csv, malignancy_csv)
    chosen = select_samples(table, list(scans), max_negatives_per_scan=max_negatives_per_scan, seed=seed)
    if not chosen:
        raise DataFormatError(label_path, f"no row refers to one of the {len(scans)} scans under {raw_root}")
    split = split_scans(list(chosen), test_fraction=test_fraction, seed=seed)
    summary: dict = {
        "dataset": "LUNA16",
        "raw_root": str(raw_root),
        "label_source": label_source,
        "label_file": str(label_path),
        "label_rule": (
            "candidates: label = class column (1 nodule, 0 non-nodule); all positives, negatives capped "
            "per scan"
            if label_source == "candidates"
            else f"malignancy: label = mal_bool (1 malignant: at least {MALIGNANT_READERS} LIDC-IDRI readers "
            f"rated >= {MALIGNANT_RATING} of 5; 0 benign); benign rows capped per scan"
        ),
        "split_source": f"seeded by scan: {test_fraction} of the scans with samples to test",
        "params": {
            "max_negatives_per_scan": max_negatives_per_scan,
            "test_fraction": test_fraction,
            "voxel_mm": voxel_mm,
            "seed": seed,
            "on_bad_sample": on_bad_sample,
            "hu_window": list(HU_WINDOW),
            "pad_value": PAD_VALUE,
            "bone_threshold": BONE_THRESHOLD,
            "dilation_iterations": DILATION_ITERATIONS,
            "lung_mask_values": list(LUNG_MASK_VALUES),
        },
        "cubes": {"dtype": "uint8", "shape": ["N", *CUBE_SHAPE], "axes": ["z", "y", "x"]},
        "class_names": CLASS_NAMES[label_source],
        "rows_without_scan": int(np.sum(~np.isin(table.uids, list(scans)))),
        "n_scans_found": len(scans),
        "splits": {},
    }
    mask_dir = raw_root / "seg-lungs-LUNA16"
    with staged_cache(out_dir) as stage:
        for name in SPLITS:
            cubes, labels, names, world, kept = [], [], [], [], []
            for uid in split[name]:
                idx = chosen[uid]
                try:
                    image = read_metaimage(scans[uid], element_types=CT_ELEMENT_TYPES)
                    volume = preprocess_volume(image, read_metaimage(mask_dir / f"{uid}.mhd"))
                except DataFormatError as exc:
                    bad.reject(exc, split=name, lost=len(idx))
                    continue
                centres = world_to_voxel(table.world[idx], image.origin, image.spacing)
                _check_centres(label_path, table.rows[idx], centres, image, voxel_mm)
                cubes.append(extract_cubes(volume, image.spacing, centres, voxel_mm=voxel_mm))
                labels.append(table.values[idx].astype(np.int64))
                names.extend(f"{uid}/{table.rows[i]}" for i in idx)
                world.append(table.world[idx])
                kept.append(uid)
            bad.check_split(raw_root, name, len(kept))
            cube_arr = np.concatenate(cubes) if cubes else np.zeros((0, *CUBE_SHAPE), np.uint8)
            label_arr = np.concatenate(labels) if labels else np.zeros(0, np.int64)
            world_arr = np.concatenate(world) if world else np.zeros((0, 3))
            atomic_savez(
                stage / f"{name}.npz",
                cubes=cube_arr,
                labels=label_arr,
                names=np.array(names, dtype=str),
                world=world_arr,
            )
            summary["splits"][name] = {
                "n": int(label_arr.size),
                "class_counts": np.bincount(label_arr, minlength=N_CLASSES).tolist(),
                "scans": kept,
            }
            log.info("%s: %d cubes from %d scans", name, label_arr.size, len(kept))
        summary["skipped"] = bad.summary()
        atomic_write_text(stage / "split.json", json.dumps(summary, indent=1) + "\n")
    return summary


class Luna16Cubes(DenseSplit):
    """One cached split (``train.npz`` / ``test.npz`` from :func:`preprocess`), held in memory.

    ``dataset[i]`` is ``(cube, label)``: float32 ``[8, 1, 32, 32]`` = (T = depth slices, C = 1, H, W),
    grey values / 255 in [0, 1], and an int label (0/1). The exposed rows are kept as one uint8 tensor
    :attr:`cubes` ``[N, 8, 32, 32]``. Arguments, :attr:`labels`, :attr:`names` and errors: see
    :class:`bidl.data.cache.CachedSplit`.
    """

    KEYS = ("cubes",)
    KIND = "cube"
    N_CLASSES = N_CLASSES
    DTYPE = np.uint8
    LAYOUT = "[N, D, H, W]"
    SCALE = 255.0

    def _sample(self, i: int) -> torch.Tensor:
        return super()._sample(i).unsqueeze(1)


# ---------------------------------------------------------------------------------------------------------
# Zenodo checksums
# ---------------------------------------------------------------------------------------------------------
def zenodo_api_url(record: int) -> str:
    """``https://zenodo.org/api/records/<record>``: the record's JSON, with an MD5 per file."""
    return f"https://zenodo.org/api/records/{int(record)}"


def zenodo_file_url(record: int, name: str) -> str:
    """Download URL of one file of a Zenodo record (the form many LUNA16 scripts use)."""
    return f"https://zenodo.org/record/{int(record)}/files/{name}?download=1"


def parse_zenodo_checksums(record_json: Mapping) -> dict[str, dict]:
    """``{file name: {"md5": ..., "size": ...}}`` from a Zenodo record's API JSON.

    Reads ``files[]`` entries with ``key`` (or ``filename``) and ``checksum`` = ``"md5:<32 hex>"`` (size
    from ``size`` / ``filesize`` when present). Entries with another checksum algorithm are left out.

    Raises:
        ValueError: the JSON has no ``files`` list.
    """
    files = record_json.get("files")
    if isinstance(files, Mapping) and isinstance(files.get("entries"), (list, dict)):
        entries = files["entries"]
        files = list(entries.values()) if isinstance(entries, dict) else entries
    if not isinstance(files, list):
        raise ValueError("Zenodo record JSON has no 'files' list")
    out: dict[str, dict] = {}
    for entry in files:
        name = entry.get("key") or entry.get("filename")
        checksum = str(entry.get("checksum", ""))
        match = re.fullmatch(r"md5:([0-9a-fA-F]{32})", checksum)
        if not name or not match:
            continue
        size = entry.get("size", entry.get("filesize"))
        out[str(name)] = {"md5": match.group(1).lower(), "size": int(size) if size is not None else None}
    return out


def fetch_zenodo_checksums(record: int, *, timeout: float = 30.0) -> dict[str, dict]:
    """Ask the Zenodo API for the MD5 and size of every file of ``record`` (network access).

    Returns :func:`parse_zenodo_checksums` of ``GET https://zenodo.org/api/records/<record>``.
    """
    request = urllib.request.Request(zenodo_api_url(record), headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
        return parse_zenodo_checksums(json.loads(resp.read().decode("utf-8")))


# ---------------------------------------------------------------------------------------------------------
# The stand-in generator
# ---------------------------------------------------------------------------------------------------------
_SHAPE_ZYX = (48, 96, 96)
_SPACING_XY = (0.8, 1.0)  # mm
_SPACING_Z = (0.7, 1.5)  # mm
_HU_AIR, _HU_LUNG, _HU_BODY, _HU_BONE = -1000.0, -850.0, 40.0, 700.0
_NOISE_HU = {"air": 15.0, "lung": 35.0, "body": 20.0}
_OBJECT_HU = (-20.0, 80.0)
_RADIUS_MM = (3.0, 4.0)  # in-plane radius of a nodule's widest slice / a vessel away from its waist
# Nodule half-height; sets the waist of a vessel. Below 4 mm (the fold) the waist pinches off within
# 4 - H <= 0.3 mm of the candidate, between the cube's slices at +-0.5 mm. Measured on the default preset's
# stand-in (40 scans, 508 training cubes, luna16_cls): half-heights 3.7-4.3 mm -> 96 % top-1; 4.0-4.5 mm (end
# slices at 48-63 % of the radius instead of 32-57 %) -> 82 %.
_HALF_HEIGHT_MM = (3.7, 4.3)
_FOLD_MM = CUBE_SHAPE[0] / 2.0  # half the depth of a cube at 1 mm: the vessel profile folds here
_MIN_SEPARATION_MM = 12.0  # between nodule centres (3-D)
_MIN_VESSEL_GAP_MM = 8.0  # in-plane, between a vessel (all slices) and any other object
_N_CLUTTER_VESSELS = 5  # thin vessels per lung, both classes alike
_FLIP_EVERY = 6  # scans 5, 11, 17, ... get TransformMatrix -1 0 0 0 -1 0 0 0 1, as some real ones
# A malignant nodule's tip points to +z (its base on the cube's first slices). Measured on the default
# preset's stand-in (64 scans, 12 nodules + 6 vessels, 561 training cubes, malignancy labels, luna16_cls 20
# epochs, 1 CPU thread): tip always +z -> 97.9 % top-1; tip up or down at random -> 74.3 % (the order
# probe: 100 % and 99.3 %).
_MALIGNANT_TIP = 1


def _radius_profile(dz: np.ndarray, radius: float, half_height: float, kind: str, tip: int = 1) -> np.ndarray:
    """In-plane radius (mm) at z distance ``dz`` mm from an object's centre.

    ``kind`` ``"nodule"`` (benign, round): ``R sqrt(1 - (dz/H)^2)`` (0 beyond H). ``"vessel"``:
    ``R sqrt(1 - ((F - |dz|)/H)^2)`` for ``|dz| < F`` (F = 4 mm, half a cube's depth), ``R`` beyond: at the
    cube's slice offsets +-0.5 .. +-3.5 mm the vessel shows exactly the nodule's radii at +-3.5 .. +-0.5 mm.
    ``"malignant"`` (a teardrop with its tip towards ``tip`` = +1 or -1 along z): ``R sqrt(1 - (u/H)^2)``
    with ``u = (F + tip dz) / 2`` for ``|dz| <= F`` (0 beyond): the cross-section shrinks steadily from a
    flat base to the tip, so the cube's slices show nearly the nodule's radii (``u`` = 0.25, 0.75 .. 3.75
    mm against 0.5, 0.5, 1.5, 1.5 .. 3.5) ordered from widest to narrowest instead of growing then
    shrinking.
    """
    if kind == "nodule":
        return radius * np.sqrt(np.clip(1.0 - (dz / half_height) ** 2, 0.0, None))
    if kind == "vessel":
        folded = np.clip(_FOLD_MM - np.abs(dz), 0.0, None)
        return radius * np.sqrt(np.clip(1.0 - (folded / half_height) ** 2, 0.0, None))
    if kind == "malignant":
        u = (_FOLD_MM + tip * np.asarray(dz, dtype=np.float64)) / 2.0
        r = radius * np.sqrt(np.clip(1.0 - (u / half_height) ** 2, 0.0, None))
        return np.where(np.abs(dz) <= _FOLD_MM, r, 0.0)
    raise ValueError(f"_radius_profile: kind {kind!r} is not nodule, malignant or vessel")


def _reader_ratings(rng: np.random.Generator, malignant: bool) -> list[int]:
    """3 or 4 LIDC-style malignancy ratings (1-5) that follow the malignancy rule: at least
    :data:`MALIGNANT_READERS` ratings >= :data:`MALIGNANT_RATING` iff ``malignant``."""
    n = int(rng.integers(3, 5))
    high = (
        int(rng.integers(MALIGNANT_READERS, n + 1)) if malignant else int(rng.integers(0, MALIGNANT_READERS))
    )
    ratings = [
        *rng.integers(MALIGNANT_RATING, 6, size=high),
        *rng.integers(1, MALIGNANT_RATING, size=n - high),
    ]
    return [int(r) for r in rng.permutation(ratings)]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def standin_scan(seed: int, index: int, *, n_nodules: int = 9, n_vessels: int = 9) -> dict:
    """Generate one stand-in scan (deterministic in its arguments).

    Returns:
        dict with ``uid``, ``hu`` int16 ``[z, y, x]`` and ``mask`` uint8 ``[z, y, x]`` (0, 3, 4) in
        identity orientation, ``spacing`` / ``origin`` (x, y, z mm), ``flip`` (x/y flipped on disk) and
        ``objects``: list of dicts: ``world`` (xyz mm), ``label`` (1 nodule, 0 vessel), ``diameter`` (mm),
        ``radius`` (mm) and, for nodules, ``half_depth`` (z half-extent, mm), ``malignant`` (every second
        nodule; None for vessels) and ``ratings`` (3-4 reader ratings 1-5 that agree with ``malignant`` by
        the rule of :func:`read_malignancy_csv`).
    """
    rng = np.random.default_rng([seed, index, 16])
    nz, ny, nx = _SHAPE_ZYX
    sxy = float(np.round(rng.uniform(*_SPACING_XY), 6))
    sz = float(np.round(rng.uniform(*_SPACING_Z), 4))
    spacing = np.array([sxy, sxy, sz])
    origin = np.array(
        [-nx * sxy / 2 + rng.uniform(-5, 5), -ny * sxy / 2 + rng.uniform(-5, 5), -rng.uniform(150, 300)]
    ).round(4)
    z = (np.arange(nz) * sz)[:, None, None]  # mm from origin
    y = (np.arange(ny) * sxy)[None, :, None]
    x = (np.arange(nx) * sxy)[None, None, :]
    wx, wy, wz = nx * sxy, ny * sxy, nz * sz
    cx, cy = wx / 2, wy / 2

    body = ((x - cx) / (0.56 * wx)) ** 2 + ((y - cy) / (0.5 * wy)) ** 2 < 1.0  # cut by the FOV
    body = np.broadcast_to(body, (nz, ny, nx))
    hu = np.full((nz, ny, nx), _HU_AIR, dtype=np.float32)
    hu[body] = _HU_BODY
    # ribs: a broken shell just inside the body outline, its gaps moving with z
    shell = ((x - cx) / (0.5 * wx)) ** 2 + ((y - cy) / (0.45 * wy)) ** 2
    angle = np.arctan2(y - cy, x - cx)
    ribs = (np.abs(shell - 0.93) < 0.05) & (np.sin(7 * angle + z / 9.0 + rng.uniform(0, 6.3)) > 0.2)
    hu[ribs & body] = _HU_BONE
    spine = (x - cx) ** 2 + (y - (cy + 0.41 * wy)) ** 2 < (0.06 * wx) ** 2
    hu[np.broadcast_to(spine, hu.shape)] = _HU_BONE

    # lungs: two ellipses whose size changes slowly with z (never vanishing)
    z_scale = 0.75 + 0.25 * np.sqrt(np.clip(1 - ((z - wz / 2) / (0.7 * wz)) ** 2, 0, 1))
    mask = np.zeros((nz, ny, nx), dtype=np.uint8)
    lung_axes = (0.2 * wx, 0.36 * wy)
    lung_centres = [(cx - 0.24 * wx, cy - 0.02 * wy), (cx + 0.24 * wx, cy - 0.02 * wy)]
    lung_wobble = 1.0 + 0.06 * _smooth_noise(rng, (nz, ny, nx), 6.0)
    for value, (lx, ly) in zip(LUNG_MASK_VALUES, lung_centres):
        r2 = ((x - lx) / (lung_axes[0] * z_scale)) ** 2 + ((y - ly) / (lung_axes[1] * z_scale)) ** 2
        mask[r2 * lung_wobble < 1.0] = value
    lungs = mask > 0
    lung_texture = _HU_LUNG + 25.0 * _smooth_noise(rng, (nz, ny, nx), 2.0)
    hu[lungs] = lung_texture[lungs]

    def paint(profile: Callable[[np.ndarray], np.ndarray], px: float, py: float, level: float) -> None:
        """Add an object with in-plane radius profile(z) (mm) around (px, py), only inside the lungs."""
        radius = profile(z[:, 0, 0])  # [nz]
        rmax = float(radius.max(initial=0.0))
        if rmax <= 0:
            return
        x0, x1 = max(int((px - rmax) / sxy) - 2, 0), min(int((px + rmax) / sxy) + 3, nx)
        y0, y1 = max(int((py - rmax) / sxy) - 2, 0), min(int((py + rmax) / sxy) + 3, ny)
        dist = np.hypot(x[:, :, x0:x1] - px, y[:, y0:y1, :] - py)  # [1, h, w]
        cover = np.clip((radius[:, None, None] - dist) / (0.7 * sxy) + 0.5, 0.0, 1.0)  # partial volume
        region = hu[:, y0:y1, x0:x1]
        inside = lungs[:, y0:y1, x0:x1]
        region[inside] += (cover * (level - region))[inside]

    for lx, ly in lung_centres:  # thin clutter vessels, slightly oblique, both classes alike
        for _ in range(_N_CLUTTER_VESSELS):
            px, py = lx + rng.uniform(-0.8, 0.8) * lung_axes[0], ly + rng.uniform(-0.8, 0.8) * lung_axes[1]
            tx, ty = rng.uniform(-0.15, 0.15, size=2)
            r = rng.uniform(0.5, 1.1)
            level = rng.uniform(*_OBJECT_HU)
            zz = z[:, 0, 0] - wz / 2
            for k in range(nz):  # one slice at a time: the centre drifts with z
                cover = np.clip(r - np.hypot(x[0] - (px + tx * zz[k]), y[0] - (py + ty * zz[k])), 0, 1)
                sl = hu[k]
                sl[lungs[k]] += (cover * (level - sl))[lungs[k]]

    objects = []
    labels = np.r_[np.zeros(n_vessels, int), np.ones(n_nodules, int)]  # vessels need the most room: first
    placed: list[tuple[np.ndarray, bool]] = []  # (centre mm, is a vessel)
    ratings_rng = np.random.default_rng([seed, index, 17])
    n_placed_nodules = 0
    for label in labels:
        vessel = bool(label == 0)
        for _ in range(500):  # rejection sampling of a centre well inside a lung, apart from the others
            lx, ly = lung_centres[int(rng.integers(2))]
            rho, phi = np.sqrt(rng.uniform(0, 0.45)), rng.uniform(0, 2 * np.pi)
            px = lx + rho * np.cos(phi) * lung_axes[0] * 0.75
            py = ly + rho * np.sin(phi) * lung_axes[1] * 0.75
            pz = rng.uniform(0.2 * wz, 0.8 * wz)
            centre = np.array([px, py, pz])
            if all(
                np.linalg.norm((centre - c)[:2]) >= _MIN_VESSEL_GAP_MM
                if vessel or other_vessel
                else np.linalg.norm(centre - c) >= _MIN_SEPARATION_MM
                for c, other_vessel in placed
            ):
                break
        else:
            log.debug("stand-in scan %d: no room for another object", index)
            continue
        placed.append((centre, vessel))
        radius, half_height = rng.uniform(*_RADIUS_MM), rng.uniform(*_HALF_HEIGHT_MM)
        level = rng.uniform(*_OBJECT_HU)
        malignant = None if vessel else n_placed_nodules % 2 == 1  # every second nodule: balanced classes
        n_placed_nodules += not vessel
        kind = "vessel" if vessel else "malignant" if malignant else "nodule"
        paint(
            lambda zz, pz=pz, r=radius, h=half_height, k=kind: _radius_profile(
                zz - pz, r, h, k, _MALIGNANT_TIP
            ),
            px,
            py,
            level,
        )
        objects.append(
            {
                "world": origin + centre,
                "label": int(label),
                "diameter": round(2 * radius, 3),
                "radius": radius,
                "half_depth": None if vessel else _FOLD_MM if malignant else half_height,
                "malignant": malignant,
                "ratings": None if vessel else _reader_ratings(ratings_rng, bool(malignant)),
            }
        )

    noise = np.where(lungs, _NOISE_HU["lung"], np.where(body, _NOISE_HU["body"], _NOISE_HU["air"]))
    hu += noise * rng.standard_normal(hu.shape, dtype=np.float32)
    uid = (
        "2.25." + str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, size=29))
    )  # UUID-derived OID form
    return {
        "uid": uid,
        "hu": np.clip(np.rint(hu), -1024, 3071).astype(np.int16),
        "mask": mask,
        "spacing": spacing,
        "origin": origin,
        "flip": index % _FLIP_EVERY == _FLIP_EVERY - 1,
        "objects": objects,
    }


def _malignancy_row(uid: str, obj: Mapping) -> str:
    """One row of :data:`MALIGNANCY_HEADER` for a stand-in nodule (as pandas wrote the published file:
    ``True``/``False``, the ratings as a quoted list)."""
    world = np.asarray(obj["world"], dtype=np.float64)
    half = np.array([obj["radius"], obj["radius"], obj["half_depth"]])
    bbox = [*(world - half), *(world + half)]
    ratings = obj["ratings"]
    return ",".join(
        [
            uid,
            *(f"{v:.4f}" for v in world),
            str(obj["diameter"]),
            str(bool(obj["malignant"])),
            '"[' + ", ".join(str(r) for r in ratings) + ']"',
            *(f"{v:.4f}" for v in bbox),
            str(len(ratings)),
        ]
    )


def _standin_readme(seed: int, n_scans: int, n_nodules: int, n_vessels: int) -> str:
    nz, ny, nx = _SHAPE_ZYX
    return f"""GENERATED STAND-IN for LUNA16. NOT real CT scans.

Written by bidl.data.luna16.generate_standin(seed={seed}, n_scans={n_scans}, n_nodules={n_nodules},
n_vessels={n_vessels}) in LUNA16's layout and formats: subset0/<seriesuid>.mhd/.raw (MetaImage, int16 HU,
DimSize {nx} {ny} {nz}), seg-lungs-LUNA16/<seriesuid>.mhd/.zraw (zlib-compressed MetaImage, uint8; 3 and 4 =
the two lungs), annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm), candidates.csv
(seriesuid,coordX,coordY,coordZ,class) and {MALIGNANCY_CSV} (the columns of
deep-learning-with-pytorch/dlwpt-code's file: {",".join(MALIGNANCY_HEADER)}). Same arguments -> identical
bytes.

Volumes: in-plane spacing 0.8-1.0 mm, slices 0.7-1.5 mm; air -1000 HU, body 40, ribs and spine 700, lungs
-850 with smooth texture, thin oblique clutter vessels, Gaussian noise. Every {_FLIP_EVERY}th scan is stored
with TransformMatrix -1 0 0 0 -1 0 0 0 1 (x and y flipped), as a few real scans are.

Candidates (world mm at the object centres): class 1 = nodules of radius 3-4 mm; class 0 = vessels running
along z through the lung that narrow to a waist at the candidate, with the radius profile folded at +-4 mm so
that the 8 slices (1 mm) of a cube centred on a vessel show exactly the cross-sections of a benign nodule's 8
slices in another order. Benign nodules are compact blobs whose cross-section grows then shrinks along z
(half-height 3.7-4.3 mm); every second nodule of a scan is malignant: a teardrop 8 mm deep whose
cross-section shrinks steadily from a flat base to a tip (tip towards +z), with nearly the benign
set of cross-sections. Single slices, and the unordered set of slices, carry next to no class information;
the order along the depth axis does. annotations.csv lists the nodules (diameter = 2 x radius);
{MALIGNANCY_CSV} lists them with mal_bool and 3-4 made-up reader ratings 1-5 that follow the published rule
(malignant iff at least {MALIGNANT_READERS} readers rated >= {MALIGNANT_RATING}).
"""


def generate_standin(
    raw_root: str | Path,
    *,
    n_scans: int = 24,
    n_nodules: int = 9,
    n_vessels: int = 9,
    seed: int = 0,
) -> Path:
    """Write a generated LUNA16 stand-in (see the module docstring and :func:`standin_scan`).

    Everything goes to a temporary sibling folder that then replaces ``raw_root``. Default size: 24 scans of
    48 x 96 x 96 voxels (about 22 MB: 885 kB of CT and about 19 kB of compressed mask a scan), up to 9
    nodules + 9 vessels each (as many as fit apart from each other, about 16 per scan; with
    ``max_negatives_per_scan >= 9`` or ``None`` every one becomes a sample; every second nodule of a scan is
    malignant).

    Returns:
        ``raw_root``.
    """
    raw_root = Path(raw_root)
    if n_scans < 1 or n_nodules < 0 or n_vessels < 0 or n_nodules + n_vessels < 1:
        raise ValueError("n_scans must be >= 1 and n_nodules + n_vessels >= 1")
    with staged_replacement(raw_root) as tmp:
        candidates = [",".join(CANDIDATES_HEADER)]
        annotations = [",".join(ANNOTATIONS_HEADER)]
        malignancy = [",".join(MALIGNANCY_HEADER)]
        flip_matrix = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
        for index in range(n_scans):
            scan = standin_scan(seed, index, n_nodules=n_nodules, n_vessels=n_vessels)
            hu, mask, origin, spacing = scan["hu"], scan["mask"], scan["origin"], scan["spacing"]
            transform: tuple[int, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
            if scan["flip"]:  # store x/y reversed; the file's first voxel is the last one in world order
                hu, mask = hu[:, ::-1, ::-1], mask[:, ::-1, ::-1]
                origin = origin.copy()
                origin[:2] += (np.array(hu.shape[2:0:-1]) - 1) * spacing[:2]
                transform = flip_matrix
            # CT uncompressed (.raw), lung mask zlib-compressed (.zraw), as in the release
            for folder, array, compress in (("subset0", hu, False), ("seg-lungs-LUNA16", mask, True)):
                write_metaimage(
                    tmp / folder / f"{scan['uid']}.mhd",
                    array,
                    spacing=spacing,
                    origin=origin,
                    transform=transform,
                    compress=compress,
                )
            for obj in scan["objects"]:
                xyz = ",".join(f"{v:.4f}" for v in obj["world"])
                candidates.append(f"{scan['uid']},{xyz},{obj['label']}")
                if obj["label"] == 1:
                    annotations.append(f"{scan['uid']},{xyz},{obj['diameter']}")
                    malignancy.append(_malignancy_row(scan["uid"], obj))
        (tmp / "candidates.csv").write_text("\n".join(candidates) + "\n", encoding="ascii")
        (tmp / "annotations.csv").write_text("\n".join(annotations) + "\n", encoding="ascii")
        (tmp / MALIGNANCY_CSV).write_text("\n".join(malignancy) + "\n", encoding="ascii")
        (tmp / "README.txt").write_text(
            _standin_readme(seed, n_scans, n_nodules, n_vessels), encoding="utf-8"
        )
    return raw_root
