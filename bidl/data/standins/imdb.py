"""Generated stand-in of the IMDB Large Movie Review Dataset in the aclImdb layout.

A sentiment task whose label depends on WORD ORDER. Each review holds 3
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

import re
from pathlib import Path

import numpy as np

from bidl.data.imdb import LABEL_DIRS
from bidl.data.staging import staged_replacement

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
