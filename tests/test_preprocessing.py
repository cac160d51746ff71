"""The shared parts of the datasets' ``preprocess``: BadSamples.screen, check_fraction, write_split_cache."""

import json

import numpy as np
import pytest

from bidl.data.preprocessing import BadSamples, SplitCache, check_fraction, validation_pick, write_split_cache
from bidl.errors import ConfigError, DataFormatError


def _read(item: str) -> int:
    if item.startswith("bad"):
        raise DataFormatError(item, "unreadable")
    return len(item)


def test_screen_yields_the_readable_items_and_skips_the_others_with_their_loss():
    bad = BadSamples("skip", unit="files")
    got = list(bad.screen(["a", "bad1", "ccc", "bad22"], _read, split="train", lost=lambda item: len(item)))
    assert got == [("a", 1), ("ccc", 3)]
    assert [(e["path"], e["lost"]) for e in bad.entries] == [("bad1", 4), ("bad22", 5)]
    assert bad.count("train") == 2 and bad.lost() == 9


def test_screen_raises_the_first_bad_item_under_error_and_not_the_callers_errors():
    with pytest.raises(DataFormatError, match="bad1"):
        list(BadSamples("error").screen(["a", "bad1", "ccc"], _read, split="train"))
    bad = BadSamples("skip")
    with pytest.raises(DataFormatError, match="raised by the caller"):
        for item, _ in bad.screen(["a", "b"], _read, split="train"):
            raise DataFormatError(item, "raised by the caller")
    assert bad.entries == []


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5])
def test_check_fraction_names_the_parameter(value):
    with pytest.raises(ConfigError, match=rf"^val_fraction: must be in \(0, 1\), got {value}$"):
        check_fraction("val_fraction", value)
    check_fraction("val_fraction", None)
    check_fraction("val_fraction", 0.5)


def _build(split: str) -> SplitCache:
    labels = np.array([0, 1, 1, 2, 1] if split == "train" else [2, 2], dtype=np.int64)
    names = np.array([f"{split}{i}" for i in range(labels.size)])
    arrays = {"x": np.arange(labels.size, dtype=np.int16), "labels": labels, "names": names}
    return SplitCache(arrays, {"names": names.tolist()})


def test_write_split_cache_writes_the_arrays_and_the_summary_in_order(tmp_path):
    bad = BadSamples("skip")
    bad.reject(DataFormatError("raw/t.bin", "empty"), split="test")
    summary = {"dataset": "toy", "class_names": ["a", "b", "c"]}
    out = write_split_cache(
        tmp_path / "cache", summary, bad, ("train", "test"), _build, val_fraction=0.5, seed=3
    )
    text = (tmp_path / "cache" / "split.json").read_text()
    assert text == json.dumps(out, indent=1) + "\n"
    assert list(json.loads(text)) == ["dataset", "class_names", "splits", "val", "skipped"]
    assert out["splits"]["train"] == {
        "n": 5,
        "class_counts": [1, 3, 1],
        "names": ["train0", "train1", "train2", "train3", "train4"],
    }
    assert out["splits"]["test"] == {"n": 2, "class_counts": [0, 0, 2], "names": ["test0", "test1"]}
    train = _build("train").arrays
    assert out["val"] == validation_pick(train["labels"], 3, 0.5, 3, train["names"])
    assert out["skipped"]["n"] == 1 and out["skipped"]["samples"][0]["path"] == "raw/t.bin"
    with np.load(tmp_path / "cache" / "test.npz") as npz:
        assert npz.files == ["x", "labels", "names"]
        np.testing.assert_array_equal(npz["labels"], [2, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # the staging folder is gone


def test_write_split_cache_writes_nothing_when_a_split_fails(tmp_path):
    def build(split: str) -> SplitCache:
        if split == "test":
            raise DataFormatError("raw/test", "every sample is bad")
        return _build(split)

    with pytest.raises(DataFormatError, match="every sample is bad"):
        write_split_cache(
            tmp_path / "cache", {"class_names": ["a", "b", "c"]}, BadSamples(), ("train", "test"), build
        )
    assert list(tmp_path.iterdir()) == []


def test_write_split_cache_refuses_arrays_without_labels_or_names(tmp_path):
    def build(split: str) -> SplitCache:
        return SplitCache({"x": np.zeros(2), "labels": np.zeros(2, np.int64)}, {})

    with pytest.raises(ValueError, match=r"train: the cache arrays built lack \['names'\]"):
        write_split_cache(tmp_path / "cache", {"class_names": ["a"]}, BadSamples(), ("train",), build)
    assert not (tmp_path / "cache").exists()
