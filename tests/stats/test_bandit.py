"""Bandit allocation and its read-out: weights, the period-weighted comparison, simulations.

The period-weighted comparison is checked against :func:`stats.compare_proportions` (one
period is the two-proportion z-test and Wald interval), against the same sums written out in
numpy, and on the classic ramp-up example of Simpson's paradox. Thompson weights are checked
against Monte Carlo draws from the same posteriors.

Two seeded simulations, vectorised over runs, run batched Thompson sampling (14 periods of
1,000 visitors, floor 0.01) and print their figures: the regret against a fixed 50/50 split
when one variant converts 6% against 5%, and the false-positive rate of the final comparison
in an A/A test whose conversion rate drifts from 3% to 7% over the periods, where pooling the
periods is biased by the moving weights and the period-weighted test is not (and in a steady
A/A test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats as scipy_stats

from stats import (
    InvalidInputError,
    Proportion,
    best_variant_shares,
    compare_proportions,
    period_weighted_comparison,
    thompson_weights,
)
from stats.bandit import floored

PERIODS = 14
PER_PERIOD = 1_000
FLOOR = 0.01


def test_one_period_is_the_two_proportion_test() -> None:
    control, treatment = (
        Proportion(conversions=150, visitors=5000),
        Proportion(conversions=189, visitors=5000),
    )
    result = period_weighted_comparison(periods=[(control, treatment)])
    reference = compare_proportions(control=control, treatment=treatment)
    assert result.absolute_lift == pytest.approx(reference.absolute_lift, rel=1e-12)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.absolute_ci == pytest.approx(reference.absolute_ci, rel=1e-12)
    # Pearson's chi-square without continuity correction: the same p-value
    table = [[150, 4850], [189, 4811]]
    chi2 = scipy_stats.chi2_contingency(table, correction=False)
    assert result.pvalue == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result.confidence_interval(0.9)[1] < result.absolute_ci[1]


def test_periods_are_weighted_by_their_visitors() -> None:
    periods = [
        (Proportion(conversions=20, visitors=1000), Proportion(conversions=30, visitors=1000)),
        (Proportion(conversions=10, visitors=200), Proportion(conversions=200, visitors=3800)),
        (Proportion(conversions=0, visitors=10), Proportion(conversions=3, visitors=90)),
    ]
    n_c = np.array([p[0].visitors for p in periods], dtype=float)
    n_t = np.array([p[1].visitors for p in periods], dtype=float)
    x_c = np.array([p[0].conversions for p in periods], dtype=float)
    x_t = np.array([p[1].conversions for p in periods], dtype=float)
    w = (n_c + n_t) / (n_c + n_t).sum()
    p_c, p_t, pooled = x_c / n_c, x_t / n_t, (x_c + x_t) / (n_c + n_t)
    difference = float((w * (p_t - p_c)).sum())
    z = difference / math.sqrt(float((w**2 * pooled * (1 - pooled) * (1 / n_c + 1 / n_t)).sum()))
    se = math.sqrt(float((w**2 * (p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)).sum()))
    result = period_weighted_comparison(periods=periods, confidence_level=0.9)
    assert result.absolute_lift == pytest.approx(difference, rel=1e-12)
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.pvalue == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-9)
    assert result.standard_error == pytest.approx(se, rel=1e-12)
    half = scipy_stats.norm.ppf(0.95) * se
    assert result.absolute_ci == pytest.approx((difference - half, difference + half), rel=1e-9)
    assert result.periods == 3 and result.reason is None


def test_ramp_up_paradox_is_undone() -> None:
    """Kohavi et al. ch. 3: the split moved while the rate rose; pooling invents a lift."""
    periods = [
        (Proportion(conversions=100, visitors=5000), Proportion(conversions=100, visitors=5000)),
        (Proportion(conversions=40, visitors=1000), Proportion(conversions=360, visitors=9000)),
    ]
    pooled = compare_proportions(
        control=Proportion(conversions=140, visitors=6000),
        treatment=Proportion(conversions=460, visitors=14000),
    )
    assert pooled.absolute_lift > 0.009 and pooled.pvalue < 0.001
    result = period_weighted_comparison(periods=periods)
    assert result.absolute_lift == pytest.approx(0.0, abs=1e-15)
    assert result.pvalue == pytest.approx(1.0)


def test_undefined_and_bad_input() -> None:
    empty = period_weighted_comparison(
        periods=[(Proportion(conversions=0, visitors=0), Proportion(conversions=3, visitors=10))]
    )
    assert empty.periods == 0 and math.isnan(empty.pvalue) and empty.reason is not None
    flat = period_weighted_comparison(
        periods=[(Proportion(conversions=0, visitors=10), Proportion(conversions=0, visitors=10))]
    )
    assert math.isnan(flat.pvalue) and "strictly between 0 and 1" in (flat.reason or "")
    with pytest.raises(InvalidInputError, match=r"periods\[0\] must be a \(control, treatment\)"):
        period_weighted_comparison(periods=[(Proportion(conversions=1, visitors=2),)])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=r"floor must be in \[0, 1/2\]"):
        floored([0.5, 0.5], 0.6)
    with pytest.raises(InvalidInputError, match=r"variants\[1\] must be a Proportion"):
        thompson_weights(variants=[Proportion(conversions=1, visitors=2), 3])  # type: ignore[list-item]


def test_thompson_weights_match_posterior_draws() -> None:
    variants = [
        Proportion(conversions=30, visitors=1000),
        Proportion(conversions=45, visitors=1000),
        Proportion(conversions=38, visitors=1000),
    ]
    exact = thompson_weights(variants=variants)
    assert sum(exact) == pytest.approx(1.0, abs=1e-9)
    draws = best_variant_shares(
        np.array([[30, 45, 38]]),
        np.array([[1000, 1000, 1000]]),
        draws=200_000,
        rng=np.random.default_rng(5),
    )[0]
    assert draws == pytest.approx(exact, abs=0.005)
    low = thompson_weights(variants=variants, floor=0.1)
    assert min(low) >= 0.1 and sum(low) == pytest.approx(1.0, abs=1e-9)
    assert low == pytest.approx([0.1 + 0.7 * p for p in exact], abs=1e-12)


def _simulate(
    rates: NDArray[np.float64], runs: int, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Batched Thompson sampling on two variants; ``rates`` has shape (periods, 2).

    Returns per-period visitors and conversions, each of shape (runs, periods, 2).
    """
    rng = np.random.default_rng(seed)
    visitors = np.zeros((runs, PERIODS, 2), dtype=np.int64)
    conversions = np.zeros((runs, PERIODS, 2), dtype=np.int64)
    weight = np.full(runs, 0.5)  # of the second variant
    for k in range(PERIODS):
        treated = rng.binomial(PER_PERIOD, weight)
        visitors[:, k] = np.stack([PER_PERIOD - treated, treated], axis=1)
        conversions[:, k] = rng.binomial(visitors[:, k], rates[k])
        shares = best_variant_shares(
            conversions[:, : k + 1].sum(axis=1),
            visitors[:, : k + 1].sum(axis=1),
            draws=400,
            rng=rng,
        )
        weight = np.array([floored(row, FLOOR)[1] for row in shares.tolist()])
    return visitors, conversions


def _final_pvalues(
    visitors: NDArray[np.int64], conversions: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    weighted, pooled = [], []
    for n, x in zip(visitors.tolist(), conversions.tolist(), strict=True):
        periods = [
            (
                Proportion(conversions=c[0], visitors=v[0]),
                Proportion(conversions=c[1], visitors=v[1]),
            )
            for v, c in zip(n, x, strict=True)
        ]
        weighted.append(period_weighted_comparison(periods=periods).pvalue)
        n_total, x_total = np.sum(n, axis=0), np.sum(x, axis=0)
        pooled.append(
            compare_proportions(
                control=Proportion(conversions=int(x_total[0]), visitors=int(n_total[0])),
                treatment=Proportion(conversions=int(x_total[1]), visitors=int(n_total[1])),
            ).pvalue
        )
    return np.array(weighted), np.array(pooled)


@pytest.mark.slow
def test_thompson_regret_against_a_fixed_split() -> None:
    runs = 400
    rates = np.tile([0.05, 0.06], (PERIODS, 1))
    visitors, _ = _simulate(rates, runs, seed=11)
    # expected conversions lost against sending everyone to the better variant
    regret = (visitors[:, :, 0] * (0.06 - 0.05)).sum(axis=1)
    fixed = PERIODS * PER_PERIOD * 0.5 * (0.06 - 0.05)
    share_best = visitors[:, :, 1].sum() / visitors.sum()
    print(
        f"\nbandit regret over {PERIODS} x {PER_PERIOD:,} visitors, 5% vs 6% ({runs} runs): "
        f"mean {regret.mean():.1f} conversions (90th percentile "
        f"{np.percentile(regret, 90):.1f}) against {fixed:.1f} for a fixed 50/50 split "
        f"({regret.mean() / fixed:.2f} of it); {share_best:.1%} of visitors saw the better variant"
    )
    assert regret.mean() < 0.5 * fixed
    assert share_best > 0.75


@pytest.mark.slow
def test_final_comparison_keeps_its_false_positive_rate() -> None:
    runs = 2_000
    drift = np.linspace(0.03, 0.07, PERIODS)
    visitors, conversions = _simulate(np.stack([drift, drift], axis=1), runs, seed=12)
    weighted, pooled = _final_pvalues(visitors, conversions)
    weighted_rate, pooled_rate = float((weighted < 0.05).mean()), float((pooled < 0.05).mean())
    high = float(scipy_stats.binom.isf(0.0005, runs, 0.05)) / runs
    print(
        f"\nA/A bandit, rate drifting 3% -> 7% over {PERIODS} periods ({runs} runs): "
        f"false-positive rate {weighted_rate:.2%} period-weighted, {pooled_rate:.2%} pooled "
        f"(alpha 5%; 99.9% band upper end {high:.2%})"
    )
    assert weighted_rate <= high
    assert pooled_rate > high
    flat = np.full((PERIODS, 2), 0.05)
    weighted, pooled = _final_pvalues(*_simulate(flat, runs, seed=13))
    steady_weighted, steady_pooled = float((weighted < 0.05).mean()), float((pooled < 0.05).mean())
    print(
        f"A/A bandit, steady 5% rate ({runs} runs): false-positive rate {steady_weighted:.2%} "
        f"period-weighted, {steady_pooled:.2%} pooled"
    )
    assert steady_weighted <= high
