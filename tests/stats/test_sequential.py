"""mSPRT p-values and confidence sequences against the mixture likelihood ratio integrated
numerically, Howard et al.'s closed-form boundary, and invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats

from stats import (
    InvalidInputError,
    MeanSummary,
    Proportion,
    UndefinedResultWarning,
    msprt,
)
from stats.sequential import DEFAULT_TUNING_VISITORS

DAILY = [(1000, 100, 112), (2000, 205, 236), (3000, 310, 352), (4000, 402, 470), (5000, 499, 590)]


def _looks() -> list[tuple[Proportion, Proportion]]:
    return [(Proportion(c, n), Proportion(t, n)) for n, c, t in DAILY]


def _estimate(control: Proportion, treatment: Proportion) -> tuple[float, float]:
    v = sum(p.rate * (1 - p.rate) / p.visitors for p in (control, treatment))
    return treatment.rate - control.rate, v


def _mixture_ratio(d: float, v: float, tau2: float, theta0: float = 0.0) -> float:
    """int N(d; theta, v) N(theta; theta0, tau2) dtheta / N(d; theta0, v), numerically."""
    sd, scale = math.sqrt(v), math.sqrt(tau2)
    numerator, _ = integrate.quad(
        lambda theta: (
            scipy_stats.norm.pdf(d, theta, sd) * scipy_stats.norm.pdf(theta, theta0, scale)
        ),
        theta0 - 40 * scale,
        theta0 + 40 * scale,
        points=[d, theta0],
        limit=400,
        epsabs=0,
        epsrel=1e-11,
    )
    return float(numerator / scipy_stats.norm.pdf(d, theta0, sd))


def test_pvalues_match_numerically_integrated_mixture() -> None:
    tau2 = 0.01**2
    result = msprt(looks=_looks(), mixing_variance=tau2)
    running = 1.0
    for (control, treatment), pvalue in zip(_looks(), result.pvalues, strict=True):
        d, v = _estimate(control, treatment)
        running = min(running, 1.0 / _mixture_ratio(d, v, tau2))
        assert pvalue == pytest.approx(running, rel=1e-8)
    assert result.pvalue == result.pvalues[-1]
    assert result.statistic == pytest.approx(
        _mixture_ratio(*_estimate(*_looks()[-1]), tau2), rel=1e-8
    )
    assert result.mixing_variances == (tau2,) * len(DAILY)


def test_confidence_sequence_boundary_has_likelihood_ratio_one_over_alpha() -> None:
    tau2 = 0.02**2
    looks = _looks()[:1]
    result = msprt(looks=looks, mixing_variance=tau2, confidence_level=0.9)
    d, v = _estimate(*looks[0])
    low, high = result.absolute_cs[0]
    assert (low + high) / 2 == pytest.approx(d, rel=1e-12)
    for edge in (low, high):
        assert _mixture_ratio(d, v, tau2, theta0=edge) == pytest.approx(1 / 0.1, rel=1e-7)


def test_default_mixing_variance_gives_howard_boundary() -> None:
    """Howard et al. (2021), normal mixture: half-width sigma * sqrt(2 (n rho + 1) / (n**2 rho)
    * log(sqrt(n rho + 1) / alpha)) with rho = (-2 log a + log(1 - 2 log a)) / m."""
    looks = _looks()[:1]
    result = msprt(looks=looks)
    d, v = _estimate(*looks[0])
    n, alpha, m = 1000, 0.05, DEFAULT_TUNING_VISITORS
    sigma2 = v * n
    rho = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / m
    half = math.sqrt(sigma2) * math.sqrt(
        2 * (n * rho + 1) / (n * n * rho) * math.log(math.sqrt(n * rho + 1) / alpha)
    )
    assert result.absolute_cs[0] == pytest.approx((d - half, d + half), rel=1e-10)
    assert result.mixing_variances[0] == pytest.approx(rho * sigma2, rel=1e-12)


def test_running_minimum_and_nested_sequences() -> None:
    rng = np.random.default_rng(8)
    conversions = np.cumsum(rng.binomial(500, [[0.1, 0.1]] * 20), axis=0)
    looks = [
        (Proportion(int(c), 500 * (day + 1)), Proportion(int(t), 500 * (day + 1)))
        for day, (c, t) in enumerate(conversions)
    ]
    result = msprt(looks=looks)
    assert all(0.0 <= p <= 1.0 for p in result.pvalues)
    assert all(b <= a for a, b in itertools.pairwise(result.pvalues))
    for cs in (result.absolute_cs, result.relative_cs):
        for (low_a, high_a), (low_b, high_b) in itertools.pairwise(cs):
            assert low_a <= low_b <= high_b <= high_a
    assert result.absolute_ci == result.absolute_cs[-1]
    assert result.relative_ci == result.relative_cs[-1]
    assert result.significant is (result.pvalue < 0.05)


def test_rejection_matches_zero_outside_the_sequence() -> None:
    result = msprt(looks=_looks())
    for pvalue, (low, high) in zip(result.pvalues, result.absolute_cs, strict=True):
        assert (pvalue < 0.05) == (not low <= 0.0 <= high)


def test_sequence_is_wider_than_fixed_horizon_interval() -> None:
    looks = _looks()
    result = msprt(looks=looks)
    _, v = _estimate(*looks[-1])
    fixed = 1.959963984540054 * math.sqrt(v)
    low, high = result.absolute_cs[-1]
    assert high - low > 2 * fixed
    rel_low, rel_high = result.relative_cs[-1]
    assert rel_low < result.relative_lift < rel_high


def test_relative_sequence_uses_delta_method_variance() -> None:
    tau2 = 0.01**2
    looks = _looks()[:1]
    control, treatment = looks[0]
    result = msprt(looks=looks, mixing_variance=tau2)
    p_c, p_t = control.rate, treatment.rate
    v_rel = (p_t * (1 - p_t) / 1000) / p_c**2 + p_t**2 * (p_c * (1 - p_c) / 1000) / p_c**4
    tau2_rel = tau2 / p_c**2
    half = math.sqrt(2 * v_rel * (v_rel + tau2_rel) / tau2_rel * (
        math.log(1 / 0.05) + 0.5 * math.log((v_rel + tau2_rel) / v_rel)
    ))  # fmt: skip
    r = p_t / p_c - 1
    assert result.relative_cs[0] == pytest.approx((r - half, r + half), rel=1e-10)


def test_means_are_supported() -> None:
    rng = np.random.default_rng(4)
    values_c = rng.exponential(5.0, (10, 300))
    values_t = rng.exponential(5.5, (10, 300))
    looks = [
        (
            MeanSummary.from_values(values_c[: day + 1].ravel()),
            MeanSummary.from_values(values_t[: day + 1].ravel()),
        )
        for day in range(10)
    ]
    result = msprt(looks=looks)
    assert len(result.pvalues) == 10 and result.reason is None
    low, high = result.absolute_cs[-1]
    assert low < result.absolute_lift < high
    assert result.absolute_lift == pytest.approx(values_t.mean() - values_c.mean(), rel=1e-12)


def test_undefined_first_looks_are_reported() -> None:
    looks = [
        (Proportion(0, 0), Proportion(0, 0)),
        (Proportion(0, 100), Proportion(0, 100)),
        (Proportion(5, 200), Proportion(9, 200)),
    ]
    with pytest.warns(UndefinedResultWarning) as record:
        result = msprt(looks=looks)
    message = str(record[0].message)
    assert "control has no visitors at look(s) 1" in message
    assert "neither variant varies yet at look(s) 2" in message
    assert result.reason == message
    assert math.isnan(result.pvalues[0]) and math.isnan(result.pvalues[1])
    assert 0 < result.pvalues[2] <= 1 and result.pvalue == result.pvalues[2]
    assert math.isnan(result.absolute_cs[1][0]) and not math.isnan(result.absolute_cs[2][0])


def test_invalid_looks() -> None:
    with pytest.raises(InvalidInputError, match="looks must have at least 1 item"):
        msprt(looks=[])
    with pytest.raises(InvalidInputError, match=r"looks must be cumulative: treatment visitors"):
        msprt(
            looks=[
                (Proportion(1, 10), Proportion(1, 10)),
                (Proportion(2, 20), Proportion(1, 5)),
            ]
        )
    with pytest.raises(InvalidInputError, match="summaries of one kind"):
        msprt(looks=[(Proportion(1, 10), MeanSummary(2, 1.0, 1.0))])
    with pytest.raises(InvalidInputError, match=r"looks\[0\] must be a \(control, treatment\)"):
        msprt(looks=[(Proportion(1, 10),)])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=r"mixing_variance must be > 0, got -1\.0"):
        msprt(looks=_looks(), mixing_variance=-1.0)
    with pytest.raises(InvalidInputError, match=r"planned_visitors must be > 0, got 0\.0"):
        msprt(looks=_looks(), planned_visitors=0)
