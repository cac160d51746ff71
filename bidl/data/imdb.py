"""IMDB Large Movie Review Dataset: raw reader, a generated stand-in in the original layout, token cache.

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

Stand-in (:func:`generate_standin`): a sentiment task whose label depends on WORD ORDER. Each review holds 3
or 5 sentiment phrases (8 positive, 8 negative words) among Zipf-distributed filler words; a negator ("not",
"never", "hardly") directly before a sentiment word (optionally with an intensifier in between: "not very
good") flips its polarity. The review ends with its verdict, the last phrase, whose effective polarity is the
label ("... not bad." is positive); the earlier phrases are distractors of random polarity, negated or not.
The four verdict forms ("good", "not bad", "bad", "not good") are equally likely, so neither the words of
the review nor their counts give the label away: which word the negator belongs to and which phrase comes
last do. (The reviewer's conclusion at the end is also what the pre-padding keeps next to the network's
last step.)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from bidl.data.cache import CachedSplit
from bidl.data.preprocessing import BadSamples, staged_cache, validation_pick
from bidl.data.staging import staged_replacement
from bidl.errors import ConfigError, DataFormatError
from bidl.io import atomic_savez, atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "LABEL_DIRS",
    "LAYOUT",
    "PAD_ID",
    "SPLITS",
    "TOKEN_PATTERN",
    "IMDBTokens",
    "acl_root",
    "encode",
    "generate_standin",
    "index_reviews",
    "iter_reviews",
    "preprocess",
    "read_review",
    "standin_review",
    "tokenize",
    "unk_id",
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
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    bad = BadSamples(on_bad_sample, unit="reviews")
    interner = _Interner()  # token -> provisional id, in order of first sight
    lookup = interner.__getitem__
    train_ids: list[np.ndarray] = []  # every token of every training review, for the counts
    per_split: dict[str, dict] = {}
    for split in SPLITS:
        index = []
        pids: list[np.ndarray] = []
        lengths: list[int] = []
        for entry in index_reviews(raw_root, split, bad=bad):
            try:
                text = read_review(entry[3])
            except DataFormatError as exc:
                bad.reject(exc, split=split)
                continue
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
        "splits": {},
    }
    with staged_cache(out_dir) as stage:
        for split in SPLITS:
            data = per_split.pop(split)
            index, lengths = data["index"], data["lengths"]
            tokens = np.zeros((len(index), max_len), dtype=np.int16)
            for k, pid in enumerate(data["pids"]):
                tokens[k] = encode(table[pid], max_len)
            labels = np.array([label for _, label, _, _ in index], dtype=np.int64)
            names = np.array([name for name, _, _, _ in index], dtype=str)
            atomic_savez(
                stage / f"{split}.npz",
                tokens=tokens,
                labels=labels,
                ratings=np.array([rating for _, _, rating, _ in index], dtype=np.int8),
                lengths=lengths,
                names=names,
                vocab_size=np.int64(n_words + 2),
            )
            real = tokens[tokens != PAD_ID]
            summary["splits"][split] = {
                "n": len(index),
                "class_counts": np.bincount(labels, minlength=len(LABEL_DIRS)).tolist(),
                "truncated": int((lengths > max_len).sum()),
                "mean_length": float(lengths.mean()) if lengths.size else 0.0,
                "unk_share": float((real == unk_id(n_words)).mean()) if real.size else 0.0,
            }
            if split == "train" and val_fraction is not None:
                summary["val"] = validation_pick(labels, len(LABEL_DIRS), val_fraction, seed, names)
            log.info("%s: tokens %s -> %s", split, tokens.shape, out_dir / f"{split}.npz")
        summary["skipped"] = bad.summary()
        atomic_write_text(stage / "split.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


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


# =========================================================================================================
# The stand-in generator
# =========================================================================================================
POSITIVE_WORDS: tuple[str, ...] = (
    "good", "great", "excellent", "wonderful", "superb", "brilliant", "enjoyable", "delightful",
)  # fmt: skip
NEGATIVE_WORDS: tuple[str, ...] = (
    "bad", "awful", "terrible", "boring", "dull", "poor", "dreadful", "tedious",
)  # fmt: skip
NEGATORS: tuple[str, ...] = ("not", "never", "hardly")
INTENSIFIERS: tuple[str, ...] = ("very", "really", "truly", "quite")
_COMMON_FILLERS: tuple[str, ...] = (
    "the", "a", "and", "of", "to", "is", "in", "it", "this", "that", "was", "as", "with", "for", "movie",
    "film", "but", "on", "you", "he", "his", "are", "have", "be", "one", "all", "at", "they", "by", "an",
    "who", "so", "from", "like", "there", "her", "or", "just", "about", "out", "if", "has", "what", "some",
    "can", "more", "when", "time", "up", "she", "story", "plot", "scene", "actor", "director", "character",
    "ending", "music", "camera", "script", "cast", "role", "series", "show", "book", "audience", "minutes",
)  # fmt: skip
_N_FILLERS = 3000  # filler lexicon size: common words + pseudo-words; Zipf-distributed
_ZIPF_SHIFT = 2.0
_LEXICON_SEED = 20110619  # fixed: the lexicon is the same for every generator seed
_FILLER_LEN = (40, 160)  # filler tokens per review
_N_PHRASES = ((3, 0.6), (5, 0.4))  # sentiment phrases per review, probability
_P_NEGATED = 0.4  # probability that a distractor phrase is negated
_P_INTENSIFIER = 0.25
_P_PERIOD, _P_COMMA, _P_EXCLAIM, _P_BREAK = 1 / 11, 1 / 14, 0.1, 0.15
_RATING_P = {"neg": ((1, 2, 3, 4), (0.4, 0.2, 0.2, 0.2)), "pos": ((7, 8, 9, 10), (0.2, 0.25, 0.2, 0.35))}


def _filler_lexicon() -> tuple[np.ndarray, np.ndarray]:
    """Filler words (most frequent first) and their Zipf probabilities; independent of any seed."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    pseudo = [a + b for a in syllables for b in syllables] + [
        a + b + c for a in syllables[:30] for b in syllables for c in syllables[:10]
    ]
    reserved = set(_COMMON_FILLERS + POSITIVE_WORDS + NEGATIVE_WORDS + NEGATORS + INTENSIFIERS)
    pseudo = [w for w in pseudo if w not in reserved]
    rng = np.random.default_rng(_LEXICON_SEED)
    picked = rng.choice(len(pseudo), size=_N_FILLERS - len(_COMMON_FILLERS), replace=False)
    words = np.array(list(_COMMON_FILLERS) + [pseudo[i] for i in picked])
    p = 1.0 / (np.arange(words.size) + _ZIPF_SHIFT)
    return words, p / p.sum()


_FILLERS, _FILLER_P = _filler_lexicon()


def _phrase_plan(rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray]:
    """Polarities ``[S]`` (+1/-1) of the sentiment words and which are negated ``[S]``; the LAST phrase's
    effective polarity (polarity * (-1 if negated)) is ``label`` (1 = positive), the earlier ones are
    distractors with random polarity and negation.

    The final phrase's word and its negation are drawn as a pair with the right effective polarity, each of
    the four forms ("good", "not bad", "bad", "not good") equally likely, so neither the final word nor the
    presence of a negator alone tells the label.
    """
    sizes, probs = zip(*_N_PHRASES, strict=True)
    n = int(rng.choice(sizes, p=probs))
    polarity = rng.choice([-1, 1], size=n)
    negated = rng.random(n) < _P_NEGATED
    negated[-1] = rng.random() < 0.5
    target = 1 if label == 1 else -1
    polarity[-1] = -target if negated[-1] else target
    return polarity, negated


def standin_review(rng: np.random.Generator, label: int) -> str:
    """One stand-in review text with the given label (1 = positive); see the module docstring.

    Sentences of Zipf-distributed filler words (capitalised, ``.``/``,``/``!``, ``<br /><br />`` paragraph
    breaks) with the distractor phrases (``[negator] [intensifier] word``) inserted at random places and the
    verdict phrase last, closing the review.
    """
    polarity, negated = _phrase_plan(rng, label)
    n = polarity.size
    words = np.where(
        polarity > 0,
        np.array(POSITIVE_WORDS)[rng.integers(len(POSITIVE_WORDS), size=n)],
        np.array(NEGATIVE_WORDS)[rng.integers(len(NEGATIVE_WORDS), size=n)],
    )
    intens = np.where(
        rng.random(n) < _P_INTENSIFIER, np.char.add(np.array(INTENSIFIERS)[rng.integers(4, size=n)], " "), ""
    )
    negs = np.where(negated, np.char.add(np.array(NEGATORS)[rng.integers(len(NEGATORS), size=n)], " "), "")
    phrases = np.char.add(np.char.add(negs, intens), words)
    n_fill = int(rng.integers(_FILLER_LEN[0], _FILLER_LEN[1] + 1))
    fill = _FILLERS[rng.choice(_FILLERS.size, size=n_fill, p=_FILLER_P)]
    tokens = np.insert(
        fill.astype(object), np.sort(rng.integers(0, n_fill + 1, size=n - 1)), phrases[:-1].astype(object)
    )
    tokens = np.append(tokens, phrases[-1])
    u = rng.random(tokens.size)
    ends = np.where(u < _P_PERIOD, np.where(rng.random(tokens.size) < _P_EXCLAIM, "!", "."), "")
    ends = np.where((u >= _P_PERIOD) & (u < _P_PERIOD + _P_COMMA), ",", ends)
    ends[-1] = "."
    sentence_end = (ends != "") & (ends != ",")
    para = sentence_end & (rng.random(tokens.size) < _P_BREAK)
    para[-1] = False
    ends = np.where(para, np.char.add(ends, "<br /><br />"), ends)
    starts = np.concatenate([[True], sentence_end[:-1]])
    tokens = tokens.astype(str)
    tokens[starts] = np.char.capitalize(tokens[starts])
    tokens = np.char.add(tokens, ends)
    return re.sub(r"> ", ">", " ".join(tokens.tolist()))


def _standin_readme(seed: int, n_train: int, n_test: int) -> str:
    return f"""GENERATED STAND-IN for the IMDB Large Movie Review Dataset (aclImdb v1). NOT real reviews.

Written by bidl.data.imdb.generate_standin(seed={seed}, n_train={n_train}, n_test={n_test}) in the layout of
aclImdb_v1.tar.gz: aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt (UTF-8, <br /> paragraph breaks;
pos ratings 7-10, neg 1-4; ids 0.. per folder), half of each split positive. Same arguments -> identical
bytes. No unsup/ folder, imdb.vocab or *.feat files.

The task depends on word order. A review holds 3 or 5 sentiment words (positive: {", ".join(POSITIVE_WORDS)};
negative: {", ".join(NEGATIVE_WORDS)}) among {_FILLER_LEN[0]}-{_FILLER_LEN[1]} filler words drawn from a Zipf
distribution over {_N_FILLERS} words (some common English words, the rest pseudo-words). A negator
({", ".join(NEGATORS)}) right before a sentiment word, optionally with an intensifier in between ("not very
good"), flips its polarity. The review ends with its verdict: the label is the flipped polarity of the
LAST sentiment phrase ("... not bad." is positive); the earlier phrases are distractors of random polarity,
negated or not. The four verdict forms ("good", "not bad", "bad", "not good") are equally likely, so the
words of a review and their counts do not give the label away; which word a negator belongs to and which
phrase comes last do.
"""


def generate_standin(raw_root: str | Path, *, n_train: int = 4000, n_test: int = 2000, seed: int = 0) -> Path:
    """Write a generated IMDB stand-in in the aclImdb layout (:func:`standin_review`, module docstring).

    Writes ``raw_root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` (``n_train`` / ``n_test`` reviews,
    half positive) and ``raw_root/aclImdb/README``. Everything goes into a temporary sibling folder that then
    replaces ``raw_root`` (an existing one is swapped out and removed). Same arguments -> identical bytes.
    Default: 6000 reviews, about 3.7 MB, generated in a few seconds.

    Returns:
        ``raw_root``.
    """
    raw_root = Path(raw_root)
    if n_train < 2 or n_test < 2:
        raise ValueError(f"n_train and n_test must be >= 2, got {n_train}, {n_test}")
    with staged_replacement(raw_root) as tmp:
        acl = tmp / "aclImdb"
        for split_index, (split, n) in enumerate((("train", n_train), ("test", n_test))):
            for label, label_dir in enumerate(LABEL_DIRS):
                folder = acl / split / label_dir
                folder.mkdir(parents=True)
                rng = np.random.default_rng(np.random.SeedSequence([seed, split_index, label]))
                count = n // 2 if label == 0 else n - n // 2
                values, probs = _RATING_P[label_dir]
                ratings = rng.choice(values, size=count, p=probs)
                for i in range(count):
                    text = standin_review(rng, label)
                    (folder / f"{i}_{ratings[i]}.txt").write_text(text, encoding="utf-8")
        (acl / "README").write_text(_standin_readme(seed, n_train, n_test), encoding="utf-8")
    return raw_root
