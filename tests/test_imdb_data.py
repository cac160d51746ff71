"""IMDB: the aclImdb reader, tokeniser and vocabulary, the stand-in generator and the token cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bidl.data.imdb import (
    INTENSIFIERS,
    NEGATIVE_WORDS,
    NEGATORS,
    POSITIVE_WORDS,
    IMDBTokens,
    generate_standin,
    index_reviews,
    iter_reviews,
    preprocess,
    standin_review,
    tokenize,
)
from bidl.errors import DataFormatError

SMALL = {"n_train": 24, "n_test": 10, "seed": 5}


def _write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / "aclImdb" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    """Four training and two test reviews; token counts worked out in the tests below."""
    root = tmp_path / "raw"
    _write(root, "train/pos/3_10.txt", "Good, GOOD good!<br /><br />Great film.")
    _write(root, "train/pos/1_7.txt", "good")
    _write(root, "train/neg/2_1.txt", "Bad film. Not good.")
    _write(root, "train/neg/10_4.txt", "awful\n")
    _write(root, "train/unsup/0_0.txt", "zebra zebra zebra zebra zebra")  # unlabelled: not read
    _write(root, "train/urls_pos.txt", "http://example.invalid\n")  # other release files: ignored
    _write(root, "test/pos/0_9.txt", "good zebra")
    _write(root, "test/neg/0_2.txt", "bad")
    return root


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("imdb") / "raw", **SMALL)


# ---------------------------------------------------------------------------------------------------------
# Reader and tokeniser
# ---------------------------------------------------------------------------------------------------------
def test_tokenizer_lowercases_strips_br_and_splits_punctuation():
    assert tokenize("It's NOT good!<br /><br />Really...") == [
        "it's", "not", "good", "!", "really", ".", ".", ".",
    ]  # fmt: skip


def test_reader_lists_labels_ratings_in_numeric_id_order(tiny):
    index = index_reviews(tiny, "train")
    assert [(name, label, rating) for name, label, rating, _ in index] == [
        ("train/neg/2_1", 0, 1),
        ("train/neg/10_4", 0, 4),
        ("train/pos/1_7", 1, 7),
        ("train/pos/3_10", 1, 10),
    ]
    texts = [text for *_, text in iter_reviews(tiny / "aclImdb", "train")]  # the aclImdb folder itself works
    assert texts[1] == "awful" and texts[3] == "Good, GOOD good!  Great film."


def test_preprocess_hand_computed_ids_padding_and_truncation(tiny, tmp_path):
    # training tokens: good x5, "." x3, film x2, then "!", ",", awful, bad, great, not once each
    out = tmp_path / "cache"
    summary = preprocess(tiny, out, max_len=4)
    assert summary["vocabulary"] == ["good", ".", "film", "!", ",", "awful", "bad", "great", "not"]
    assert summary["vocabulary_counts"] == [5, 3, 2, 1, 1, 1, 1, 1, 1]
    assert summary["special_ids"] == {"<pad>": 0, "<unk>": 1000} and summary["vocab_size"] == 1001
    with np.load(out / "train.npz") as npz:
        assert npz["tokens"].dtype == np.int16 and npz["tokens"].shape == (4, 4)
        np.testing.assert_array_equal(npz["tokens"][1], [0, 0, 0, 6])  # "awful", pre-padded
        np.testing.assert_array_equal(npz["tokens"][3], [4, 8, 3, 2])  # last 4 of 8: "! great film ."
        np.testing.assert_array_equal(npz["labels"], [0, 0, 1, 1])
        np.testing.assert_array_equal(npz["lengths"], [6, 1, 1, 8])
        np.testing.assert_array_equal(npz["ratings"], [1, 4, 7, 10])
    test = IMDBTokens(out / "test.npz")
    tokens, label = test[1]
    assert tokens.dtype == torch.int64 and tokens.tolist() == [0, 0, 1, 1000] and label == 1  # zebra: <unk>
    assert test.names == ["test/neg/0_2", "test/pos/0_9"] and test.vocab_size == 1001


def test_small_vocabulary_maps_the_rest_to_unk(tiny, tmp_path):
    summary = preprocess(tiny, tmp_path / "cache", n_words=3, max_len=4)
    assert summary["vocabulary"] == ["good", ".", "film"] and summary["special_ids"]["<unk>"] == 4
    train = IMDBTokens(tmp_path / "cache" / "train.npz")
    assert train[0][0].tolist() == [2, 4, 1, 2]  # ". not good ." with "not" unknown
    assert train.vocab_size == 5


@pytest.mark.parametrize(
    ("rel", "content", "message"),
    [
        ("train/pos/7_8.txt", " <br /><br />\n", "7_8.txt: empty review"),
        ("train/pos/review.txt", "fine", "review.txt: review file name"),
        ("train/neg/4_7.txt", "meh", "4_7.txt: rating 7 does not fit"),
        ("train/pos/5_9.txt", b"caf\xe9 ok", "5_9.txt: not UTF-8"),
        ("train/neutral/0_5.txt", "hmm", "neutral: unknown label folder"),
    ],
)
def test_malformed_reviews_raise_naming_the_file(tiny, tmp_path, rel, content, message):
    _write(tiny, rel, content)
    with pytest.raises(DataFormatError, match=message):
        preprocess(tiny, tmp_path / "cache")
    assert not (tmp_path / "cache" / "train.npz").exists()


def test_missing_split_folder_raises_naming_it(tiny):
    for path in sorted((tiny / "aclImdb" / "test").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tiny / "aclImdb" / "test").rmdir()
    with pytest.raises(DataFormatError, match=r"aclImdb/test: IMDB test folder is missing"):
        index_reviews(tiny, "test")


# ---------------------------------------------------------------------------------------------------------
# Stand-in
# ---------------------------------------------------------------------------------------------------------
def test_standin_has_aclimdb_layout_and_is_read_by_the_reader(small_standin):
    assert (small_standin / "aclImdb" / "README").read_text().startswith("GENERATED STAND-IN")
    for split, n in (("train", SMALL["n_train"]), ("test", SMALL["n_test"])):
        reviews = list(iter_reviews(small_standin, split))
        assert len(reviews) == n
        assert [label for _, label, _, _ in reviews].count(1) == n // 2
        assert all((rating >= 7) == (label == 1) for _, label, rating, _ in reviews)


def test_standin_is_deterministic_bytes_for_a_seed(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_standin / rel).read_bytes() == (again / rel).read_bytes() for rel in files)
    other = generate_standin(tmp_path / "other", **{**SMALL, "seed": 6})
    texts = [text for *_, text in iter_reviews(small_standin, "train")]
    assert texts != [text for *_, text in iter_reviews(other, "train")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temporary folders left


def _effective_label(tokens: list[str]) -> int:
    """The stand-in's rule: the last sentiment word decides; a negator before it (an intensifier may sit
    between) flips it."""
    score = 0
    for i, tok in enumerate(tokens):
        polarity = 1 if tok in POSITIVE_WORDS else -1 if tok in NEGATIVE_WORDS else 0
        if polarity:
            before = tokens[max(i - 2, 0) : i]
            negated = bool(before) and (
                before[-1] in NEGATORS
                or (before[-1] in INTENSIFIERS and len(before) == 2 and before[0] in NEGATORS)
            )
            score = -polarity if negated else polarity
    assert score != 0
    return int(score > 0)


def test_standin_label_follows_the_negated_verdict_and_bags_collide():
    rng = np.random.default_rng(0)
    bags: dict[tuple, set[int]] = {}
    last_word_agrees = 0
    for k in range(400):
        label = k % 2
        tokens = tokenize(standin_review(rng, label))
        assert _effective_label(tokens) == label
        last = [t for t in tokens if t in POSITIVE_WORDS + NEGATIVE_WORDS][-1]
        last_word_agrees += (last in POSITIVE_WORDS) == (label == 1)
        negators = [i for i, t in enumerate(tokens) if t in NEGATORS]
        follow = [tokens[i + 1] for i in negators]
        assert all(t in POSITIVE_WORDS + NEGATIVE_WORDS + INTENSIFIERS for t in follow)
        pos = sum(t in POSITIVE_WORDS for t in tokens)
        neg = sum(t in NEGATIVE_WORDS for t in tokens)
        bags.setdefault((pos, neg, len(negators)), set()).add(label)
    # the same sentiment bag (counts of positive, negative words and negators) occurs with both labels
    shared = [bag for bag, labels in bags.items() if labels == {0, 1}]
    assert len(shared) >= 8
    # the verdict's word alone, without its negator, is no better than a coin
    assert 0.4 <= last_word_agrees / 400 <= 0.6


def test_preprocess_standin_shapes_and_dataset(small_standin, tmp_path):
    out = tmp_path / "cache"
    summary = preprocess(small_standin, out, val_fraction=0.25, seed=3)
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.npz", "train.npz"]
    assert json.loads((out / "split.json").read_text()) == summary
    assert summary["splits"]["train"]["class_counts"] == [12, 12] and summary["splits"]["test"]["n"] == 10
    assert len(summary["val"]["train_indices"]) == 6  # 3 of each class
    with np.load(out / "train.npz") as npz:
        assert npz["tokens"].shape == (24, 500) and npz["tokens"].dtype == np.int16
        assert npz["labels"].dtype == np.int64 and int(npz["vocab_size"]) == 1001
        assert (npz["tokens"][:, 0] == 0).all() and (npz["tokens"][:, -1] != 0).all()  # pre-padded
    val = IMDBTokens(out / "train.npz", indices=summary["val"]["train_indices"])
    tokens, label = val[0]
    assert len(val) == 6 and tokens.shape == (500,) and tokens.dtype == torch.int64 and label in (0, 1)
    assert val.names == summary["val"]["names"]


def test_dataset_missing_or_malformed_cache_raises_naming_it(tmp_path):
    with pytest.raises(DataFormatError, match="absent.npz"):
        IMDBTokens(tmp_path / "absent.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, tokens=np.full((2, 5), 7), labels=np.zeros(2, int), names=["a", "b"], vocab_size=5)
    with pytest.raises(DataFormatError, match="wrong.npz.*token ids outside"):
        IMDBTokens(wrong)


def test_stanford_source_matches_the_reader_layout():
    from bidl.data.imdb import LAYOUT
    from bidl.data.sources import get_source

    src = get_source("imdb", "stanford")
    (archive,) = src.files
    assert not src.manual and src.layout == LAYOUT and archive.name == "aclImdb_v1.tar.gz"
    assert archive.md5 == "7c2ac02c03563afcf9b574c7e56c153a" and archive.size == 84125825
    assert archive.sha256 == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
