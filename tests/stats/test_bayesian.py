"""Bayesian read-outs against independent numerical integration and Monte Carlo."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special
from scipy import stats as scipy_stats

from stats import (
    InvalidInputError,
    MeanSummary,
    Proportion,
    UndefinedResultWarning,
    _formulas,
    chance_to_be_best,
    chance_to_beat_control,
)
from tests.stats.conftest import PROPERTY_SETTINGS


def _posterior(p: Proportion):  # type: ignore[no-untyped-def]
    return scipy_stats.beta(p.conversions + 1, p.visitors - p.conversions + 1)


def _integrated_chance(control: Proportion, treatment: Proportion) -> float:
    """P(p_t > p_c) = int f_c(x) (1 - F_t(x)) dx, integrated by scipy over the densities."""
    c, t = _posterior(control), _posterior(treatment)
    lo = min(c.ppf(1e-12), t.ppf(1e-12))
    hi = max(c.isf(1e-12), t.isf(1e-12))
    value, _ = integrate.quad(
        lambda x: c.pdf(x) * t.sf(x), lo, hi, points=[c.median(), t.median()], limit=200
    )
    return float(value)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((1, 2), (2, 3)),
        ((30, 1000), (38, 1000)),
        ((150, 5000), (189, 5000)),
        ((95, 100), (90, 100)),
        ((0, 50), (0, 80)),
        ((400, 1000), (380, 900)),
    ],
)
def test_chance_to_beat_control_matches_integration(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    c, t = Proportion(*control), Proportion(*treatment)
    result = chance_to_beat_control(control=c, treatment=t)
    assert result.chance_to_beat_control == pytest.approx(_integrated_chance(c, t), abs=1e-9)
    assert result.method == "Beta-Binomial posterior, Beta(1, 1) prior"
    assert result.reason is None


def _beta_pdf(a: float, b: float):  # type: ignore[no-untyped-def]
    log_norm = special.betaln(a, b)

    def pdf(x: float) -> float:
        if x <= 0.0 or x >= 1.0:
            return 0.0
        return math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - log_norm)

    return pdf


@pytest.mark.parametrize(("control", "treatment"), [((3, 10), (5, 12)), ((30, 200), (24, 210))])
def test_expected_loss_matches_double_integral(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    c_pdf = _beta_pdf(control[0] + 1, control[1] - control[0] + 1)
    t_pdf = _beta_pdf(treatment[0] + 1, treatment[1] - treatment[0] + 1)
    # E[max(p_c - p_t, 0)] = int_0^1 f_t(y) int_y^1 (x - y) f_c(x) dx dy, and symmetrically.
    loss, _ = integrate.dblquad(
        lambda x, y: (x - y) * c_pdf(x) * t_pdf(y), 0, 1, lambda y: y, 1, epsabs=1e-11
    )
    gain, _ = integrate.dblquad(
        lambda y, x: (y - x) * c_pdf(x) * t_pdf(y), 0, 1, lambda x: x, 1, epsabs=1e-11
    )
    result = chance_to_beat_control(control=Proportion(*control), treatment=Proportion(*treatment))
    assert result.expected_loss == pytest.approx(loss, abs=1e-8)
    assert result.control_expected_loss == pytest.approx(gain, abs=1e-8)
    # E[p_t - p_c] = gain - loss
    c, t = _posterior(Proportion(*control)), _posterior(Proportion(*treatment))
    assert result.control_expected_loss - result.expected_loss == pytest.approx(
        t.mean() - c.mean(), abs=1e-10
    )


def test_monte_carlo_agrees() -> None:
    rng = np.random.default_rng(2024)
    control, treatment = Proportion(120, 4000), Proportion(150, 4000)
    draws_c = _posterior(control).rvs(size=1_000_000, random_state=rng)
    draws_t = _posterior(treatment).rvs(size=1_000_000, random_state=rng)
    result = chance_to_beat_control(control=control, treatment=treatment)
    chance = float(np.mean(draws_t > draws_c))
    assert result.chance_to_beat_control == pytest.approx(chance, abs=4 * math.sqrt(0.25 / 1e6))
    loss = float(np.mean(np.maximum(draws_c - draws_t, 0.0)))
    assert result.expected_loss == pytest.approx(loss, rel=0.02)


def test_exact_sum_and_quadrature_agree_at_the_switch() -> None:
    """Beyond 20,000 terms the sum is replaced by quadrature of the same integral."""
    a_t, b_t, a_c, b_c = 20_001.0, 480_000.0, 20_301.0, 479_700.0
    quadrature = _formulas.beta_probability_greater(a_t, b_t, a_c, b_c)
    exact = _formulas._beta_sum(a_t, b_t, a_c, b_c)
    assert quadrature == pytest.approx(exact, abs=1e-10)
    # Very different sizes (1M against 100M visitors), either way round. At parameters in the
    # hundred millions scipy's betaln carries ~1e-7 absolute error into each term of the sum,
    # so the two agree to that; adaptive quadrature of the same integral agrees more closely.
    small, large = (30_001.0, 970_001.0), (3_000_001.0, 97_000_001.0)
    exact = _formulas._beta_sum(*small, *large)
    gauss = _formulas.beta_probability_greater(*small, *large)
    assert gauss == pytest.approx(exact, abs=2e-7)
    assert _formulas.beta_probability_greater(*large, *small) == pytest.approx(1 - gauss, abs=1e-12)
    a2, b2 = large
    mode = a2 / (a2 + b2)
    spread = 12 * math.sqrt(mode * (1 - mode) / (a2 + b2))

    def log_density(x: float) -> float:
        return (a2 - 1) * math.log(x) + (b2 - 1) * math.log1p(-x)

    peak = log_density(mode)
    weight = lambda x: math.exp(log_density(x) - peak)  # noqa: E731
    top, _ = integrate.quad(
        lambda x: weight(x) * special.betainc(*small, x), mode - spread, mode + spread,
        epsabs=0, epsrel=1e-12, limit=400, full_output=1,
    )[:2]  # fmt: skip
    bottom = integrate.quad(
        weight, mode - spread, mode + spread, epsabs=0, epsrel=1e-12, limit=400, full_output=1
    )[0]
    assert gauss == pytest.approx(1 - top / bottom, abs=1e-9)
    for args in [(30.0, 970.0, 40.0, 960.0), (3.0, 2.0, 2.0, 2.0), (900.0, 100.0, 950.0, 50.0)]:
        via_sum = _formulas.beta_probability_greater(*args)
        via_quadrature = _formulas._probability_best_one(
            0,
            [
                functools.partial(scipy_stats.beta.ppf, a=args[0], b=args[1]),
                functools.partial(scipy_stats.beta.ppf, a=args[2], b=args[3]),
            ],
            [
                functools.partial(scipy_stats.beta.cdf, a=args[0], b=args[1]),
                functools.partial(scipy_stats.beta.cdf, a=args[2], b=args[3]),
            ],
        )
        assert via_sum == pytest.approx(via_quadrature, abs=1e-9)


def test_large_experiment_matches_the_normal_approximation() -> None:
    control = Proportion(300_000, 10_000_000)
    treatment = Proportion(301_500, 10_000_000)
    result = chance_to_beat_control(control=control, treatment=treatment)
    # Normal approximation of the difference of two narrow Betas.
    se = math.sqrt(sum(p.rate * (1 - p.rate) / p.visitors for p in (control, treatment)))
    z = (treatment.rate - control.rate) / se
    assert result.chance_to_beat_control == pytest.approx(scipy_stats.norm.cdf(z), abs=1e-3)


@PROPERTY_SETTINGS
@given(
    st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_swapping_variants_complements_the_chance(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    forward = chance_to_beat_control(control=Proportion(*control), treatment=Proportion(*treatment))
    backward = chance_to_beat_control(
        control=Proportion(*treatment), treatment=Proportion(*control)
    )
    assert 0.0 <= forward.chance_to_beat_control <= 1.0
    assert forward.chance_to_beat_control + backward.chance_to_beat_control == pytest.approx(
        1.0, abs=1e-9
    )
    assert forward.expected_loss == pytest.approx(backward.control_expected_loss, abs=1e-12)
    assert forward.expected_loss >= 0.0


def test_identical_data_is_a_coin_flip() -> None:
    result = chance_to_beat_control(control=Proportion(40, 900), treatment=Proportion(40, 900))
    assert result.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    assert result.expected_loss == pytest.approx(result.control_expected_loss, abs=1e-14)


def test_normal_posterior_for_means() -> None:
    rng = np.random.default_rng(5)
    c_values, t_values = rng.exponential(10.0, 800), rng.exponential(10.8, 700)
    control, treatment = MeanSummary.from_values(c_values), MeanSummary.from_values(t_values)
    result = chance_to_beat_control(control=control, treatment=treatment)
    d = t_values.mean() - c_values.mean()
    s = math.sqrt(c_values.var(ddof=1) / 800 + t_values.var(ddof=1) / 700)
    posterior = scipy_stats.norm(d, s)
    assert result.chance_to_beat_control == pytest.approx(posterior.sf(0.0), rel=1e-12)
    loss, _ = integrate.quad(lambda x: -x * posterior.pdf(x), -np.inf, 0.0, epsabs=1e-13)
    assert result.expected_loss == pytest.approx(loss, rel=1e-7)
    gain, _ = integrate.quad(lambda x: x * posterior.pdf(x), 0.0, np.inf, epsabs=1e-13)
    assert result.control_expected_loss == pytest.approx(gain, rel=1e-7)
    assert result.method == "normal posterior of the mean, flat prior"


def test_chance_to_be_best_two_variants_matches_beat_control() -> None:
    control, treatment = Proportion(150, 5000), Proportion(189, 5000)
    chance = chance_to_beat_control(control=control, treatment=treatment).chance_to_beat_control
    assert chance_to_be_best(variants=[control, treatment]) == pytest.approx(
        (1 - chance, chance), abs=1e-12
    )
    means = [MeanSummary.from_values([1.0, 2.0, 4.0]), MeanSummary.from_values([2.0, 3.0, 5.0])]
    beat = chance_to_beat_control(control=means[0], treatment=means[1]).chance_to_beat_control
    assert chance_to_be_best(variants=means) == pytest.approx((1 - beat, beat), abs=1e-8)


def test_chance_to_be_best_three_variants_against_monte_carlo() -> None:
    variants = [Proportion(100, 2000), Proportion(118, 2000), Proportion(112, 2000)]
    best = chance_to_be_best(variants=variants)
    assert sum(best) == pytest.approx(1.0, abs=1e-8)
    rng = np.random.default_rng(99)
    draws = np.column_stack([_posterior(v).rvs(size=400_000, random_state=rng) for v in variants])
    frequencies = np.bincount(np.argmax(draws, axis=1), minlength=3) / draws.shape[0]
    assert best == pytest.approx(tuple(frequencies), abs=4 * math.sqrt(0.25 / 400_000))


def test_chance_to_be_best_symmetry_and_narrow_posteriors() -> None:
    same = [Proportion(50, 1000)] * 3
    assert chance_to_be_best(variants=same) == pytest.approx((1 / 3,) * 3, abs=1e-8)
    narrow = [
        MeanSummary(n=1_000_000, sum=1_000_000.0, sum_squares=2_000_000.0),
        MeanSummary(n=1_000_000, sum=1_010_000.0, sum_squares=2_030_000.0),
        MeanSummary(n=1_000_000, sum=990_000.0, sum_squares=1_970_000.0),
    ]
    best = chance_to_be_best(variants=narrow)
    assert sum(best) == pytest.approx(1.0, abs=1e-8)
    assert best[1] > 0.999


def test_undefined_mean_posteriors() -> None:
    constant = MeanSummary(n=3, sum=3.0, sum_squares=3.0)
    other = MeanSummary.from_values([1.0, 2.0, 3.0])
    with pytest.warns(UndefinedResultWarning, match="control has no variation"):
        result = chance_to_beat_control(control=constant, treatment=other)
    assert math.isnan(result.chance_to_beat_control) and math.isnan(result.expected_loss)
    assert result.reason == "control has no variation, so its posterior is degenerate"
    with pytest.warns(UndefinedResultWarning, match=r"variants\[1\] has 1 visitor"):
        best = chance_to_be_best(variants=[other, MeanSummary.from_values([2.0])])
    assert all(math.isnan(p) for p in best)


def test_empty_conversion_variant_keeps_the_prior() -> None:
    result = chance_to_beat_control(control=Proportion(0, 0), treatment=Proportion(0, 0))
    assert result.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    # Two uniform priors: E[max(U1 - U2, 0)] = 1/6.
    assert result.expected_loss == pytest.approx(1 / 6, abs=1e-12)


def test_invalid_bayesian_input() -> None:
    with pytest.raises(InvalidInputError, match="must be all Proportion or all MeanSummary"):
        chance_to_beat_control(control=Proportion(1, 2), treatment=MeanSummary(2, 1.0, 1.0))
    with pytest.raises(InvalidInputError, match="variants must have at least 2 items, got 1"):
        chance_to_be_best(variants=[Proportion(1, 2)])
