"""The named conventions beside the defaults, each against a library call or a published
worked example, and the consistent API (new names, deprecated aliases)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from stats import (
    JEFFREYS_PRIOR,
    UNIFORM_PRIOR,
    BetaPrior,
    InvalidInputError,
    MeanSummary,
    Proportion,
    RatioSummary,
    UndefinedResultWarning,
    chance_to_be_best,
    chance_to_beat_control,
    compare_proportions,
    compare_ratios,
    minimum_detectable_effect,
    sample_size,
    srm_test,
)

PAIRS = [((150, 5000), (189, 5000)), ((30, 1000), (52, 1100)), ((400, 2000), (380, 1900))]


# --- unpooled two-proportion test ---------------------------------------------------------------


@pytest.mark.parametrize(("control", "treatment"), PAIRS)
def test_unpooled_test_matches_statsmodels_wald(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = compare_proportions(
        control=Proportion(*control), treatment=Proportion(*treatment), standard_error="unpooled"
    )
    reference = sm_proportion.test_proportions_2indep(
        *treatment, *control, method="wald", compare="diff"
    )
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.method == "two-proportion z-test (unpooled)"
    pooled = compare_proportions(control=Proportion(*control), treatment=Proportion(*treatment))
    assert pooled.absolute_ci == result.absolute_ci  # only the test's standard error differs
    assert pooled.method == "two-proportion z-test"


def test_unknown_standard_error_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="standard_error must be 'pooled' or 'unpooled'"):
        compare_proportions(
            control=Proportion(1, 10),
            treatment=Proportion(2, 10),
            standard_error="score",  # type: ignore[arg-type]
        )


# --- test of the relative lift ------------------------------------------------------------------


@pytest.mark.parametrize(("control", "treatment"), PAIRS)
def test_relative_lift_test_matches_the_delta_method_wald_test(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = compare_proportions(control=Proportion(*control), treatment=Proportion(*treatment))
    p_c, p_t = control[0] / control[1], treatment[0] / treatment[1]
    delta = NonlinearDeltaCov(
        lambda p: np.array([p[0] / p[1] - 1.0]),
        np.array([p_t, p_c]),
        np.diag([p_t * (1 - p_t) / treatment[1], p_c * (1 - p_c) / control[1]]),
    )
    statistic, pvalue = delta.wald_test(np.zeros(1))
    assert result.relative_statistic**2 == pytest.approx(float(statistic), rel=1e-10)
    assert result.relative_pvalue == pytest.approx(float(pvalue), rel=1e-10)
    assert (result.relative_pvalue < 0.05) == (
        not result.relative_ci[0] < 0 < result.relative_ci[1]
    )


def test_ratio_comparison_shows_each_variants_standard_error() -> None:
    rng = np.random.default_rng(2)
    parts = []
    for scale in (20.0, 24.0):
        x, y = rng.gamma(2.0, scale, 400), rng.poisson(2.0, 400) + 1.0
        parts.append((x, y, RatioSummary.from_values(numerator=x, denominator=y)))
    result = compare_ratios(control=parts[0][2], treatment=parts[1][2])
    for (x, y, _), se in zip(
        parts, (result.control_standard_error, result.treatment_standard_error), strict=True
    ):
        covariance = np.cov(np.vstack([x, y]), ddof=1) / x.size
        delta = NonlinearDeltaCov(
            lambda p: np.array([p[0] / p[1]]), np.array([x.mean(), y.mean()]), covariance
        )
        assert se == pytest.approx(float(np.sqrt(delta.cov()[0, 0])), rel=1e-10)
    assert result.standard_error == pytest.approx(
        math.hypot(result.control_standard_error, result.treatment_standard_error), rel=1e-12
    )


# --- Beta priors --------------------------------------------------------------------------------


def _around(a: float, b: float) -> tuple[float, float]:
    """Where a Beta(a, b) density has its mass: +/-14 standard deviations, within [0, 1]."""
    mean = a / (a + b)
    spread = 14 * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    return max(mean - spread, 0.0), min(mean + spread, 1.0)


def _integrate(function: Callable[[float], float], a: float, b: float) -> float:
    low, high = _around(a, b)
    value, _ = integrate.quad(
        function, low, high, points=[a / (a + b)], epsabs=1e-14, epsrel=1e-12, limit=400
    )
    return float(value)


def _reference(a_c: float, b_c: float, a_t: float, b_t: float) -> tuple[float, float]:
    """P(p_t > p_c) = int f_t F_c, and E[max(p_c - p_t, 0)] = int f_t(x) E[(p_c - x)+] dx with
    E[(Y - x)+] = a/(a+b) (1 - I_x(a+1, b)) - x (1 - I_x(a, b)) for Y ~ Beta(a, b)."""
    chance = _integrate(
        lambda x: scipy_stats.beta.pdf(x, a_t, b_t) * scipy_stats.beta.cdf(x, a_c, b_c), a_t, b_t
    )

    def excess(x: float) -> float:
        mean = a_c / (a_c + b_c)
        return float(
            mean * scipy_stats.beta.sf(x, a_c + 1, b_c) - x * scipy_stats.beta.sf(x, a_c, b_c)
        )

    loss = _integrate(lambda x: scipy_stats.beta.pdf(x, a_t, b_t) * excess(x), a_t, b_t)
    return chance, loss


@pytest.mark.parametrize(("control", "treatment"), [((3, 40), (7, 38)), ((0, 5), (1, 5)), *PAIRS])
def test_jeffreys_prior_matches_integration(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = chance_to_beat_control(
        control=Proportion(*control), treatment=Proportion(*treatment), prior=JEFFREYS_PRIOR
    )
    a_c, b_c = control[0] + 0.5, control[1] - control[0] + 0.5
    a_t, b_t = treatment[0] + 0.5, treatment[1] - treatment[0] + 0.5
    chance, loss = _reference(a_c, b_c, a_t, b_t)
    assert result.chance_to_beat_control == pytest.approx(chance, abs=1e-9)
    assert result.expected_loss == pytest.approx(loss, rel=1e-7, abs=1e-12)
    assert result.method == "Beta-Binomial posterior, Beta(0.5, 0.5) prior"


def test_informative_prior_is_pseudo_data() -> None:
    """A Beta(31, 970) prior (3% from a past test worth about 1,000 visitors) is the uniform
    prior with 30 conversions among 999 extra visitors in each variant."""
    prior = BetaPrior(31.0, 970.0)
    control, treatment = Proportion(150, 5000), Proportion(189, 5000)
    informed = chance_to_beat_control(control=control, treatment=treatment, prior=prior)
    shifted = chance_to_beat_control(
        control=Proportion(180, 5999), treatment=Proportion(219, 5999), prior=UNIFORM_PRIOR
    )
    assert informed.chance_to_beat_control == pytest.approx(
        shifted.chance_to_beat_control, rel=1e-12
    )
    assert informed.expected_loss == pytest.approx(shifted.expected_loss, rel=1e-10)
    flat = chance_to_beat_control(control=control, treatment=treatment)
    assert informed.chance_to_beat_control < flat.chance_to_beat_control  # shrunk towards 3%


def test_chance_to_be_best_with_a_prior_against_monte_carlo() -> None:
    variants = [Proportion(10, 100), Proportion(15, 100), Proportion(12, 100)]
    best = chance_to_be_best(variants=variants, prior=JEFFREYS_PRIOR)
    rng = np.random.default_rng(0)
    draws = np.stack([rng.beta(v.conversions + 0.5, v.visitors - v.conversions + 0.5, 400_000)
                      for v in variants])  # fmt: skip
    frequency = np.bincount(draws.argmax(axis=0), minlength=3) / draws.shape[1]
    assert best == pytest.approx(tuple(frequency), abs=3e-3)
    two = chance_to_be_best(variants=variants[:2], prior=JEFFREYS_PRIOR)
    assert two[1] == pytest.approx(
        chance_to_beat_control(control=variants[0], treatment=variants[1], prior=JEFFREYS_PRIOR)
        .chance_to_beat_control, rel=1e-12
    )  # fmt: skip


def test_invalid_priors() -> None:
    with pytest.raises(InvalidInputError, match=r"a must be > 0, got 0\.0"):
        BetaPrior(0.0, 1.0)
    with pytest.raises(InvalidInputError, match="prior applies to conversion metrics"):
        chance_to_beat_control(
            control=MeanSummary(3, 3.0, 5.0),
            treatment=MeanSummary(3, 4.0, 8.0),
            prior=JEFFREYS_PRIOR,
        )
    with pytest.raises(InvalidInputError, match="prior must be a BetaPrior or None"):
        chance_to_beat_control(
            control=Proportion(1, 2),
            treatment=Proportion(1, 2),
            prior=(1, 1),  # type: ignore[arg-type]
        )


# --- sample-size conventions --------------------------------------------------------------------


def test_evan_miller_convention_matches_the_calculator() -> None:
    """The calculator's default example: 20% baseline, 5 points absolute, 80% power, 5%
    significance: 1,030 per variation (evanmiller.org/ab-testing/sample-size.html)."""
    assert sample_size(baseline=0.2, mde=0.05, relative=False, method="evan_miller") == 1030
    # Above 50% the calculator reflects the baseline: 80% is planned as 20%.
    assert sample_size(baseline=0.8, mde=0.05, relative=False, method="evan_miller") == 1030


def test_kohavi_rule_of_thumb_matches_the_published_example() -> None:
    """Kohavi et al. (2009): 5% conversion, 5% relative change: 16 * 0.05 * 0.95 / 0.0025**2
    = 121,600 users per variant."""
    assert sample_size(baseline=0.05, mde=0.05, method="kohavi") == 121_600
    assert sample_size(mde=0.5, relative=False, kind="mean", std=2.0, method="kohavi") == 256
    with pytest.raises(InvalidInputError, match="method='kohavi' is the rule of thumb"):
        sample_size(baseline=0.05, mde=0.05, method="kohavi", power=0.9)


@pytest.mark.parametrize(("baseline", "mde"), [(0.03, 0.26), (0.1, 0.05), (0.5, -0.1)])
def test_cohens_h_and_unpooled_match_normal_ind_power(baseline: float, mde: float) -> None:
    treated = baseline * (1 + mde)
    h = sm_proportion.proportion_effectsize(treated, baseline)
    expected = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert sample_size(baseline=baseline, mde=mde, method="cohens_h") == math.ceil(expected)
    spread = math.sqrt((baseline * (1 - baseline) + treated * (1 - treated)) / 2)
    expected = NormalIndPower().solve_power(
        effect_size=(treated - baseline) / spread, alpha=0.05, power=0.8, ratio=1.0
    )
    assert sample_size(baseline=baseline, mde=mde, method="unpooled") == math.ceil(expected)


@pytest.mark.parametrize(
    ("effect", "level", "power"), [(0.25, 0.95, 0.8), (0.1, 0.99, 0.9), (0.8, 0.95, 0.8)]
)
def test_t_based_plan_matches_ttest_ind_power(effect: float, level: float, power: float) -> None:
    n = sample_size(
        mde=effect * 3.0, relative=False, kind="mean", std=3.0, method="t",
        confidence_level=level, power=power,
    )  # fmt: skip
    expected = TTestIndPower().solve_power(
        effect_size=effect, alpha=1 - level, power=power, ratio=1.0
    )
    assert n == math.ceil(expected)


def test_methods_are_checked_against_the_kind() -> None:
    with pytest.raises(InvalidInputError, match="method must be one of 'default', 'kohavi', 't'"):
        sample_size(mde=0.5, relative=False, kind="mean", std=2.0, method="cohens_h")
    with pytest.raises(InvalidInputError, match="method must be one of 'default', 'unpooled'"):
        sample_size(baseline=0.1, mde=0.1, method="t")


# --- one API ------------------------------------------------------------------------------------


def test_planning_speaks_confidence_level_and_alpha_is_deprecated() -> None:
    new = sample_size(baseline=0.03, mde=0.26, confidence_level=0.9)
    with pytest.warns(DeprecationWarning, match=r"sample_size\(alpha=...\) is deprecated"):
        assert sample_size(baseline=0.03, mde=0.26, alpha=0.1) == new
    with pytest.warns(DeprecationWarning, match="minimum_detectable_effect"):
        old = minimum_detectable_effect(baseline=0.03, n_per_variant=8450, alpha=0.1)
    assert old == minimum_detectable_effect(baseline=0.03, n_per_variant=8450, confidence_level=0.9)
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidInputError, match="not both"):
        sample_size(baseline=0.03, mde=0.26, alpha=0.1, confidence_level=0.9)


def test_absolute_mean_plans_need_no_baseline() -> None:
    assert sample_size(mde=0.5, relative=False, kind="mean", std=2.0) == 252
    assert minimum_detectable_effect(n_per_variant=252, relative=False, kind="mean", std=2.0) > 0
    with pytest.raises(InvalidInputError, match="baseline must be given for a conversion metric"):
        sample_size(mde=0.1)
    with pytest.raises(InvalidInputError, match="baseline must be given"):
        sample_size(mde=0.1, kind="mean", std=2.0)


def test_counts_accept_integral_floats() -> None:
    assert Proportion(300.0, 1000.0) == Proportion(300, 1000)  # type: ignore[arg-type]
    assert isinstance(Proportion(300.0, 1000).conversions, int)  # type: ignore[arg-type]
    assert MeanSummary(3.0, 6.0, 14.0).visitors == 3  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"conversions must be an integer >= 0, got 300\.5"):
        Proportion(300.5, 1000)  # type: ignore[arg-type]


def test_srm_reports_degrees_of_freedom() -> None:
    result = srm_test(visitors=[315, 108, 101, 32], weights=[9, 3, 3, 1])
    assert result.df == 3
    assert result.pvalue == pytest.approx(
        float(scipy_stats.chi2.sf(result.statistic, 3)), rel=1e-12
    )


def test_chance_to_be_best_is_a_result_that_still_unpacks() -> None:
    best = chance_to_be_best(variants=[Proportion(10, 100), Proportion(15, 100)])
    low, high = best
    assert (low, high) == best.chances and best.reason is None
    assert best.method == "Beta-Binomial posterior, Beta(1, 1) prior"
    with pytest.warns(UndefinedResultWarning) as record:
        undefined = chance_to_be_best(variants=[MeanSummary(1, 2.0, 4.0), MeanSummary(3, 3.0, 5.0)])
    assert undefined.reason == str(record[0].message)
    assert all(math.isnan(p) for p in undefined)
