"""LUNA16: label files, lung masks, nodule-centred cube extraction and the cube cache.

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

Stand-in: :mod:`bidl.data.standins.luna16` (a generated copy in the real layout); its entry points
:func:`generate_standin`, :func:`standin_scan` are importable from here."""

from __future__ import annotations

import csv
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from bidl.data.cache import DenseSplit
from bidl.data.formats.metaimage import MetaImage, read_metaimage, world_to_voxel
from bidl.data.preprocessing import BadSamples, SplitCache, check_fraction, write_split_cache
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = ("generate_standin", "standin_scan")
"""Names of :mod:`bidl.data.standins.luna16` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "luna16", _STANDIN_EXPORTS)

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
CT_ELEMENT_TYPES: tuple[str, ...] = ("MET_SHORT",)
"""ElementType of a LUNA16 CT volume (int16 HU); :func:`preprocess` refuses others."""


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
    :data:`~bidl.data.formats.metaimage.ELEMENT_TYPES` type.

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
    check_fraction("test_fraction", test_fraction)
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
    }
    mask_dir = raw_root / "seg-lungs-LUNA16"

    def read(uid: str) -> tuple[MetaImage, np.ndarray]:
        image = read_metaimage(scans[uid], element_types=CT_ELEMENT_TYPES)
        return image, preprocess_volume(image, read_metaimage(mask_dir / f"{uid}.mhd"))

    def build(name: str) -> SplitCache:
        cubes, labels, names, world, kept = [], [], [], [], []
        for uid, (image, volume) in bad.screen(split[name], read, split=name, lost=lambda u: len(chosen[u])):
            idx = chosen[uid]
            centres = world_to_voxel(table.world[idx], image.origin, image.spacing)
            _check_centres(label_path, table.rows[idx], centres, image, voxel_mm)
            cubes.append(extract_cubes(volume, image.spacing, centres, voxel_mm=voxel_mm))
            labels.append(table.values[idx].astype(np.int64))
            names.extend(f"{uid}/{table.rows[i]}" for i in idx)
            world.append(table.world[idx])
            kept.append(uid)
        bad.check_split(raw_root, name, len(kept))
        arrays = {
            "cubes": np.concatenate(cubes) if cubes else np.zeros((0, *CUBE_SHAPE), np.uint8),
            "labels": np.concatenate(labels) if labels else np.zeros(0, np.int64),
            "names": np.array(names, dtype=str),
            "world": np.concatenate(world) if world else np.zeros((0, 3)),
        }
        log.info("%s: %d cubes from %d scans", name, arrays["labels"].size, len(kept))
        return SplitCache(arrays, {"scans": kept})

    return write_split_cache(out_dir, summary, bad, SPLITS, build)


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
