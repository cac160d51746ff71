"""IMDB Large Movie Review Dataset: raw reader, tokeniser, vocabulary and token cache.

Raw layout read by :func:`index_reviews` / :func:`iter_reviews` (the same loader serves the real release
``aclImdb_v1.tar.gz`` and the stand-in)::

    raw_root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt    one UTF-8 review (raw_root may also be
                                                                 the aclImdb folder itself)

pos reviews have ratings 7..10, neg reviews 1..4 (out of 10). ``train/unsup/`` (unlabelled reviews) and the
other files of the release (``imdb.vocab``, ``*.feat``, ``urls_*.txt``, ``README``) are not used. Label:
0 = neg, 1 = pos. The split is the dataset's own (25,000 train / 25,000 test, disjoint movies).

Preprocessing (:func:`preprocess`, after BIDL's ``datasets/pre_imdb.py``, which merges train and test and
draws an unseeded 75/25 split; here the official split is kept and nothing is random unless a seeded
validation subset is asked for):

- text: ``<br />`` tags (any ``<br>``, ``<br/>``, ``<br />`` spelling) replaced by a space, then lowercased;
- tokens (:func:`tokenize`, regex :data:`TOKEN_PATTERN`): a run of word characters (Unicode letters, digits,
  underscore) optionally joined by apostrophes (``don't``, ``director's``), or one single punctuation
  character (any other non-space character), e.g. ``"Not good!"`` -> ``["not", "good", "!"]``. (BIDL splits
  on white space only, so ``good!`` and ``good`` are different words there.)
- vocabulary: the ``n_words = 999`` most frequent tokens of the TRAINING reviews (ties: the token that sorts
  first by code point wins); ids ``0 = <pad>``, ``1..999`` = the words by decreasing frequency,
  ``1000 = <unk>`` (every other token). The id space is always ``n_words + 2 = 1001`` (the authors'
  ``Embedding(1001, ...)``), even if the training reviews have fewer distinct tokens.
- length: pre-padded with 0 / truncated to ``max_len = 500`` tokens keeping the END of the review (Keras
  ``pad_sequences`` defaults ``padding="pre", truncating="pre"``: the network reads the last time step, so
  the last 500 tokens, which hold the reviewer's conclusion, are kept next to it).

Stand-in: :mod:`bidl.data.standins.imdb` (a generated copy in the real layout); its entry points
:data:`INTENSIFIERS`, :data:`NEGATIVE_WORDS`, :data:`NEGATORS`, :data:`POSITIVE_WORDS`,
:func:`generate_standin`, :func:`standin_review` are importable from here."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from bidl.data.cache import CachedSplit
from bidl.data.preprocessing import BadSamples, SplitCache, check_fraction, write_split_cache
from bidl.data.standins import lazy_exports
from bidl.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_STANDIN_EXPORTS = (
    "INTENSIFIERS",
    "NEGATIVE_WORDS",
    "NEGATORS",
    "POSITIVE_WORDS",
    "generate_standin",
    "standin_review",
)
"""Names of :mod:`bidl.data.standins.imdb` that this module gives (imported on first use)."""
__getattr__ = lazy_exports(__name__, "imdb", _STANDIN_EXPORTS)

__all__ = [
    "LABEL_DIRS",
    "LAYOUT",
    "PAD_ID",
    "SPLITS",
    "TOKEN_PATTERN",
    "IMDBTokens",
    "acl_root",
    "encode",
    "index_reviews",
    "iter_reviews",
    "preprocess",
    "read_review",
    "tokenize",
    "unk_id",
    *_STANDIN_EXPORTS,
]

LAYOUT = "aclimdb"
"""Name of the raw layout (``Source.layout`` of the Stanford source)."""
SPLITS = ("train", "test")
LABEL_DIRS = ("neg", "pos")
"""Label folders; index = label (0 = negative, 1 = positive)."""
_OTHER_DIRS = ("unsup",)  # real, unlabelled: skipped
_RATINGS = {"neg": (1, 4), "pos": (7, 10)}
PAD_ID = 0
N_WORDS = 999
MAX_LEN = 500

TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
"""A token: word characters joined by apostrophes, or one punctuation character (applied to lowercased
text)."""
_TOKEN_RE = re.compile(TOKEN_PATTERN)
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_FILE_RE = re.compile(r"^(?P<id>\d+)_(?P<rating>\d+)\.txt$")


def unk_id(n_words: int = N_WORDS) -> int:
    """Id of ``<unk>``: ``n_words + 1`` (1000 for the default 999 words; the vocabulary size is 1001)."""
    return n_words + 1


# =========================================================================================================
# Reading the raw layout
# =========================================================================================================
def acl_root(raw_root: str | Path) -> Path:
    """The folder holding ``train/`` and ``test/``: ``raw_root/aclImdb`` if it exists, else ``raw_root``."""
    raw_root = Path(raw_root)
    inner = raw_root / "aclImdb"
    return inner if inner.is_dir() else raw_root


def index_reviews(
    raw_root: str | Path, split: str, *, bad: BadSamples | None = None
) -> list[tuple[str, int, int, Path]]:
    """List the labelled reviews of one split from the file names only.

    Args:
        raw_root: the raw copy (``raw_root/aclImdb`` or the aclImdb folder itself).
        split: ``"train"`` or ``"test"``.
        bad: where a review file with a bad name goes (:class:`bidl.data.preprocessing.BadSamples`:
            raised, or skipped and recorded); without it, it raises.

    Returns:
        ``(name, label, rating, path)`` ordered neg then pos, each by numeric id; ``name`` is
        ``"<split>/<pos|neg>/<id>_<rating>"``. Hidden files (starting with ``.``) are ignored.

    Raises:
        ConfigError: an unknown split.
        DataFormatError: a missing split or label folder, an unknown folder in the split (other than
            ``pos``, ``neg``, ``unsup``), and, unless ``bad`` skips them, a file name not matching
            ``<id>_<rating>.txt``, a rating outside 1..10 or one that does not fit its folder (pos needs
            7..10, neg 1..4).
    """
    bad = BadSamples() if bad is None else bad  # none given: the "error" policy, which raises
    if split not in SPLITS:
        raise ConfigError(f"split: {split!r} is not one of {SPLITS}")
    folder = acl_root(raw_root) / split
    if not folder.is_dir():
        raise DataFormatError(
            folder, f"IMDB {split} folder is missing (expected aclImdb/{split}/{{pos,neg}})"
        )
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in LABEL_DIRS + _OTHER_DIRS and not entry.name.startswith("."):
            raise DataFormatError(entry, f"unknown label folder (expected {', '.join(LABEL_DIRS)})")
    out: list[tuple[str, int, int, Path]] = []
    for label, label_dir in enumerate(LABEL_DIRS):
        sub = folder / label_dir
        if not sub.is_dir():
            raise DataFormatError(sub, f"IMDB label folder {split}/{label_dir} is missing")
        lo, hi = _RATINGS[label_dir]
        found = []
        for path in sub.iterdir():
            if path.name.startswith("."):
                continue
            match = _FILE_RE.match(path.name)
            problem = None
            if match is None or not path.is_file():
                problem = "review file name must be <id>_<rating>.txt"
            elif not 1 <= int(match["rating"]) <= 10:
                problem = f"rating {int(match['rating'])} is outside 1..10"
            elif not lo <= int(match["rating"]) <= hi:
                problem = f"rating {int(match['rating'])} does not fit folder {label_dir!r} ({lo}..{hi})"
            if problem is not None:
                bad.reject(DataFormatError(path, problem), split=split)
                continue
            found.append((int(match["id"]), int(match["rating"]), path))
        out.extend((f"{split}/{label_dir}/{p.stem}", label, r, p) for _, r, p in sorted(found))
    return out


def read_review(path: str | Path) -> str:
    """The text of one review file: UTF-8, ``<br />`` tags replaced by spaces, outer white space stripped.

    Raises:
        DataFormatError: unreadable file, bytes that are not UTF-8 (a binary file, another encoding, or a
            file cut inside a character), NUL bytes (a binary file), or an empty review.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read review: {exc}") from exc
    if not raw:
        raise DataFormatError(path, "empty review (0 bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = " (the file ends inside a character: truncated)" if exc.end == len(raw) else ""
        raise DataFormatError(path, f"not UTF-8 at byte {exc.start}: {exc.reason}{cut}") from exc
    if "\0" in text:
        raise DataFormatError(path, f"NUL byte at byte {raw.index(0)}: a binary file, not a text review")
    text = _BR_RE.sub(" ", text).strip()
    if not text:
        raise DataFormatError(path, "empty review")
    return text


def iter_reviews(raw_root: str | Path, split: str) -> Iterator[tuple[str, int, int, str]]:
    """Yield ``(name, label, rating, text)`` for every labelled review of a split (order of
    :func:`index_reviews`; text from :func:`read_review`)."""
    for name, label, rating, path in index_reviews(raw_root, split):
        yield name, label, rating, read_review(path)


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into tokens (:data:`TOKEN_PATTERN`); ``<br />`` tags become spaces.

    Example:
        >>> tokenize("It's NOT good!<br /><br />Really.")
        ["it's", 'not', 'good', '!', 'really', '.']
    """
    return _TOKEN_RE.findall(_BR_RE.sub(" ", text).lower())


# =========================================================================================================
# Vocabulary and encoding
# =========================================================================================================
class _Interner(dict):
    """token -> provisional id, assigning the next id to a token on first sight (C-level ``map`` lookups)."""

    def __missing__(self, token: str) -> int:
        value = len(self)
        self[token] = value
        return value


def _build_vocabulary(tokens: Sequence[str], counts: np.ndarray, n_words: int) -> np.ndarray:
    """Provisional ids of the ``n_words`` most frequent tokens (count desc, then token asc), count > 0."""
    seen = np.flatnonzero(counts > 0)
    names = np.array([tokens[i] for i in seen], dtype=str) if seen.size else np.zeros(0, dtype=str)
    order = np.lexsort((names, -counts[seen]))
    return seen[order[:n_words]]


def encode(ids: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Pre-pad with ``0`` / truncate 1-D ids to ``max_len``, keeping the END: int16 ``[max_len]``."""
    out = np.zeros(max_len, dtype=np.int16)
    tail = ids[-max_len:] if ids.size else ids
    if tail.size:
        out[max_len - tail.size :] = tail
    return out


# =========================================================================================================
# Preprocessing
# =========================================================================================================
def preprocess(
    raw_root: str | Path,
    out_dir: str | Path,
    *,
    n_words: int = N_WORDS,
    max_len: int = MAX_LEN,
    val_fraction: float | None = None,
    seed: int = 0,
    on_bad_sample: str = "error",
) -> dict:
    """Tokenise every labelled review, build the training vocabulary and cache fixed-length id sequences.

    See the module docstring for the tokeniser, the vocabulary (``n_words`` words from the training reviews
    only; ``0 = <pad>``, ``n_words + 1 = <unk>``) and the padding (pre-pad, keep the last ``max_len``).

    ``on_bad_sample`` (:mod:`bidl.data.preprocessing`): ``"error"`` stops at the first bad review file (empty,
    not UTF-8, binary, or a name that is not ``<id>_<rating>.txt`` with a rating in 1..10 fitting its
    folder); ``"skip"`` leaves it out (also out of the vocabulary's counts) and lists it in split.json's
    ``skipped``. A missing split or label folder and an unknown folder are fatal under both policies.

    Writes, into a temporary folder whose files replace those of ``out_dir`` only when all are written
    (:func:`bidl.data.preprocessing.staged_cache`: no partial cache on failure):

    - ``out_dir/train.npz``, ``out_dir/test.npz`` (compressed): ``tokens`` int16 ``[N, max_len]``,
      ``labels`` int64 ``[N]`` (0 = neg, 1 = pos), ``ratings`` int8 ``[N]`` (1..10), ``lengths`` int32
      ``[N]`` (tokens before padding / truncation), ``names`` str ``[N]`` and ``vocab_size`` (int64 scalar,
      ``n_words + 2``).
    - ``out_dir/split.json``: parameters, the tokeniser, special ids, the vocabulary (``vocabulary[k]`` has
      id ``k + 1``) with its training counts, per split the counts per class, truncated reviews and the
      ``<unk>`` share, the skipped files (``skipped``: ``n``, ``samples`` with path and problem), and, if
      ``val_fraction`` is set, a validation subset of the training reviews drawn per class with ``seed``
      (``val.train_indices`` index rows of train.npz, which still holds them all).

    Raises:
        DataFormatError: malformed raw files (named), or a split whose every review was skipped (naming
            the raw root).
        ConfigError: non-positive ``n_words`` / ``max_len``, an unknown on_bad_sample or a val_fraction
            outside (0, 1).

    Returns:
        The content of split.json.
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    if n_words < 1 or max_len < 1:
        raise ConfigError(f"n_words and max_len must be positive, got {n_words}, {max_len}")
    if n_words + 1 > np.iinfo(np.int16).max:
        raise ConfigError(f"n_words: {n_words} ids do not fit the int16 cache")
    check_fraction("val_fraction", val_fraction)
    bad = BadSamples(on_bad_sample, unit="reviews")
    interner = _Interner()  # token -> provisional id, in order of first sight
    lookup = interner.__getitem__
    train_ids: list[np.ndarray] = []  # every token of every training review, for the counts
    per_split: dict[str, dict] = {}
    for split in SPLITS:
        index = []
        pids: list[np.ndarray] = []
        lengths: list[int] = []
        reviews = bad.screen(
            index_reviews(raw_root, split, bad=bad), lambda e: read_review(e[3]), split=split
        )
        for entry, text in reviews:
            tokens = tokenize(text)
            ids = np.fromiter(map(lookup, tokens), dtype=np.int32, count=len(tokens))
            index.append(entry)
            lengths.append(ids.size)
            if split == "train":
                train_ids.append(ids)
            pids.append(ids[-max_len:])
        bad.check_split(raw_root, split, len(index))
        per_split[split] = {"index": index, "pids": pids, "lengths": np.array(lengths, dtype=np.int32)}
        log.info("%s: %d reviews read, %d distinct tokens so far", split, len(index), len(interner))
    tokens_by_pid = list(interner)
    all_train = np.concatenate(train_ids) if train_ids else np.zeros(0, dtype=np.int32)
    counts = np.bincount(all_train, minlength=len(tokens_by_pid)).astype(np.int64)
    del train_ids, all_train
    vocab_pids = _build_vocabulary(tokens_by_pid, counts, n_words)
    table = np.full(len(tokens_by_pid), unk_id(n_words), dtype=np.int16)
    table[vocab_pids] = np.arange(1, vocab_pids.size + 1, dtype=np.int16)

    summary: dict = {
        "dataset": "IMDB (aclImdb v1)",
        "layout": LAYOUT,
        "raw_root": str(raw_root),
        "split_source": "the dataset's own: aclImdb/train and aclImdb/test (pos and neg folders)",
        "params": {
            "n_words": n_words,
            "max_len": max_len,
            "val_fraction": val_fraction,
            "seed": seed,
            "on_bad_sample": on_bad_sample,
        },
        "tokenizer": {
            "steps": "replace <br /> tags by spaces, lowercase, regex findall",
            "pattern": TOKEN_PATTERN,
        },
        "padding": "pre-pad with <pad>; longer reviews keep their last max_len tokens",
        "special_ids": {"<pad>": PAD_ID, "<unk>": unk_id(n_words)},
        "vocab_size": n_words + 2,
        "vocabulary": [tokens_by_pid[p] for p in vocab_pids],
        "vocabulary_counts": counts[vocab_pids].tolist(),
        "class_names": list(LABEL_DIRS),
    }

    def build(split: str) -> SplitCache:
        data = per_split.pop(split)
        index, lengths = data["index"], data["lengths"]
        tokens = np.zeros((len(index), max_len), dtype=np.int16)
        for k, pid in enumerate(data["pids"]):
            tokens[k] = encode(table[pid], max_len)
        arrays = {
            "tokens": tokens,
            "labels": np.array([label for _, label, _, _ in index], dtype=np.int64),
            "ratings": np.array([rating for _, _, rating, _ in index], dtype=np.int8),
            "lengths": lengths,
            "names": np.array([name for name, _, _, _ in index], dtype=str),
            "vocab_size": np.int64(n_words + 2),
        }
        real = tokens[tokens != PAD_ID]
        info = {
            "truncated": int((lengths > max_len).sum()),
            "mean_length": float(lengths.mean()) if lengths.size else 0.0,
            "unk_share": float((real == unk_id(n_words)).mean()) if real.size else 0.0,
        }
        log.info("%s: tokens %s -> %s", split, tokens.shape, out_dir / f"{split}.npz")
        return SplitCache(arrays, info)

    return write_split_cache(
        out_dir, summary, bad, SPLITS, build, val_fraction=val_fraction, seed=seed, ensure_ascii=False
    )


class IMDBTokens(CachedSplit):
    """One cached split (``train.npz`` / ``test.npz`` from :func:`preprocess`), held in memory.

    ``dataset[i]`` is ``(tokens, label)``: int64 ``[max_len]`` ids (500 by default; 0 = ``<pad>`` at the
    front, ``vocab_size - 1`` = ``<unk>``) and an int label (0 = negative, 1 = positive). :attr:`tokens` holds
    the exposed reviews as int64 ``[N, max_len]``, :attr:`vocab_size` the id space (1001 by default).
    Arguments, :attr:`labels`, :attr:`names` and errors: see :class:`bidl.data.cache.CachedSplit`.
    """

    KEYS = ("tokens", "vocab_size")
    KIND = "token"
    N_CLASSES = 2

    def _validate(self, arrays: dict[str, np.ndarray]) -> int:
        tokens, vocab_size = arrays["tokens"], int(arrays["vocab_size"])
        if tokens.ndim != 2 or tokens.dtype.kind not in "iu":
            raise DataFormatError(
                self.path, f"tokens must be integer [N, L], got {tokens.dtype} {tokens.shape}"
            )
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            raise DataFormatError(self.path, f"token ids outside 0..{vocab_size - 1}")
        return tokens.shape[0]

    def _store(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.tokens = torch.from_numpy(arrays["tokens"][rows].astype(np.int64))
        self.vocab_size = int(arrays["vocab_size"])

    def _sample(self, i: int) -> torch.Tensor:
        return self.tokens[i]
