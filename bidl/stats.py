"""Summaries and paired comparisons of results repeated over training seeds.

An experiment trained with seeds ``0..n-1`` on a fixed data split gives ``n`` accuracies. :func:`summarize`
reports their mean, sample standard deviation and the Student-t confidence interval of the mean;
:func:`compare_paired` compares two configurations seed by seed (seed ``k`` of A against seed ``k`` of B)
and says whether the mean difference is distinguishable from zero. :func:`describe` and
:func:`describe_comparison` render both as the short plain text of a table cell or of the sentence under a
table. ``docs/statistics.md`` explains what these numbers do and do not mean.

Example:
    >>> from bidl.stats import compare_paired, describe, describe_comparison, summarize
    >>> describe(summarize([84.0, 85.5, 83.1]))
    '84.2 +- 1.2 (95 % CI 81.2-87.2, n = 3)'
    >>> describe_comparison(compare_paired([84.0, 85.5, 83.1], [86.0, 86.9, 85.4]))
    '+1.9 points (95 % CI 0.8-3.0, paired t over 3 seeds, p = 0.02): different at 95 %'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

__all__ = [
    "Summary",
    "Comparison",
    "METHODS",
    "summarize",
    "compare_paired",
    "describe",
    "describe_comparison",
    "seed_columns",
    "seed_cells",
    "seeds_cell",
    "compare_seeds",
    "verdict_cell",
    "verdict_summary",
]

METHODS = ("t", "bootstrap")


@dataclass(frozen=True)
class Summary:
    """The summary of ``n`` repeated results.

    Attributes:
        n: the number of results.
        mean: their mean.
        sd: their sample standard deviation (divisor ``n - 1``); None when ``n == 1``.
        low, high: the Student-t confidence interval of the mean at ``confidence``; None when ``n == 1``.
        confidence: the interval's confidence level, e.g. 0.95.
    """

    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None
    confidence: float


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of two configurations over the same seeds; differences are ``b - a``.

    Attributes:
        n: the number of pairs (seeds).
        mean_difference: the mean of ``b[k] - a[k]``; positive when B scores higher.
        low, high: the confidence interval of the mean difference at ``confidence``.
        p_value: the two-sided paired t-test p-value (``method="t"``); None for the bootstrap.
        method: ``"t"`` (paired Student t) or ``"bootstrap"`` (percentile bootstrap over seeds).
        confidence: the interval's confidence level.
        differs: True when the interval excludes 0.
        resamples: the number of bootstrap resamples; None for the t-test.
    """

    n: int
    mean_difference: float
    low: float
    high: float
    p_value: float | None
    method: str
    confidence: float
    differs: bool
    resamples: int | None = None


def _as_values(values: Iterable[float], name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ValueError if it is empty, not 1-D, not numeric or not finite."""
    try:
        array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected a sequence of numbers ({error})") from None
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a flat sequence of numbers, got an array of shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: no values (an empty sequence)")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        positions = ", ".join(f"[{i}] = {array[i]}" for i in bad[:5])
        raise ValueError(f"{name}: non-finite values at {positions}")
    return array


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must lie strictly between 0 and 1, got {confidence}")
    return confidence


def summarize(values: Iterable[float], confidence: float = 0.95) -> Summary:
    """The mean, sample standard deviation and Student-t confidence interval of the mean of ``values``.

    The interval is ``mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n)``. With a single value there is no
    spread to estimate: ``sd``, ``low`` and ``high`` are None. Identical values give ``sd == 0`` and an
    interval of zero width.

    Raises:
        ValueError: ``values`` is empty or holds a NaN or infinite value, or ``confidence`` is not in (0, 1).
    """
    confidence = _check_confidence(confidence)
    array = _as_values(values, "values")
    n = int(array.size)
    mean = float(array.mean())
    if n == 1:
        return Summary(n=1, mean=mean, sd=None, low=None, high=None, confidence=confidence)
    sd = float(array.std(ddof=1))
    half = float(_scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    return Summary(n=n, mean=mean, sd=sd, low=mean - half, high=mean + half, confidence=confidence)


def compare_paired(
    a: Iterable[float],
    b: Iterable[float],
    confidence: float = 0.95,
    method: str = "t",
    resamples: int = 10000,
    seed: int = 0,
) -> Comparison:
    """Compare configuration B with configuration A over paired seeds: the differences ``d = b - a``.

    ``a[k]`` and ``b[k]`` must come from the same seed (and the same data split). ``differs`` is True when
    the confidence interval of the mean difference excludes 0.

    - ``method="t"``: the paired Student t-test (as :func:`scipy.stats.ttest_rel`): the interval
      ``mean(d) +- t_{(1+confidence)/2, n-1} * sd(d) / sqrt(n)`` and the two-sided p-value. When every
      difference is the same, ``sd(d) == 0`` and the t statistic is undefined; then the interval is the
      single point ``mean(d)``: all differences exactly 0 give ``p_value == 1`` and ``differs`` False, all
      differences the same non-zero value (a deterministic difference) give ``p_value == 0`` and
      ``differs`` True.
    - ``method="bootstrap"``: the percentile interval of the mean difference over ``resamples`` resamples of
      the seeds with replacement, drawn from ``numpy.random.default_rng(seed)``, so the same inputs and
      ``seed`` give the same interval. ``p_value`` is None. With few seeds the bootstrap interval is too
      narrow (it ignores the uncertainty in the spread itself): at 95 % it marks about one pair in six of
      identical configurations with 5 seeds, one in twelve with 10; prefer ``"t"`` below some 30 seeds.

    Raises:
        ValueError: ``a`` and ``b`` differ in length, hold fewer than two pairs, or a non-finite value; an
            unknown ``method``; ``confidence`` outside (0, 1); ``resamples`` below 1.
    """
    confidence = _check_confidence(confidence)
    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; choose one of {METHODS}")
    x = _as_values(a, "a")
    y = _as_values(b, "b")
    if x.size != y.size:
        raise ValueError(f"a and b must pair seed by seed: a has {x.size} values, b has {y.size}")
    n = int(x.size)
    if n < 2:
        raise ValueError(f"a and b: a paired comparison needs at least 2 pairs, got {n}")
    d = y - x
    mean = float(d.mean())
    if method == "t":
        sd = float(d.std(ddof=1))
        if sd == 0.0:
            p = 1.0 if mean == 0.0 else 0.0
            return Comparison(n, mean, mean, mean, p, "t", confidence, differs=mean != 0.0)
        se = sd / math.sqrt(n)
        half = float(_scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * se
        p = float(2.0 * _scipy_stats.t.sf(abs(mean) / se, n - 1))
        low, high = mean - half, mean + half
        return Comparison(n, mean, low, high, p, "t", confidence, differs=low > 0.0 or high < 0.0)
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 1:
        raise ValueError(f"resamples: must be a positive integer, got {resamples!r}")
    rng = np.random.default_rng(seed)
    means = np.empty(int(resamples))
    chunk = max(1, 1_000_000 // n)  # bounds the index array's memory for long inputs
    for start in range(0, int(resamples), chunk):
        stop = min(int(resamples), start + chunk)
        means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = (float(q) for q in np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return Comparison(
        n,
        mean,
        low,
        high,
        None,
        "bootstrap",
        confidence,
        differs=low > 0.0 or high < 0.0,
        resamples=int(resamples),
    )


def _number(value: float, digits: int) -> str:
    """``value`` rounded to ``digits`` decimals, with more decimals (up to 3 more) if a non-zero value would
    otherwise read as 0, and never as ``-0``."""
    for extra in range(4):
        text = f"{value:.{digits + extra}f}"
        if value == 0.0 or float(text) != 0.0:
            break
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def _interval(low: float, high: float, digits: int) -> str:
    """``81.0-87.4``, or ``-0.4 to 4.6`` when a bound is negative (a hyphen would read as a minus sign)."""
    sep = "-" if low >= 0.0 and high >= 0.0 else " to "
    return f"{_number(low, digits)}{sep}{_number(high, digits)}"


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g} %"


def _p_value(p: float, alpha: float) -> str:
    """``p = 0.08``: two decimals, or more (up to six) where two would cross to the other side of alpha."""
    if p == 0.0:
        return "p = 0"
    if p < 0.001 <= alpha:
        return "p < 0.001"
    for decimals in range(2, 7):
        text = f"{p:.{decimals}f}"
        if float(text) > 0.0 and (float(text) < alpha) == (p < alpha):
            return f"p = {text}"
    return f"p = {p:.1e}"


def describe(summary: Summary, digits: int = 1) -> str:
    """The table-cell text of a summary: ``84.2 +- 1.3 (95 % CI 81.0-87.4, n = 3)``; ``84.2 (n = 1)`` for a
    single result. Numbers are rounded to ``digits`` decimals."""
    mean = _number(summary.mean, digits)
    if summary.sd is None or summary.low is None or summary.high is None:
        return f"{mean} (n = {summary.n})"
    return (
        f"{mean} +- {_number(summary.sd, digits)} ({_percent(summary.confidence)} CI "
        f"{_interval(summary.low, summary.high, digits)}, n = {summary.n})"
    )


def describe_comparison(comparison: Comparison, unit: str = "points", digits: int = 1) -> str:
    """The sentence text of a paired comparison, e.g. ``+2.1 points (95 % CI -0.4 to 4.6, paired t over 3
    seeds, p = 0.08): not different at 95 %``. The bootstrap names its resamples instead of a p-value.
    ``unit`` follows the difference (empty for none); numbers are rounded to ``digits`` decimals."""
    c = comparison
    difference = _number(c.mean_difference, digits)
    if not difference.startswith("-"):
        difference = "+" + difference
    if unit:
        difference += f" {unit}"
    level = _percent(c.confidence)
    if c.method == "t" and c.p_value is not None:
        test = f"paired t over {c.n} seeds, {_p_value(c.p_value, round(1.0 - c.confidence, 12))}"
    else:
        test = f"paired bootstrap over {c.n} seeds, {c.resamples} resamples"
    verdict = "different" if c.differs else "not different"
    return f"{difference} ({level} CI {_interval(c.low, c.high, digits)}, {test}): {verdict} at {level}"


def seed_columns(label: str) -> tuple[str, str]:
    """The table columns of one result repeated over seeds: ``label`` (the mean) and ``label +- sd (95 %
    CI)``, e.g. ``("top-1 (IIM)", "top-1 (IIM) +- sd (95 % CI)")``."""
    return label, f"{label} +- sd (95 % CI)"


def seed_cells(by_seed: Mapping[int, float], label: str, digits: int = 1) -> dict[str, str]:
    """The cells of :func:`seed_columns` for the results of each seed: the mean rounded to ``digits``, and
    :func:`describe`'s text (``84.2 +- 1.3 (95 % CI 81.0-87.4, n = 3)``; ``84.2 (n = 1)`` for one seed)."""
    mean_column, spread_column = seed_columns(label)
    summary = summarize(list(by_seed.values()))
    return {mean_column: f"{summary.mean:.{digits}f}", spread_column: describe(summary, digits)}


def seeds_cell(seeds: Iterable[int]) -> str:
    """The seeds a row was trained with, e.g. ``3 (0, 1, 2)``."""
    seeds = list(seeds)
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def compare_seeds(reference: Mapping[int, float], other: Mapping[int, float]) -> Comparison | None:
    """``other`` against ``reference`` over the seeds both have, paired seed by seed (:func:`compare_paired`,
    t-test, 95 %); None with fewer than 2 common seeds.

    Raises:
        ValueError: the two share no seed.
    """
    common = sorted(set(reference) & set(other))
    if not common:
        raise ValueError(f"no common seed: {sorted(reference)} against {sorted(other)}")
    if len(common) < 2:
        return None
    return compare_paired([reference[k] for k in common], [other[k] for k in common])


def verdict_cell(
    reference: Mapping[int, float], other: Mapping[int, float], unit: str = "points", digits: int = 1
) -> str:
    """The table cell of :func:`compare_seeds`: :func:`describe_comparison`'s text, e.g. ``+2.1 points (95 %
    CI -0.4 to 4.6, paired t over 3 seeds, p = 0.08): not different at 95 %``; with one common seed the
    difference of the two runs and ``no verdict: 1 seed``."""
    comparison = compare_seeds(reference, other)
    if comparison is not None:
        return describe_comparison(comparison, unit=unit, digits=digits)
    (seed,) = sorted(set(reference) & set(other))
    difference = _number(other[seed] - reference[seed], digits)
    sign = "" if difference.startswith("-") else "+"
    return f"{sign}{difference} {unit}".rstrip() + " (no verdict: 1 seed)"


def verdict_summary(comparisons: Mapping[str, Comparison | None], against: str) -> str:
    """The sentence under a table of paired comparisons (``name -> compare_seeds(...)``): which rows score
    above or below ``against`` at the comparisons' confidence, and which are within the noise between seeds;
    no claim where a comparison rests on one seed."""
    if not comparisons:
        return "No comparisons."
    judged = {name: c for name, c in comparisons.items() if c is not None}
    if not judged:
        return (
            f"One training seed per row: each difference from {against} is a single pair of runs, with no "
            "verdict on whether it exceeds the noise between seeds (list more `seeds` for one)."
        )
    level = _percent(next(iter(judged.values())).confidence)
    above = [n for n, c in judged.items() if c.differs and c.mean_difference > 0]
    below = [n for n, c in judged.items() if c.differs and c.mean_difference < 0]
    within = [n for n, c in judged.items() if not c.differs]
    parts = []
    if above:
        parts.append(f"above {against} at {level}: {', '.join(above)}")
    if below:
        parts.append(f"below {against} at {level}: {', '.join(below)}")
    if within:
        parts.append(
            f"not distinguishable from {against} at {level} (the difference lies within the noise between "
            f"seeds; this does not show they are equal): {', '.join(within)}"
        )
    unjudged = [n for n, c in comparisons.items() if c is None]
    if unjudged:
        parts.append(f"one seed, no verdict: {', '.join(unjudged)}")
    return "What the seeds support: " + "; ".join(parts) + "."
