"""Calibration by seeded simulation: false-positive rates of A/A tests, coverage of intervals,
and the false-positive rate under daily peeking with and without the sequential test.

Every check runs 2,000 simulated experiments; the data are drawn in one vectorised call and each
experiment is analysed through the public API. A rate is accepted when it lies in the central
99.9% binomial band around its nominal value, so a correct method fails about once in a
thousand seeds (the seeds are fixed, so the outcome is deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from stats import (
    CupedSummary,
    MeanSummary,
    Proportion,
    RatioSummary,
    compare_means,
    compare_proportions,
    compare_ratios,
    cuped,
    msprt,
)

RUNS = 2000


def _band(rate: float, runs: int = RUNS) -> tuple[float, float]:
    """Central 99.9% range of the observed rate of a binomial(runs, rate) count."""
    return (
        float(scipy_stats.binom.ppf(0.0005, runs, rate)) / runs,
        float(scipy_stats.binom.isf(0.0005, runs, rate)) / runs,
    )


def _assert_near(observed: float, nominal: float) -> None:
    low, high = _band(nominal)
    assert low <= observed <= high, f"{observed:.4f} outside [{low:.4f}, {high:.4f}]"


def _sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values.sum(axis=-1), np.einsum("...i,...i->...", values, values)


def test_aa_conversion_false_positive_rate() -> None:
    rng = np.random.default_rng(101)
    conversions = rng.binomial(2000, 0.1, size=(RUNS, 2))
    rejections = sum(
        compare_proportions(
            control=Proportion(int(c), 2000), treatment=Proportion(int(t), 2000)
        ).pvalue
        < 0.05
        for c, t in conversions
    )
    _assert_near(rejections / RUNS, 0.05)


def _revenue(rng: np.random.Generator, shape: tuple[int, ...], rate: float = 0.1) -> np.ndarray:
    converted = rng.random(shape) < rate
    return converted * rng.lognormal(3.0, 0.8, shape)


def test_aa_mean_false_positive_rate_with_skewed_revenue() -> None:
    rng = np.random.default_rng(102)
    sums, squares = _sums(_revenue(rng, (RUNS, 2, 1000)))
    rejections = sum(
        compare_means(
            control=MeanSummary(n=1000, sum=s[0], sum_squares=q[0]),
            treatment=MeanSummary(n=1000, sum=s[1], sum_squares=q[1]),
        ).pvalue
        < 0.05
        for s, q in zip(sums, squares, strict=True)
    )
    _assert_near(rejections / RUNS, 0.05)


def test_aa_ratio_false_positive_rate() -> None:
    rng = np.random.default_rng(103)
    orders = rng.poisson(0.5, (RUNS, 2, 1000)).astype(float)
    revenue = orders * rng.gamma(3.0, 20.0, orders.shape)
    x, xx = _sums(revenue)
    y, yy = _sums(orders)
    xy = np.einsum("...i,...i->...", revenue, orders)
    rejections = 0
    for run in range(RUNS):
        summaries = [
            RatioSummary(
                n=1000,
                numerator_sum=x[run, g],
                numerator_sum_squares=xx[run, g],
                denominator_sum=y[run, g],
                denominator_sum_squares=yy[run, g],
                cross_sum=xy[run, g],
            )
            for g in (0, 1)
        ]
        rejections += compare_ratios(control=summaries[0], treatment=summaries[1]).pvalue < 0.05
    _assert_near(rejections / RUNS, 0.05)


def test_aa_cuped_false_positive_rate() -> None:
    rng = np.random.default_rng(104)
    before = rng.gamma(2.0, 5.0, (RUNS, 2, 500))
    after = 0.7 * before + rng.normal(0.0, 4.0, before.shape)
    y, yy = _sums(after)
    x, xx = _sums(before)
    xy = np.einsum("...i,...i->...", after, before)
    rejections = 0
    reductions = []
    for run in range(RUNS):
        control, treatment = (
            CupedSummary(
                n=500,
                sum=y[run, g],
                sum_squares=yy[run, g],
                covariate_sum=x[run, g],
                covariate_sum_squares=xx[run, g],
                cross_sum=xy[run, g],
            )
            for g in (0, 1)
        )
        result = cuped(control=control, treatment=treatment)
        rejections += result.pvalue < 0.05
        reductions.append(result.variance_reduction)
    _assert_near(rejections / RUNS, 0.05)
    assert np.mean(reductions) > 0.5


def test_conversion_intervals_cover_the_true_lift() -> None:
    rng = np.random.default_rng(105)
    p_c, p_t, n = 0.05, 0.06, 5000
    conversions = rng.binomial(n, [p_c, p_t], size=(RUNS, 2))
    absolute = relative = 0
    for c, t in conversions:
        result = compare_proportions(control=Proportion(int(c), n), treatment=Proportion(int(t), n))
        absolute += result.absolute_ci[0] <= p_t - p_c <= result.absolute_ci[1]
        relative += result.relative_ci[0] <= p_t / p_c - 1 <= result.relative_ci[1]
    _assert_near(absolute / RUNS, 0.95)
    _assert_near(relative / RUNS, 0.95)


def test_mean_intervals_cover_the_true_lift() -> None:
    rng = np.random.default_rng(106)
    n, lift = 2000, 0.2
    values = rng.exponential(1.0, (RUNS, 2, n))
    values[:, 1, :] *= 1 + lift
    sums, squares = _sums(values)
    absolute = relative = 0
    for s, q in zip(sums, squares, strict=True):
        result = compare_means(
            control=MeanSummary(n=n, sum=s[0], sum_squares=q[0]),
            treatment=MeanSummary(n=n, sum=s[1], sum_squares=q[1]),
        )
        absolute += result.absolute_ci[0] <= lift <= result.absolute_ci[1]
        relative += result.relative_ci[0] <= lift <= result.relative_ci[1]
    _assert_near(absolute / RUNS, 0.95)
    _assert_near(relative / RUNS, 0.95)


def test_sequential_test_survives_daily_peeking() -> None:
    """20 daily looks at an A/A test: stopping at the first fixed-horizon p < 0.05 inflates the
    false-positive rate several-fold; stopping at the first always-valid p < 0.05 does not."""
    rng = np.random.default_rng(107)
    daily, days, rate = 500, 20, 0.1
    cumulative = np.cumsum(rng.binomial(daily, rate, size=(RUNS, days, 2)), axis=1)
    fixed_rejections = sequential_rejections = 0
    for run in range(RUNS):
        looks = [
            (
                Proportion(int(cumulative[run, day, 0]), daily * (day + 1)),
                Proportion(int(cumulative[run, day, 1]), daily * (day + 1)),
            )
            for day in range(days)
        ]
        fixed_rejections += any(
            compare_proportions(control=c, treatment=t).pvalue < 0.05 for c, t in looks
        )
        sequential_rejections += msprt(looks=looks).pvalue < 0.05
    fixed_rate, sequential_rate = fixed_rejections / RUNS, sequential_rejections / RUNS
    assert sequential_rate <= _band(0.05)[1]
    assert fixed_rate > 0.15 > _band(0.05)[1]
    assert fixed_rate > 3 * sequential_rate


def test_confidence_sequence_covers_at_every_look_simultaneously() -> None:
    rng = np.random.default_rng(108)
    daily, days = 300, 20
    means = np.array([10.0, 10.5])
    values = rng.normal(means, 4.0, size=(RUNS, days, daily, 2))
    sums = np.cumsum(values.sum(axis=2), axis=1)
    squares = np.cumsum((values**2).sum(axis=2), axis=1)
    covered = 0
    for run in range(RUNS):
        looks = [
            tuple(
                MeanSummary(
                    n=daily * (day + 1), sum=sums[run, day, g], sum_squares=squares[run, day, g]
                )
                for g in (0, 1)
            )
            for day in range(days)
        ]
        result = msprt(looks=looks)  # type: ignore[arg-type]
        covered += all(low <= 0.5 <= high for low, high in result.absolute_cs)
    assert covered / RUNS >= _band(0.95)[0]


@pytest.mark.parametrize("seed", [109])
def test_bayesian_chance_is_calibrated_under_the_prior(seed: int) -> None:
    """Draw true rates from the Beta(1, 1) prior and data from them: among experiments where
    the chance to beat control is in a bin, the treatment is truly better about that often."""
    from stats import chance_to_beat_control

    rng = np.random.default_rng(seed)
    rates = rng.random((RUNS, 2))
    conversions = rng.binomial(200, rates)
    chances = np.array(
        [
            chance_to_beat_control(
                control=Proportion(int(c), 200), treatment=Proportion(int(t), 200)
            ).chance_to_beat_control
            for c, t in conversions
        ]
    )
    truly_better = rates[:, 1] > rates[:, 0]
    # Mean predicted probability equals the observed frequency, overall and in the middle band.
    assert np.mean(chances) == pytest.approx(np.mean(truly_better), abs=0.03)
    middle = (chances > 0.2) & (chances < 0.8)
    assert np.mean(truly_better[middle]) == pytest.approx(np.mean(chances[middle]), abs=0.08)
