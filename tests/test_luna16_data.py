"""LUNA16: MetaImage files, HU windowing, cube extraction, labels, the stand-in and the cube cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bidl.data.formats.metaimage import (
    MetaImage,
    read_metaimage,
    voxel_to_world,
    world_to_voxel,
    write_metaimage,
)
from bidl.data.luna16 import (
    CANDIDATES_HEADER,
    CUBE_SHAPE,
    MALIGNANCY_CSV,
    MALIGNANCY_HEADER,
    PAD_VALUE,
    Luna16Cubes,
    PointTable,
    convex_hull_slices,
    extract_cubes,
    generate_standin,
    preprocess,
    preprocess_volume,
    read_malignancy_csv,
    read_point_csv,
    select_samples,
    split_scans,
    window_hu,
)
from bidl.data.sources.zenodo import parse_zenodo_checksums, zenodo_file_url
from bidl.data.standins.luna16 import _radius_profile
from bidl.errors import DataFormatError

SMALL = {"n_scans": 4, "n_nodules": 3, "n_vessels": 3, "seed": 5}


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("luna") / "raw", **SMALL)


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> MetaImage:
    return MetaImage(array, np.array(origin), np.array(spacing), (False, False, False), Path("x.mhd"))


# ---------------------------------------------------------------------------------------------------------
# MetaImage
# ---------------------------------------------------------------------------------------------------------
def test_metaimage_round_trip_keeps_values_geometry_and_luna_header(tmp_path):
    hu = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) * 10 - 1000  # [z, y, x]
    path = write_metaimage(tmp_path / "scan.mhd", hu, spacing=(0.7, 0.7, 2.5), origin=(-100, 50.5, -300))
    header = path.read_text()
    assert "DimSize = 4 3 2" in header and "ElementType = MET_SHORT" in header
    assert "ElementDataFile = scan.raw" in header and "BinaryDataByteOrderMSB = False" in header
    assert (tmp_path / "scan.raw").read_bytes() == hu.astype("<i2").tobytes()  # x fastest, little-endian
    image = read_metaimage(path)
    np.testing.assert_array_equal(image.array, hu)
    np.testing.assert_allclose(image.spacing, [0.7, 0.7, 2.5])
    np.testing.assert_allclose(image.origin, [-100, 50.5, -300])
    assert image.flipped == (False, False, False)


def test_flipped_transform_matrix_is_flipped_back_and_world_coordinates_still_match(tmp_path):
    canonical = np.random.default_rng(0).integers(-1000, 500, size=(3, 4, 5)).astype(np.int16)
    spacing, origin = np.array([0.5, 0.8, 2.0]), np.array([10.0, 20.0, -30.0])
    # on disk: x and y reversed, Offset = world position of the file's first voxel (canonical last x, y)
    stored_origin = origin + np.array([4 * 0.5, 3 * 0.8, 0.0])
    write_metaimage(
        tmp_path / "f.mhd",
        canonical[:, ::-1, ::-1],
        spacing=spacing,
        origin=stored_origin,
        transform=(-1, 0, 0, 0, -1, 0, 0, 0, 1),
    )
    image = read_metaimage(tmp_path / "f.mhd")
    assert image.flipped == (True, True, False)
    np.testing.assert_array_equal(image.array, canonical)
    np.testing.assert_allclose(image.origin, origin)
    z, y, x = np.round(world_to_voxel(np.array([11.0, 21.6, -26.0]), image.origin, image.spacing)).astype(int)
    assert (z, y, x) == (2, 2, 2)


def test_world_to_voxel_and_back():
    origin, spacing = np.array([-100.0, 50.0, -300.0]), np.array([0.7, 0.7, 2.5])
    voxel = world_to_voxel(np.array([[-93.0, 57.0, -295.0], [-100.0, 50.0, -300.0]]), origin, spacing)
    np.testing.assert_allclose(voxel, [[2.0, 10.0, 10.0], [0.0, 0.0, 0.0]])  # (z, y, x)
    np.testing.assert_allclose(voxel_to_world(voxel, origin, spacing), [[-93, 57, -295], [-100, 50, -300]])


def test_missing_and_wrong_size_raw_raise_naming_the_raw_file(tmp_path):
    path = write_metaimage(
        tmp_path / "a.mhd", np.zeros((2, 2, 2), np.int16), spacing=(1, 1, 1), origin=(0, 0, 0)
    )
    (tmp_path / "a.raw").write_bytes(b"\0" * 15)  # 2 x 2 x 2 x 2 bytes expected
    with pytest.raises(
        DataFormatError, match=r"a\.raw: 15 bytes, but DimSize \[2, 2, 2\] of a\.mhd x 2 bytes"
    ):
        read_metaimage(path)
    (tmp_path / "a.raw").unlink()
    with pytest.raises(DataFormatError, match=r"a\.raw: raw data file named by a\.mhd is missing"):
        read_metaimage(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("ElementType = MET_SHORT", "ElementType = MET_LONG_LONG"), "unknown ElementType 'MET_LONG_LONG'"),
        (("DimSize = 2 2 2\n", ""), r"header lacks \['DimSize'\]"),
        (("Offset = 0 0 0\n", ""), r"header lacks \['Offset'\]"),
        (("NDims = 3", "NDims = 2"), "NDims = 2: only 3-D"),
        (
            ("TransformMatrix = 1 0 0 0 1 0 0 0 1", "TransformMatrix = 0 1 0 1 0 0 0 0 1"),
            "TransformMatrix .*diagonal",
        ),
    ],
)
def test_malformed_headers_raise_naming_the_mhd(tmp_path, edit, message):
    path = write_metaimage(
        tmp_path / "b.mhd", np.zeros((2, 2, 2), np.int16), spacing=(1, 1, 1), origin=(0, 0, 0)
    )
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(DataFormatError, match=r"b\.mhd: " + message):
        read_metaimage(path)


def test_uchar_and_float_masks_are_read(tmp_path):
    for dtype, name in ((np.uint8, "MET_UCHAR"), (np.float32, "MET_FLOAT")):
        mask = np.full((2, 3, 4), 3, dtype=dtype)
        path = write_metaimage(tmp_path / f"m_{name}.mhd", mask, spacing=(1, 1, 1), origin=(0, 0, 0))
        assert f"ElementType = {name}" in path.read_text()
        image = read_metaimage(path)
        assert image.array.dtype == dtype and (image.array == 3).all()


def _mask_pair(tmp_path: Path, transform=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> tuple[Path, Path, np.ndarray]:
    """The same uint8 lung mask written compressed (``z.mhd`` + ``z.zraw``) and uncompressed (``u.mhd``)."""
    mask = np.zeros((6, 20, 24), dtype=np.uint8)
    mask[1:5, 3:17, 2:10] = 3
    mask[1:5, 4:15, 13:22] = 4
    geometry = {"spacing": (0.7, 0.8, 1.25), "origin": (-10.5, 20.0, -300.0), "transform": transform}
    zipped = write_metaimage(tmp_path / "z.mhd", mask, compress=True, **geometry)
    plain = write_metaimage(tmp_path / "u.mhd", mask, **geometry)
    return zipped, plain, mask


@pytest.mark.parametrize("transform", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)])
def test_a_compressed_zraw_mask_reads_equal_to_its_uncompressed_copy(tmp_path, transform):
    zipped, plain, mask = _mask_pair(tmp_path, transform)
    header = zipped.read_text()
    assert "CompressedData = True" in header and "ElementDataFile = z.zraw" in header
    assert (tmp_path / "z.zraw").stat().st_size < (tmp_path / "u.raw").stat().st_size // 5
    assert not (tmp_path / "z.raw").exists() and not list(tmp_path.glob(".*"))  # no staging leftovers
    a, b = read_metaimage(zipped), read_metaimage(plain)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.dtype == np.uint8 and a.array.flags.c_contiguous
    np.testing.assert_allclose(a.origin, b.origin)
    np.testing.assert_allclose(a.spacing, [0.7, 0.8, 1.25])
    assert a.flipped == b.flipped == (transform[0] < 0, transform[4] < 0, False)
    expected = mask[:, ::-1, ::-1] if transform[0] < 0 else mask  # flipped back to identity orientation
    np.testing.assert_array_equal(a.array, expected)


@pytest.mark.fault
def test_a_truncated_zraw_is_named_in_the_error(tmp_path, fault_log):
    zipped, _, _ = _mask_pair(tmp_path)
    data = tmp_path / "z.zraw"
    full = data.read_bytes()
    data.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError) as error:
        read_metaimage(zipped)
    fault_log("LUNA16 MetaImage", "compressed mask .zraw truncated to half", error.value)
    assert str(error.value).startswith(
        f"{data}: {len(full) // 2} bytes, but CompressedDataSize = {len(full)}"
    )
    # without CompressedDataSize in the header the cut zlib stream itself is detected
    zipped.write_text(
        "".join(line for line in zipped.read_text().splitlines(True) if "CompressedDataSize" not in line)
    )
    with pytest.raises(DataFormatError, match=rf"^{data}: compressed data cut short: .* \(truncated\)"):
        read_metaimage(zipped)


@pytest.mark.fault
def test_a_corrupt_zraw_of_the_right_size_is_named_in_the_error(tmp_path, fault_log):
    """SimpleITK itself returns garbage voxels for a corrupt stream (it only prints 'Uncompress failed')."""
    zipped, _, _ = _mask_pair(tmp_path)
    data = tmp_path / "z.zraw"
    damaged = bytearray(data.read_bytes())
    damaged[10:40] = bytes(30)
    data.write_bytes(bytes(damaged))
    with pytest.raises(DataFormatError) as error:
        read_metaimage(zipped)
    fault_log("LUNA16 MetaImage", "compressed mask .zraw with 30 bytes zeroed (same size)", error.value)
    assert str(error.value).startswith(f"{data}: corrupt compressed data (zlib: ")


@pytest.mark.fault
def test_a_truncated_raw_is_named_in_the_error(tmp_path, fault_log):
    _, plain, _ = _mask_pair(tmp_path)
    data = tmp_path / "u.raw"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(DataFormatError) as error:
        read_metaimage(plain)
    fault_log("LUNA16 MetaImage", "uncompressed mask .raw truncated to 1000 bytes", error.value)
    assert str(error.value) == (
        f"{data}: 1000 bytes, but DimSize [24, 20, 6] of u.mhd x 1 bytes (MET_UCHAR) = 2880 "
        "(truncated, or DimSize too large)"
    )


@pytest.mark.fault
@pytest.mark.parametrize("name", ["z", "u"])
def test_a_missing_data_file_is_named(tmp_path, fault_log, name):
    _mask_pair(tmp_path)
    data = tmp_path / f"{name}.{'zraw' if name == 'z' else 'raw'}"
    data.unlink()
    with pytest.raises(DataFormatError) as error:
        read_metaimage(tmp_path / f"{name}.mhd")
    kind = "compressed data file" if name == "z" else "raw data file"
    assert str(error.value) == f"{data}: {kind} named by {name}.mhd is missing"
    fault_log("LUNA16 MetaImage", f"{data.suffix} data file of a mask missing", error.value)


@pytest.mark.fault
def test_what_simpleitk_refuses_is_reported_without_its_cpp_trace(tmp_path, fault_log):
    """A header this reader accepts but SimpleITK cannot follow (HeaderSize beyond the data file)."""
    _, plain, _ = _mask_pair(tmp_path)
    plain.write_text(plain.read_text().replace("ObjectType = Image\n", "HeaderSize = 99999\n"))
    with pytest.raises(DataFormatError) as error:
        read_metaimage(plain)
    fault_log("LUNA16 MetaImage", "HeaderSize beyond the end of the .raw", error.value)
    message = str(error.value)
    assert message.startswith(f"{plain}: SimpleITK cannot read it (File cannot be read: ")
    assert ".cxx" not in message and "0x" not in message and "\n" not in message


# ---------------------------------------------------------------------------------------------------------
# Windowing, lung hull and cubes
# ---------------------------------------------------------------------------------------------------------
def test_hu_window_maps_by_the_documented_formula():
    # floor((hu + 1200) / 1800 * 255 + 0.5): -300 -> 127.5 -> 128
    np.testing.assert_array_equal(
        window_hu(np.array([-300, -1200, -2000, 600, 3000, 0])), [128, 0, 0, 255, 255, 170]
    )


def test_preprocess_volume_windows_lungs_and_pads_outside_the_dilated_hull():
    hu = np.full((3, 40, 40), -300, dtype=np.int16)
    hu[:, 0, 0] = 800  # bone-bright voxel far outside the hull
    labels = np.zeros((3, 40, 40), dtype=np.uint8)
    labels[:, 15:25, 15:20] = 3  # "left lung"
    labels[:, 15:25, 21:26] = 4  # "right lung"
    out = preprocess_volume(_image(hu), _image(labels))
    assert out.dtype == np.uint8
    assert out[1, 20, 17] == 128  # lung voxel: windowed HU -300
    assert out[1, 20, 20] == 128  # between the lungs, inside the dilated hulls
    assert out[1, 0, 0] == PAD_VALUE and out[1, 39, 39] == PAD_VALUE  # beyond 10 dilation steps
    assert out[1, 20, 4] == PAD_VALUE and out[1, 20, 6] == 128  # x = 5..14 is the 10-voxel dilation


def test_preprocess_volume_removes_bright_voxels_in_the_dilation_ring():
    hu = np.full((1, 30, 30), -800, dtype=np.int16)
    hu[0, 10, 8] = 600  # ring voxel brighter than 210 -> pad value
    hu[0, 12, 12] = 600  # lung voxel: kept
    labels = np.zeros((1, 30, 30), dtype=np.uint8)
    labels[0, 10:20, 10:20] = 3
    out = preprocess_volume(_image(hu), _image(labels))
    assert out[0, 10, 8] == PAD_VALUE and out[0, 12, 12] == 255 and out[0, 15, 15] == window_hu(-800)


def test_convex_hull_fills_a_concave_slice_and_keeps_degenerate_ones():
    mask = np.zeros((2, 10, 10), dtype=bool)
    mask[0, 2:8, 2] = True  # an L: vertical bar ...
    mask[0, 7, 2:8] = True  # ... and horizontal bar; hull = the triangle (2,2), (7,2), (7,7)
    mask[1, 4, 1:9] = True  # collinear pixels: no 2-D hull, kept as they are
    hull = convex_hull_slices(mask, max_growth=10)
    yy, xx = np.mgrid[0:10, 0:10]
    np.testing.assert_array_equal(hull[0], (yy >= 2) & (yy <= 7) & (xx >= 2) & (xx - 2 <= yy - 2))
    np.testing.assert_array_equal(hull[1], mask[1])
    np.testing.assert_array_equal(convex_hull_slices(mask, max_growth=1.5)[0], mask[0])  # 21 > 1.5 * 11


def test_extract_cubes_samples_a_1mm_grid_centred_on_the_point():
    z = np.arange(12, dtype=np.float64)
    volume = np.broadcast_to((z * 10)[:, None, None], (12, 40, 40)).astype(np.uint8)  # value = 10 * z index
    spacing = np.array([0.5, 0.5, 2.0])  # (x, y, z) mm
    cubes = extract_cubes(volume, spacing, np.array([[5.0, 20.0, 20.0]]))
    assert cubes.shape == (1, *CUBE_SHAPE) and cubes.dtype == np.uint8
    # slices at -3.5 .. 3.5 mm = -1.75 .. 1.75 voxels of 2 mm around z = 5
    np.testing.assert_array_equal(cubes[0, :, 16, 16], np.floor(10 * (5 + (np.arange(8) - 3.5) / 2) + 0.5))
    outside = extract_cubes(volume, spacing, np.array([[-20.0, 20.0, 20.0]]))
    assert (outside == PAD_VALUE).all()


# ---------------------------------------------------------------------------------------------------------
# csv files, sample choice, split
# ---------------------------------------------------------------------------------------------------------
def test_candidates_csv_with_a_bad_class_raises_naming_the_file(tmp_path):
    path = tmp_path / "candidates.csv"
    path.write_text(",".join(CANDIDATES_HEADER) + "\n1.2.3,1.0,2.0,3.0,1\n1.2.3,1.0,2.0,3.0,2\n")
    with pytest.raises(DataFormatError, match=r"candidates\.csv: line 3: class must be 0 or 1"):
        read_point_csv(path, CANDIDATES_HEADER, binary=True)
    path.write_text("seriesuid,x,y,z,class\n")
    with pytest.raises(DataFormatError, match=r"candidates\.csv: expected header"):
        read_point_csv(path, CANDIDATES_HEADER, binary=True)


# the first three data rows of data/part2/luna/annotations_with_malignancy.csv of
# deep-learning-with-pytorch/dlwpt-code
_PUBLISHED_ROWS = """\
1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860,-128.6994211,-175.31927180000002,\
-298.38750639999995,5.651470635,True,"[4, 2, 4, 2]",-131.89648,-178.25976125,-299.8000036716461,-125.4511675,\
-172.45898,-296.2000037670135,4
1.3.6.1.4.1.14519.5.2.1.6279.6001.265775376735520890308424143898,-69.1757411,218.0526254,-668.5012726,\
4.441200069,False,"[3, 2, 3]",-71.81593874999999,215.70981975,-670.900024,-66.72218874999999,220.80356975,\
-666.900024,3
1.3.6.1.4.1.14519.5.2.1.6279.6001.276556509002726404418399209377,-67.45950309,-247.74421119999997,\
-211.09533959999996,7.744221727999999,True,"[5, 3, 4]",-73.02734375,-253.84765625,-213.1000039100647,\
-61.07421875,-242.55859375,-209.50000400543212,3
"""


def test_the_published_malignancy_file_format_is_read(tmp_path):
    path = tmp_path / MALIGNANCY_CSV
    path.write_text(",".join(MALIGNANCY_HEADER) + "\n" + _PUBLISHED_ROWS)
    table = read_malignancy_csv(path)
    assert table.values.tolist() == [1.0, 0.0, 1.0] and table.rows.tolist() == [0, 1, 2]
    assert table.uids[1].endswith("265775376735520890308424143898")
    np.testing.assert_allclose(table.world[0], [-128.6994211, -175.3192718, -298.3875064])
    # the six leading columns alone are enough (no ratings to check)
    lean = tmp_path / "lean.csv"
    lean.write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool\n1.2.3,1,2,3,4.5,False\n1.2.3,4,5,6,5,1\n"
    )
    assert read_malignancy_csv(lean).values.tolist() == [0.0, 1.0]


@pytest.mark.fault
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('True,"[4, 2, 4, 2]"', 'True,"[4, 2, 3, 2]"'),
            r"line 2: mal_bool = True, but mal_details \[4, 2, 3, 2\] has 1 rating",
        ),
        (("False,", "maybe,"), r"line 3: mal_bool must be True or False, got 'maybe'"),
        (('"[5, 3, 4]"', '"[5, 3, 9]"'), r"line 4: mal_details '\[5, 3, 9\]': expected ratings 1-5"),
        (("4.441200069", "-1"), r"line 3: coordinates must be finite and diameter_mm > 0"),
        (
            ("-209.50000400543212,3", "-209.50000400543212,4"),
            r"line 4: len_mal_details = '4', but mal_details has 3",
        ),
        (("diameter_mm,mal_bool", "diameter_mm,malignant"), "expected a header starting with"),
    ],
)
def test_a_bad_malignancy_file_is_named_with_its_line(tmp_path, fault_log, edit, message):
    path = tmp_path / MALIGNANCY_CSV
    text = ",".join(MALIGNANCY_HEADER) + "\n" + _PUBLISHED_ROWS
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(DataFormatError, match=rf"{MALIGNANCY_CSV}: {message}") as error:
        read_malignancy_csv(path)
    fault_log("LUNA16 labels", f"annotations_with_malignancy.csv: {edit[0]!r} -> {edit[1]!r}", error.value)


def test_negatives_are_capped_per_scan_deterministically_and_positives_all_kept():
    uids = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    values = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 1], dtype=float)
    table = PointTable(uids, np.zeros((10, 3)), values, np.arange(10))
    chosen = select_samples(table, ["a", "b"], max_negatives_per_scan=2, seed=3)
    assert sorted(chosen) == ["a", "b"]
    assert {0, 5} <= set(chosen["a"].tolist()) and len(chosen["a"]) == 4 and len(chosen["b"]) == 2
    again = select_samples(table, ["a", "b"], max_negatives_per_scan=2, seed=3)
    assert all((chosen[k] == again[k]).all() for k in chosen)
    assert len(select_samples(table, ["a"], max_negatives_per_scan=None, seed=3)["a"]) == 6


def test_split_is_by_scan_seeded_and_disjoint():
    uids = [f"u{i}" for i in range(20)]
    split = split_scans(uids, test_fraction=0.1, seed=1)
    assert len(split["test"]) == 2 and not set(split["test"]) & set(split["train"])
    assert split == split_scans(list(reversed(uids)), test_fraction=0.1, seed=1)
    assert split != split_scans(uids, test_fraction=0.1, seed=2)


def test_zenodo_checksums_are_parsed_from_the_api_json():
    record = json.loads(
        """{"id": 3723295, "files": [
        {"key": "annotations.csv", "size": 135799, "checksum": "md5:0123456789abcdef0123456789ABCDEF"},
        {"key": "subset0.zip", "size": 6811924508, "checksum": "md5:fedcba9876543210fedcba9876543210",
         "links": {"self": "https://zenodo.org/api/records/3723295/files/subset0.zip/content"}},
        {"key": "odd.bin", "checksum": "sha256:00"}]}"""
    )
    assert parse_zenodo_checksums(record) == {
        "annotations.csv": {"md5": "0123456789abcdef0123456789abcdef", "size": 135799},
        "subset0.zip": {"md5": "fedcba9876543210fedcba9876543210", "size": 6811924508},
    }
    with pytest.raises(ValueError, match="no 'files'"):
        parse_zenodo_checksums({"id": 1})
    assert (
        zenodo_file_url(4121926, "subset9.zip")
        == "https://zenodo.org/record/4121926/files/subset9.zip?download=1"
    )


# ---------------------------------------------------------------------------------------------------------
# Stand-in, preprocessing, Dataset
# ---------------------------------------------------------------------------------------------------------
def test_vessel_cube_slices_show_the_nodule_cross_sections_in_another_order():
    offsets = np.arange(8) - 3.5  # mm, the slices of a 1 mm cube
    nodule = _radius_profile(offsets, 3.0, 5.0, "nodule")
    vessel = _radius_profile(offsets, 3.0, 5.0, "vessel")
    np.testing.assert_allclose(np.sort(nodule), np.sort(vessel))
    assert nodule[3] > nodule[0] and vessel[3] < vessel[0]  # grows-then-shrinks vs shrinks-then-grows
    assert _radius_profile(np.array([10.0]), 3.0, 5.0, "vessel")[0] == 3.0  # the vessel runs on


def test_malignant_cube_slices_are_ordered_widest_to_narrowest_with_nearly_the_benign_radii():
    offsets = np.arange(8) - 3.5
    benign = _radius_profile(offsets, 3.5, 4.0, "nodule")
    for tip in (1, -1):
        malignant = _radius_profile(offsets, 3.5, 4.0, "malignant", tip)
        steps = np.diff(malignant) * tip
        assert (steps < 0).all(), malignant  # shrinks steadily towards the tip
        # nearly the benign cross-sections: sorted radii within 0.6 mm of each other (radius 3.5 mm)
        assert np.abs(np.sort(malignant) - np.sort(benign)).max() < 0.6
        assert abs(malignant.mean() - benign.mean()) < 0.15
    assert _radius_profile(np.array([-4.5, 4.5]), 3.5, 4.0, "malignant").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="kind 'blob'"):
        _radius_profile(offsets, 3.0, 4.0, "blob")


def test_standin_has_luna_layout_and_readable_files(small_standin):
    uids = sorted(p.stem for p in (small_standin / "subset0").glob("*.mhd"))
    assert len(uids) == SMALL["n_scans"]
    assert sorted(p.stem for p in (small_standin / "seg-lungs-LUNA16").glob("*.mhd")) == uids
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    candidates = read_point_csv(small_standin / "candidates.csv", CANDIDATES_HEADER, binary=True)
    assert set(candidates.uids) == set(uids)
    image = read_metaimage(small_standin / "subset0" / f"{uids[0]}.mhd")
    assert image.array.dtype == np.int16 and image.array.min() > -1100 and image.array.max() > 500
    mask = read_metaimage(small_standin / "seg-lungs-LUNA16" / f"{uids[0]}.mhd")
    assert set(np.unique(mask.array)) == {0, 3, 4}
    lung_hu = image.array[mask.array > 0]
    assert -900 < np.median(lung_hu) < -800


def test_standin_is_deterministic(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_standin / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_preprocess_writes_cubes_labels_and_split_and_the_dataset_serves_them(tmp_path, small_standin):
    out = tmp_path / "cache"
    summary = preprocess(small_standin, out, max_negatives_per_scan=None, test_fraction=0.25, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.npz", "train.npz"]
    candidates = read_point_csv(small_standin / "candidates.csv", CANDIDATES_HEADER, binary=True)
    split = json.loads((out / "split.json").read_text())
    assert split == json.loads(json.dumps(summary))
    assert len(split["splits"]["test"]["scans"]) == 1 and len(split["splits"]["train"]["scans"]) == 3
    assert not set(split["splits"]["test"]["scans"]) & set(split["splits"]["train"]["scans"])
    total = np.zeros(2, int)
    for name in ("train", "test"):
        with np.load(out / f"{name}.npz") as npz:
            cubes, labels, names = npz["cubes"], npz["labels"], npz["names"]
            assert cubes.dtype == np.uint8 and cubes.shape == (len(labels), *CUBE_SHAPE)
            assert labels.dtype == np.int64 and {n.split("/")[0] for n in names} <= set(
                split["splits"][name]["scans"]
            )
        scans = split["splits"][name]["scans"]
        expected = np.bincount(candidates.values[np.isin(candidates.uids, scans)].astype(int), minlength=2)
        assert (
            split["splits"][name]["class_counts"]
            == expected.tolist()
            == np.bincount(labels, minlength=2).tolist()
        )
        total += expected
    assert total.tolist() == np.bincount(candidates.values.astype(int), minlength=2).tolist()
    data = Luna16Cubes(out / "train.npz")
    x, y = data[0]
    assert x.shape == (8, 1, 32, 32) and x.dtype.is_floating_point and x.min() >= 0.0 and x.max() <= 1.0
    assert y in (0, 1) and len(data) == split["splits"]["train"]["n"]
    # the object at the centre of every cube is denser than lung tissue
    centre = data.cubes[:, :, 14:18, 14:18].float().mean(dim=(1, 2, 3))
    assert (centre > 90).float().mean() > 0.9


def test_standin_malignancy_file_lists_its_nodules_in_the_published_format(small_standin):
    text = (small_standin / MALIGNANCY_CSV).read_text()
    assert text.splitlines()[0] == ",".join(MALIGNANCY_HEADER)
    table = read_malignancy_csv(small_standin / MALIGNANCY_CSV)  # also checks mal_bool against the ratings
    candidates = read_point_csv(small_standin / "candidates.csv", CANDIDATES_HEADER, binary=True)
    nodules = candidates.values == 1
    assert sorted(zip(table.uids, map(tuple, table.world.round(4)), strict=True)) == sorted(
        zip(candidates.uids[nodules], map(tuple, candidates.world[nodules].round(4)), strict=True)
    )
    counts = np.bincount(table.values.astype(int), minlength=2)
    assert abs(int(counts[1]) - int(counts[0])) <= SMALL["n_scans"]  # every second nodule of a scan


def test_preprocess_with_malignancy_labels_cuts_one_cube_per_nodule(tmp_path, small_standin):
    summary = preprocess(
        small_standin,
        tmp_path / "c",
        label_source="malignancy",
        max_negatives_per_scan=None,
        test_fraction=0.25,
    )
    table = read_malignancy_csv(small_standin / MALIGNANCY_CSV)
    assert summary["label_file"] == str(small_standin / MALIGNANCY_CSV)
    assert summary["class_names"] == ["benign", "malignant"]
    counts = np.sum([s["class_counts"] for s in summary["splits"].values()], axis=0)
    assert counts.tolist() == np.bincount(table.values.astype(int), minlength=2).tolist()
    # the classes differ in the order of the slices: the object's central cross-section is largest in the
    # middle slices of a benign cube and at one end of a malignant one
    cubes, labels = [], []
    for name in ("train", "test"):
        with np.load(tmp_path / "c" / f"{name}.npz") as npz:
            cubes.append(npz["cubes"]), labels.append(npz["labels"])
    density = np.concatenate(cubes)[:, :, 12:20, 12:20].astype(float).mean(axis=(2, 3))  # [N, 8 slices]
    ends = np.abs(density[:, :2].mean(1) - density[:, -2:].mean(1))
    labels = np.concatenate(labels)
    assert (density[labels == 1, :2].mean(1) > density[labels == 1, -2:].mean(1)).all()  # base first, tip +z
    assert ends[labels == 1].min() > ends[labels == 0].max() * 0.8, (ends[labels == 1], ends[labels == 0])
    assert np.median(ends[labels == 1]) > 3 * np.median(ends[labels == 0])


def test_negative_cap_applies_to_the_standin(tmp_path, small_standin):
    summary = preprocess(small_standin, tmp_path / "c", max_negatives_per_scan=1, test_fraction=0.25)
    negatives = sum(s["class_counts"][0] for s in summary["splits"].values())
    assert negatives == SMALL["n_scans"]


def test_dataset_rejects_a_broken_cache(tmp_path):
    path = tmp_path / "train.npz"
    np.savez(
        path,
        cubes=np.zeros((2, 8, 32, 32), np.float32),
        labels=np.zeros(2, np.int64),
        names=np.array(["a", "b"]),
    )
    with pytest.raises(DataFormatError, match="train.npz: cubes must be uint8"):
        Luna16Cubes(path)
    with pytest.raises(DataFormatError, match="missing"):
        Luna16Cubes(tmp_path / "nope.npz")


def test_candidates_are_found_where_the_fetch_step_leaves_plain_files(tmp_path, small_standin):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(small_standin, raw)
    (raw / "downloads").mkdir()
    (raw / "candidates.csv").rename(raw / "downloads" / "candidates.csv")
    (raw / MALIGNANCY_CSV).rename(raw / "downloads" / MALIGNANCY_CSV)
    summary = preprocess(raw, tmp_path / "c", max_negatives_per_scan=None, test_fraction=0.25)
    assert summary["label_file"] == str(raw / "downloads" / "candidates.csv")
    assert sum(s["n"] for s in summary["splits"].values()) == 4 * 6
    summary = preprocess(raw, tmp_path / "m", label_source="malignancy", test_fraction=0.25)
    assert summary["label_file"] == str(raw / "downloads" / MALIGNANCY_CSV)


def test_the_luna16_checksum_file_is_installed_with_the_package():
    """bidl/data/luna16_checksums.json is package data: a wheel (not only an editable install) carries it."""
    import fnmatch
    import tomllib

    from bidl.data.sources import LUNA16_CHECKSUMS

    repo = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools.get("package-data", {}).get("bidl.data", [])
    assert LUNA16_CHECKSUMS.is_file() and LUNA16_CHECKSUMS.parent == repo / "bidl" / "data"
    assert any(fnmatch.fnmatch(LUNA16_CHECKSUMS.name, pattern) for pattern in patterns), patterns


def test_the_malignancy_labels_are_fetched_from_a_fixed_commit_and_verified_by_sha256():
    import re

    from bidl.data.sources import LUNA16_MALIGNANCY, get_source

    assert LUNA16_MALIGNANCY in get_source("luna16", "zenodo").files
    assert LUNA16_MALIGNANCY.name == MALIGNANCY_CSV
    (url,) = LUNA16_MALIGNANCY.urls
    assert re.fullmatch(
        r"https://raw\.githubusercontent\.com/deep-learning-with-pytorch/dlwpt-code/[0-9a-f]{40}/"
        r"data/part2/luna/annotations_with_malignancy\.csv",
        url,
    )
    assert LUNA16_MALIGNANCY.sha256 is not None and LUNA16_MALIGNANCY.size == 268015


@pytest.mark.fault
def test_a_placed_malignancy_file_of_other_content_does_not_verify(tmp_path, fault_log):
    from bidl.data.sources import LUNA16_MALIGNANCY
    from bidl.data.sources.download import verify_recorded
    from bidl.errors import DownloadError

    placed = tmp_path / MALIGNANCY_CSV
    placed.write_text(",".join(MALIGNANCY_HEADER) + "\n" + _PUBLISHED_ROWS)  # a 3-row excerpt, not the file
    with pytest.raises(DownloadError) as error:
        verify_recorded(tmp_path, [LUNA16_MALIGNANCY], dataset="luna16/zenodo", fix="-")
    fault_log("LUNA16 labels", "a 3-row excerpt placed as annotations_with_malignancy.csv", error.value)
    assert f"{placed}: " in str(error.value) and "268015" in str(error.value)
