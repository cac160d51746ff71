"""Seed statistics (bidl.stats): summaries, paired comparisons and their text, checked against scipy.stats,
against the error rates they promise, and on real seeded trainings of a small LIF classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch import nn

from bidl.neurons import LIF
from bidl.stats import Comparison, compare_paired, describe, describe_comparison, summarize

# -- summarize -----------------------------------------------------------------------------------------------


def test_summarize_matches_hand_computed_values_and_scipy():
    s = summarize([1, 2, 3, 4])
    # by hand: mean 10/4, sd sqrt(((1.5^2 + 0.5^2) * 2) / 3) = sqrt(5/3), t_{0.975, 3} = 3.182446
    assert s.n == 4 and s.confidence == 0.95
    assert s.mean == pytest.approx(2.5)
    assert s.sd == pytest.approx(math.sqrt(5 / 3)) and s.sd == pytest.approx(1.2910, abs=5e-5)
    half = sps.t.ppf(0.975, 3) * math.sqrt(5 / 3) / 2
    assert half == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-6)
    assert (s.low, s.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert (s.low, s.high) == pytest.approx((0.4457, 4.5543), abs=5e-5)
    scipy_interval = sps.t.interval(0.95, 3, loc=2.5, scale=sps.sem([1, 2, 3, 4]))
    assert (s.low, s.high) == pytest.approx(scipy_interval)
    s90 = summarize(np.array([1.0, 2.0, 3.0, 4.0]), confidence=0.9)
    assert (s90.low, s90.high) == pytest.approx(sps.t.interval(0.9, 3, loc=2.5, scale=sps.sem([1, 2, 3, 4])))


def test_summarize_of_one_value_has_no_spread_and_identical_values_a_zero_width_interval():
    one = summarize([84.2])
    assert (one.n, one.mean, one.sd, one.low, one.high) == (1, 84.2, None, None, None)
    same = summarize([70.0, 70.0, 70.0])
    assert (same.sd, same.low, same.high) == (0.0, 70.0, 70.0)


def test_summarize_interval_covers_the_true_mean_at_its_confidence():
    rng = np.random.default_rng(7)
    draws = rng.normal(80.0, 2.0, size=(4000, 4))
    covered = np.mean([(s.low <= 80.0 <= s.high) for s in map(summarize, draws)])
    assert 0.94 <= covered <= 0.96  # a normal-quantile (z) interval would cover only about 0.86 at n = 4


# -- compare_paired ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_t_matches_scipy_ttest_rel(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(80, 2, n)
    b = a + rng.normal(0.8, 1.5, n)
    c = compare_paired(a, b)
    reference = sps.ttest_rel(b, a)
    reference_interval = reference.confidence_interval(0.95)
    assert (c.n, c.method, c.resamples) == (n, "t", None)
    assert c.mean_difference == pytest.approx(np.mean(b - a))
    assert c.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (c.low, c.high) == pytest.approx((reference_interval.low, reference_interval.high))
    assert c.differs == (reference.pvalue < 0.05)
    c99 = compare_paired(a, b, confidence=0.99)
    interval99 = reference.confidence_interval(0.99)
    assert (c99.low, c99.high) == pytest.approx((interval99.low, interval99.high))
    assert c99.differs == (reference.pvalue < 0.01)


def test_paired_t_edge_cases_without_spread_in_the_differences():
    same = compare_paired([80.0, 81.5, 79.0], [80.0, 81.5, 79.0])
    assert (same.mean_difference, same.low, same.high) == (0.0, 0.0, 0.0)
    assert same.p_value == 1.0 and same.differs is False
    shifted = compare_paired([80.0, 81.0, 79.0], [82.0, 83.0, 81.0])
    assert (shifted.mean_difference, shifted.low, shifted.high) == (2.0, 2.0, 2.0)
    assert shifted.p_value == 0.0 and shifted.differs is True
    boot = compare_paired([80.0, 81.0, 79.0], [82.0, 83.0, 81.0], method="bootstrap")
    assert (boot.low, boot.high, boot.differs) == (2.0, 2.0, True)


def test_pairing_by_seed_finds_a_shift_that_the_seed_to_seed_spread_would_hide():
    rng = np.random.default_rng(3)
    seed_effect = rng.normal(0.0, 3.0, 5)  # what a seed does to both configurations alike
    a = 80.0 + seed_effect + rng.normal(0.0, 0.2, 5)
    b = 81.0 + seed_effect + rng.normal(0.0, 0.2, 5)
    sa, sb = summarize(a), summarize(b)
    assert sa.low < sb.high and sb.low < sa.high  # the intervals of the two means overlap widely
    assert sps.ttest_ind(b, a).pvalue > 0.3  # unpaired, the shift is lost in the spread
    c = compare_paired(a, b)
    assert c.differs and c.low > 0.0 and c.p_value < 0.05
    assert not compare_paired(a, rng.permutation(b)).differs  # the pairing is what carries the information


def test_paired_t_marks_about_one_null_pair_in_twenty():
    rng = np.random.default_rng(11)
    a = rng.normal(80.0, 2.0, size=(4000, 5))
    b = rng.normal(80.0, 2.0, size=(4000, 5))
    marked = np.mean([compare_paired(x, y).differs for x, y in zip(a, b)])
    assert 0.04 <= marked <= 0.06  # a z-based rule would mark about 0.12 at n = 5


def test_bootstrap_is_reproducible_and_close_to_the_t_interval_on_normal_data():
    rng = np.random.default_rng(5)
    a = rng.normal(80.0, 2.0, 30)
    b = a + rng.normal(0.5, 1.0, 30)
    first = compare_paired(a, b, method="bootstrap", seed=4)
    assert first == compare_paired(a, b, method="bootstrap", seed=4)
    other = compare_paired(a, b, method="bootstrap", seed=5)
    assert (other.low, other.high) != (first.low, first.high)
    assert (first.method, first.resamples, first.p_value, first.n) == ("bootstrap", 10000, None, 30)
    assert first.mean_difference == pytest.approx(np.mean(b - a))
    t = compare_paired(a, b)
    half = (t.high - t.low) / 2
    assert abs(first.low - t.low) < 0.15 * half and abs(first.high - t.high) < 0.15 * half
    assert first.differs == (first.low > 0 or first.high < 0)
    # the percentile interval itself, from the resampled means of the same generator
    means = (b - a)[np.random.default_rng(4).integers(0, 30, size=(10000, 30))].mean(axis=1)
    assert (first.low, first.high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


# -- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "values: no values"),
        ([1.0, float("nan"), 2.0], r"values: non-finite values at \[1\] = nan"),
        ([1.0, 2.0, float("inf")], r"values: non-finite values at \[2\] = inf"),
        ([[1.0, 2.0], [3.0, 4.0]], r"flat sequence.*shape \(2, 2\)"),
        (["a", "b"], "values: expected a sequence of numbers"),
    ],
)
def test_summarize_rejects_bad_values_naming_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        summarize(values)


def test_compare_paired_rejects_bad_input_naming_the_problem():
    with pytest.raises(ValueError, match="a has 3 values, b has 2"):
        compare_paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"):
        compare_paired([1], [2])
    with pytest.raises(ValueError, match="a: no values"):
        compare_paired([], [])
    with pytest.raises(ValueError, match=r"b: non-finite values at \[0\] = nan"):
        compare_paired([1, 2], [float("nan"), 2])
    with pytest.raises(ValueError, match="method: unknown method 'z'"):
        compare_paired([1, 2], [2, 3], method="z")
    with pytest.raises(ValueError, match="confidence: .* got 95"):
        compare_paired([1, 2], [2, 3], confidence=95)
    with pytest.raises(ValueError, match="resamples: must be a positive integer, got 0"):
        compare_paired([1, 2], [2, 3], method="bootstrap", resamples=0)


# -- text ----------------------------------------------------------------------------------------------------


def test_describe_renders_a_table_cell():
    assert describe(summarize([1, 2, 3, 4])) == "2.5 +- 1.3 (95 % CI 0.4-4.6, n = 4)"
    assert describe(summarize([1, 2, 3, 4]), digits=2) == "2.50 +- 1.29 (95 % CI 0.45-4.55, n = 4)"
    assert describe(summarize([-1, 0, 1], confidence=0.9)) == "0.0 +- 1.0 (90 % CI -1.7 to 1.7, n = 3)"
    assert describe(summarize([84.25])) == "84.2 (n = 1)"


def test_describe_comparison_renders_the_sentence_under_a_table():
    c = Comparison(3, 2.1, -0.4, 4.6, 0.08, "t", 0.95, differs=False)
    expected = "+2.1 points (95 % CI -0.4 to 4.6, paired t over 3 seeds, p = 0.08): not different at 95 %"
    assert describe_comparison(c) == expected
    d = Comparison(5, -3.0, -5.0, -1.04, 0.004, "bootstrap", 0.95, differs=True, resamples=10000)
    assert describe_comparison(d, unit="") == (
        "-3.0 (95 % CI -5.0 to -1.0, paired bootstrap over 5 seeds, 10000 resamples): different at 95 %"
    )


def test_describe_comparison_keeps_the_side_of_zero_and_of_the_threshold():
    # a bound of 0.03 stays non-zero, a p-value of 0.0496 does not read as 0.05, and -0.0 never appears
    c = Comparison(5, 1.0, 0.03, 1.97, 0.0496, "t", 0.95, differs=True)
    assert describe_comparison(c) == (
        "+1.0 points (95 % CI 0.03-2.0, paired t over 5 seeds, p = 0.0496): different at 95 %"
    )
    c = Comparison(5, -0.01, -0.5, 0.48, 0.97, "t", 0.95, differs=False)
    text = describe_comparison(c)
    assert text.startswith("-0.01 points (95 % CI -0.5 to 0.5, paired t over 5 seeds, p = 0.97)")
    assert "p < 0.001" in describe_comparison(Comparison(5, 20.0, 19.0, 21.0, 2e-7, "t", 0.95, differs=True))


# -- real seeded trainings -----------------------------------------------------------------------------------

FEATURES, CLASSES, STEPS = 16, 4, 4


def _dataset() -> tuple[torch.Tensor, ...]:
    """A fixed four-class task (Gaussian clusters that overlap): 512 training and 2048 test samples."""
    generator = torch.Generator().manual_seed(1234)
    centres = torch.randn(CLASSES, FEATURES, generator=generator) * 0.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, CLASSES, (n,), generator=generator)
        return centres[labels] + torch.randn(n, FEATURES, generator=generator), labels

    return (*draw(512), *draw(2048))


class _SpikingClassifier(nn.Module):
    """Linear -> LIF over STEPS repeats of the input -> spike rate -> linear readout."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc = nn.Linear(FEATURES, hidden)
        self.lif = LIF(alpha=0.3, theta=0.5)
        self.readout = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.fc(x).unsqueeze(1).expand(-1, STEPS, -1)
        return self.readout(self.lif(current).mean(dim=1))


def _train_accuracy(seed: int, hidden: int, data: tuple[torch.Tensor, ...]) -> float:
    """The test accuracy (%) of one training of a ``hidden``-neuron classifier on the fixed split ``data``;
    the seed sets the initial weights and the minibatch order."""
    x_train, y_train, x_test, y_test = data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _SpikingClassifier(hidden)
        optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(15):
            for batch in torch.randperm(len(x_train)).split(64):
                optimiser.zero_grad()
                nn.functional.cross_entropy(net(x_train[batch]), y_train[batch]).backward()
                optimiser.step()
    with torch.no_grad():
        return 100.0 * (net(x_test).argmax(1) == y_test).double().mean().item()


@pytest.fixture(scope="module")
def train_accuracy():
    """``train_accuracy(seed, hidden)``: :func:`_train_accuracy` on one thread, each run memoised."""
    data = _dataset()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    done: dict[tuple[int, int], float] = {}

    def train(seed: int, hidden: int) -> float:
        if (seed, hidden) not in done:
            done[seed, hidden] = _train_accuracy(seed, hidden, data)
        return done[seed, hidden]

    yield train
    torch.set_num_threads(threads)


def test_real_trainings_a_truly_worse_configuration_is_marked_different(train_accuracy):
    a = [train_accuracy(seed, hidden=32) for seed in range(5)]
    b = [train_accuracy(seed, hidden=2) for seed in range(5)]  # 16x fewer hidden neurons, same seeds
    assert len(set(a)) > 1  # the seeds do vary the result
    c = compare_paired(a, b)
    assert c.differs and c.high < 0.0 and c.mean_difference < -5.0
    assert compare_paired(a, b, method="bootstrap").differs
    assert describe_comparison(c).endswith(": different at 95 %")


def test_real_trainings_the_same_configuration_with_other_seeds_is_not_marked(train_accuracy):
    a = [train_accuracy(seed, hidden=32) for seed in range(5)]
    again = [train_accuracy(seed, hidden=32) for seed in range(5, 10)]  # paired by position
    assert a != again
    # the rule errs on such a pair with probability 0.05; these seeds are fixed, so the outcome is too
    c = compare_paired(a, again)
    assert not c.differs and c.low < 0.0 < c.high
    assert summarize(a).low < summarize(again).high and summarize(again).low < summarize(a).high
    assert describe_comparison(c).endswith(": not different at 95 %")
