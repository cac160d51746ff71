"""The dataset catalog: every dataset's stand-in goes through its real reader, preprocessing and dataset
class by name; the shared ``CachedSplit`` checks; the datasets table."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bidl.data.cache import CachedSplit, select_rows
from bidl.data.catalog import DATASET_NAMES, DATASETS, describe_source, get_dataset, open_split
from bidl.data.sources import SOURCES
from bidl.errors import DataFormatError

REPO = Path(__file__).resolve().parents[1]

#: the smallest stand-ins: (generator params, preprocess params, expected sample shape, expected dtype)
TINY = {
    "dvs128_gesture": (
        {"n_users": 2, "lightings": ("led",), "reps_per_class": 1},
        {"layout": "ibm_aedat31", "n_frames": 8, "size": 16},
        (8, 2, 16, 16),
        torch.float32,
    ),
    "cifar10_dvs": (
        {"per_class": 2},
        {"n_frames": 4, "size": 16, "test_fraction": 0.5},
        (4, 2, 16, 16),
        torch.float32,
    ),
    "imdb": ({"n_train": 12, "n_test": 6}, {"max_len": 50}, (50,), torch.int64),
    "jester": ({"n_train_per_class": 1, "n_val_per_class": 1}, {"size": 16}, (16, 3, 16, 16), torch.float32),
    "luna16": (
        {"n_scans": 4, "n_nodules": 2, "n_vessels": 2},
        {"test_fraction": 0.5},
        (8, 1, 32, 32),
        torch.float32,
    ),
    "rgb_gesture": (
        {"n_train": 10, "n_val": 10},
        {"n_frames": 12, "size": 20},
        (12, 2, 20, 20),
        torch.float32,
    ),
}


def test_every_dataset_has_a_module_a_class_and_real_sources():
    assert set(TINY) == set(DATASET_NAMES)
    for name, info in DATASETS.items():
        module = info.load_module()
        assert callable(module.generate_standin) and callable(module.preprocess), name
        assert issubclass(getattr(module, info.dataset_class), CachedSplit), name
        assert SOURCES[name], f"{name}: no real source"
        layouts = {src.layout for src in SOURCES[name].values()}
        assert info.standin_layout in layouts, f"{name}: the stand-in's layout is not a real source's"
        assert info.sources()[0] == "standin"


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="known: \\['dvs128_gesture'"):
        get_dataset("mnist")


def test_describe_source_says_stand_in_or_real():
    assert describe_source("imdb", "standin") == "stand-in (generated, aclimdb layout)"
    assert describe_source("imdb", "stanford").startswith("real (IMDB, stanford")
    assert describe_source("jester", "qualcomm").startswith("real (Jester")


@pytest.fixture(scope="module")
def tiny_caches(tmp_path_factory):
    """Every dataset's smallest stand-in, written and preprocessed through the catalog's modules."""
    root = tmp_path_factory.mktemp("catalog")
    out = {}
    for name, (gen, pre, _, _) in TINY.items():
        module = get_dataset(name).load_module()
        raw, cache = root / "raw" / name, root / "cache" / name
        module.generate_standin(raw, seed=1, **gen)
        module.preprocess(raw, cache, **pre)
        out[name] = (raw, cache)
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_open_split_reads_every_stand_in_through_its_dataset_class(tiny_caches, name):
    _, cache = tiny_caches[name]
    _, _, shape, dtype = TINY[name]
    split = json.loads((cache / "split.json").read_text())
    for part in ("train", "test"):
        data = open_split(name, cache / f"{part}.npz", train=part == "train")
        assert len(data) == split["splits"][part]["n"] > 0
        x, y = data[0]
        assert tuple(x.shape) == shape and x.dtype == dtype
        assert 0 <= y < len(split["class_names"])
        counts = np.bincount(data.labels.numpy(), minlength=len(split["class_names"]))
        assert counts.tolist() == split["splits"][part]["class_counts"]
    # a subset by indices, negative ones counted from the end
    full = open_split(name, cache / "test.npz")
    sub = open_split(name, cache / "test.npz", indices=[-1, 0])
    assert len(sub) == 2 and sub.names == [full.names[-1], full.names[0]]
    assert torch.equal(sub[0][0], full[len(full) - 1][0]) and sub[1][1] == full[0][1]
    with pytest.raises(IndexError):
        open_split(name, cache / "test.npz", indices=[len(full)])
    with pytest.raises(IndexError):
        full[len(full)]


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_cache_with_an_unknown_label_or_mismatched_names_fails_naming_the_file(tiny_caches, tmp_path, name):
    _, cache = tiny_caches[name]
    with np.load(cache / "test.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    cls = getattr(get_dataset(name).load_module(), get_dataset(name).dataset_class)
    bad = tmp_path / "bad.npz"
    if cls.N_CLASSES is not None:
        np.savez(bad, **{**arrays, "labels": np.full_like(arrays["labels"], cls.N_CLASSES)})
        with pytest.raises(DataFormatError, match=f"{bad}.*labels outside"):
            open_split(name, bad)
    np.savez(bad, **{**arrays, "names": arrays["names"][:-1]})
    with pytest.raises(DataFormatError, match=f"{bad}.*do not match"):
        open_split(name, bad)
    with pytest.raises(DataFormatError, match="missing"):
        open_split(name, tmp_path / "absent.npz")


def test_select_rows():
    assert select_rows(None, 3).tolist() == [0, 1, 2]
    assert select_rows([-1, 0], 3).tolist() == [2, 0]
    with pytest.raises(IndexError):
        select_rows([-4], 3)


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_datasets_table_from_markers_and_caches(tiny_caches, tmp_path):
    preprocess_script = _load_script("preprocess")
    render = _load_script("render_datasets")
    names = sorted(TINY)
    markers, infos, probes = [], [], []
    for name in names:
        raw, _ = tiny_caches[name]
        cache = tmp_path / "cache" / name
        preprocess_script.main(name, raw, cache, **TINY[name][1])
        (raw / ".complete").write_text(json.dumps({"seconds": 1.5}))
        markers.append(raw / ".complete")
        infos.append(cache / "preprocess.json")
        probe = {"chance": 50.0, "order": 90.0, "order_time_shuffled": 55.0, "static": 85.0}
        probes.append(tmp_path / f"{name}-probe.json")
        probes[-1].write_text(json.dumps(probe))
    config = {"name": "tiny", "datasets": {n: {"source": "standin"} for n in names}}
    rows = render.main(config, names, markers, infos, probes, tmp_path / "d")
    table = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert [r["dataset"] for r in table] == [DATASETS[n].title for n in names]
    for name, row in zip(names, table, strict=True):
        assert row["train"] == str(
            json.loads((tmp_path / "cache" / name / "split.json").read_text())["splits"]["train"]["n"]
        )
        assert row["generated in s"] == "1.5" and row["data source"].startswith("stand-in")
        assert row["sample (T first)"].startswith(str(list(TINY[name][2])))
        assert int(row["raw files"]) > 0 and float(row["raw MB on disk"]) > 0
    assert rows[0]["order matters (measured)"] == "no (+5.0)"  # 90 beats 85 by less than 10 points
    assert rows[names.index("cifar10_dvs")]["stand-in task"].endswith("differ only in their order")
    text = (tmp_path / "d.md").read_text()
    assert text.startswith("# Datasets (preset `tiny`)") and "MB on disk" in text


def test_timestep_rates_of_the_sensors():
    from bidl.data.catalog import timestep_rate_hz

    assert timestep_rate_hz("dvs128_gesture", {"window_us": 25_000}) == 40.0
    assert timestep_rate_hz("cifar10_dvs", {"window_us": 5_000}) == 200.0
    assert timestep_rate_hz("cifar10_dvs", {"framing": "count"}) is None  # equal-count bins have no duration
    assert timestep_rate_hz("rgb_gesture", {}) == 25.0
    assert timestep_rate_hz("jester", {}, {"stride": 1.5}) == 8.0
    assert timestep_rate_hz("luna16", {}) is None and timestep_rate_hz("imdb", {}) is None
    with pytest.raises(KeyError, match="unknown name"):
        timestep_rate_hz("mnist", {})
