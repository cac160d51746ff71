"""Generated stand-in of LUNA16: MetaImage CT volumes, compressed lung masks and the label csv files.

Small CT-like volumes in HU with compressed lung masks and csv files in
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

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy import ndimage

from bidl.data.formats.metaimage import write_metaimage
from bidl.data.luna16 import (
    ANNOTATIONS_HEADER,
    CANDIDATES_HEADER,
    CUBE_SHAPE,
    LUNG_MASK_VALUES,
    MALIGNANCY_CSV,
    MALIGNANCY_HEADER,
    MALIGNANT_RATING,
    MALIGNANT_READERS,
)
from bidl.data.staging import staged_replacement

log = logging.getLogger(__name__)

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
