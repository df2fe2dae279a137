"""compare_proportions, compare_means and compare_ratios against scipy/statsmodels, published
worked examples, properties, and undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from stats import (
    ComparisonResult,
    InvalidInputError,
    MeanSummary,
    Proportion,
    RatioSummary,
    UndefinedResultWarning,
    compare_means,
    compare_proportions,
    compare_ratios,
)
from tests.stats.conftest import PROPERTY_SETTINGS, call_recording, is_nan_interval

Z95 = scipy_stats.norm.ppf(0.975)


def _delta_relative_se(t: float, c: float, var_t: float, var_c: float) -> float:
    """statsmodels' generic delta method for t / c - 1 with independent estimates."""
    delta = NonlinearDeltaCov(
        lambda params: np.array([params[0] / params[1] - 1.0]),
        np.array([t, c]),
        np.diag([var_t, var_c]),
    )
    return float(np.sqrt(delta.cov()[0, 0]))


# --- conversions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((150, 5000), (189, 5000)), ((30, 1000), (20, 900)), ((4980, 5000), (4990, 5100))],
)
def test_proportions_match_statsmodels_and_scipy(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = compare_proportions(control=Proportion(*control), treatment=Proportion(*treatment))
    z, p = proportions_ztest(
        count=[treatment[0], control[0]], nobs=[treatment[1], control[1]], alternative="two-sided"
    )
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.pvalue == pytest.approx(p, rel=1e-10)
    table = np.array([[c, n - c] for c, n in (control, treatment)])
    chi2, chi2_p, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert result.pvalue == pytest.approx(chi2_p, rel=1e-9)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-10)
    # statsmodels' Wald interval uses 1.96 only approximately; compare the standard error.
    low, high = confint_proportions_2indep(*treatment, *control, method="wald", compare="diff")
    assert (high - low) / (2 * Z95) == pytest.approx(result.standard_error, rel=1e-9)
    assert result.absolute_ci == pytest.approx((low, high), rel=1e-9)
    p_c, p_t = control[0] / control[1], treatment[0] / treatment[1]
    relative_se = _delta_relative_se(
        p_t, p_c, p_t * (1 - p_t) / treatment[1], p_c * (1 - p_c) / control[1]
    )
    assert result.relative_standard_error == pytest.approx(relative_se, rel=1e-10)
    assert result.relative_ci == pytest.approx(
        (p_t / p_c - 1 - Z95 * relative_se, p_t / p_c - 1 + Z95 * relative_se), rel=1e-10
    )
    assert result.method == "two-proportion z-test"
    assert result.reason is None


def test_physicians_health_study_agresti() -> None:
    """Agresti, An Introduction to Categorical Data Analysis (2nd ed., 2007), Section 2.2, the
    Physicians' Health Study: myocardial infarction in 189 of 11,034 on placebo and 104 of 11,037
    on aspirin. The difference of proportions is 0.0077 with 95% Wald interval (0.005, 0.011)
    and the relative risk is 1.82. (The test itself is checked against scipy's chi-square.)"""
    result = compare_proportions(
        control=Proportion(conversions=104, visitors=11037),
        treatment=Proportion(conversions=189, visitors=11034),
    )
    assert round(result.absolute_lift, 4) == 0.0077
    assert tuple(round(x, 3) for x in result.absolute_ci) == (0.005, 0.011)
    assert round(result.relative_lift + 1, 2) == 1.82
    table = np.array([[104, 11037 - 104], [189, 11034 - 189]])
    chi2, pvalue, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-10)
    assert result.pvalue == pytest.approx(pvalue, rel=1e-9)


def test_tail_pvalues_do_not_underflow() -> None:
    result = compare_proportions(
        control=Proportion(conversions=1000, visitors=10000),
        treatment=Proportion(conversions=3000, visitors=10000),
    )
    assert result.statistic > 30
    assert 0 < result.pvalue < 1e-200
    expected_log = math.log(2) + scipy_stats.norm.logsf(result.statistic)
    assert math.log(result.pvalue) == pytest.approx(expected_log, rel=1e-12)


def test_welch_tail_pvalues_do_not_underflow() -> None:
    control = MeanSummary.from_values(np.linspace(0.0, 1.0, 2000))
    treatment = MeanSummary.from_values(np.linspace(0.27, 1.27, 2000))  # t about 30
    result = compare_means(control=control, treatment=treatment)
    assert 0 < result.pvalue < 1e-150
    expected_log = math.log(2) + scipy_stats.t.logsf(result.statistic, result.df)
    assert math.log(result.pvalue) == pytest.approx(expected_log, rel=1e-9)


def test_confidence_interval_at_other_levels() -> None:
    result = compare_proportions(control=Proportion(150, 5000), treatment=Proportion(189, 5000))
    assert result.confidence_interval() == result.absolute_ci
    assert result.confidence_interval(0.95) == pytest.approx(result.absolute_ci, rel=1e-12)
    low, high = result.confidence_interval(0.99)
    z99 = scipy_stats.norm.ppf(0.995)
    assert (low, high) == pytest.approx(
        (
            result.absolute_lift - z99 * result.standard_error,
            result.absolute_lift + z99 * result.standard_error,
        ),
        rel=1e-12,
    )
    assert low < result.absolute_ci[0] and high > result.absolute_ci[1]
    assert result.relative_confidence_interval(0.95) == pytest.approx(result.relative_ci, rel=1e-12)
    assert result.significant is (result.pvalue < 0.05)
    with pytest.raises(InvalidInputError, match=r"confidence_level must be in \(0, 1\), got 1.5"):
        result.confidence_interval(1.5)


def test_proportions_99_percent_level() -> None:
    result = compare_proportions(
        control=Proportion(150, 5000), treatment=Proportion(189, 5000), confidence_level=0.99
    )
    default = compare_proportions(control=Proportion(150, 5000), treatment=Proportion(189, 5000))
    assert result.absolute_ci == pytest.approx(default.confidence_interval(0.99), rel=1e-12)
    assert result.pvalue == default.pvalue
    assert result.confidence_level == 0.99


# --- means --------------------------------------------------------------------------------------


def _mean_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    control = rng.lognormal(mean=3.0, sigma=1.0, size=400) * (rng.random(400) < 0.3)
    treatment = rng.lognormal(mean=3.1, sigma=1.2, size=350) * (rng.random(350) < 0.33)
    return control, treatment


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_means_match_scipy_and_statsmodels(seed: int) -> None:
    control, treatment = _mean_data(seed)
    result = compare_means(
        control=MeanSummary.from_values(control), treatment=MeanSummary.from_values(treatment)
    )
    reference = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.df == pytest.approx(reference.df, rel=1e-10)
    assert result.absolute_ci == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-9)
    from_stats = scipy_stats.ttest_ind_from_stats(
        treatment.mean(), treatment.std(ddof=1), treatment.size,
        control.mean(), control.std(ddof=1), control.size,
        equal_var=False,
    )  # fmt: skip
    assert result.pvalue == pytest.approx(from_stats.pvalue, rel=1e-9)
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert result.absolute_ci == pytest.approx(compare.tconfint_diff(usevar="unequal"), rel=1e-9)
    relative_se = _delta_relative_se(
        treatment.mean(),
        control.mean(),
        treatment.var(ddof=1) / treatment.size,
        control.var(ddof=1) / control.size,
    )
    assert result.relative_standard_error == pytest.approx(relative_se, rel=1e-9)
    assert result.method == "Welch's t-test"


def test_welch_wikipedia_example() -> None:
    """Wikipedia, "Welch's t-test", Examples: samples A1 and A2 of 15 give t = -2.46,
    nu = 24.99 (about 25.0) and p = 0.021 (A1 - A2, so A2 is the control here)."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    result = compare_means(
        control=MeanSummary.from_values(a2), treatment=MeanSummary.from_values(a1)
    )
    assert round(result.statistic, 2) == -2.46
    assert round(result.df, 2) == 24.99
    assert round(result.pvalue, 3) == 0.021


def test_mean_summary_tolerates_rounding_in_constant_data() -> None:
    values = np.full(1000, 0.1)
    summary = MeanSummary(n=1000, sum=float(np.sum(values)), sum_squares=float(np.sum(values**2)))
    assert summary.variance == pytest.approx(0.0, abs=1e-15)


# --- ratios -------------------------------------------------------------------------------------


def _ratio_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    orders = rng.poisson(0.4, size=2000).astype(float)
    revenue = orders * rng.gamma(4.0, 15.0, size=2000)
    return revenue, orders


def test_ratio_variance_matches_statsmodels_delta_method() -> None:
    revenue, orders = _ratio_data(7)
    summary = RatioSummary.from_values(numerator=revenue, denominator=orders)
    n = revenue.size
    means = np.array([revenue.mean(), orders.mean()])
    covariance = np.cov(np.vstack([revenue, orders]), ddof=1) / n
    delta = NonlinearDeltaCov(lambda p: np.array([p[0] / p[1]]), means, covariance)
    expected_se = float(np.sqrt(delta.cov()[0, 0]))
    other_revenue, other_orders = _ratio_data(8)
    other = RatioSummary.from_values(numerator=other_revenue, denominator=other_orders)
    result = compare_ratios(control=summary, treatment=other)
    assert result.control_value == pytest.approx(revenue.sum() / orders.sum(), rel=1e-12)
    other_means = np.array([other_revenue.mean(), other_orders.mean()])
    other_cov = np.cov(np.vstack([other_revenue, other_orders]), ddof=1) / n
    other_se = float(
        np.sqrt(
            NonlinearDeltaCov(lambda p: np.array([p[0] / p[1]]), other_means, other_cov).cov()[0, 0]
        )
    )
    assert result.standard_error == pytest.approx(math.hypot(expected_se, other_se), rel=1e-9)
    z = result.absolute_lift / math.hypot(expected_se, other_se)
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.pvalue == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-9)
    assert result.relative_standard_error == pytest.approx(
        _delta_relative_se(
            result.treatment_value, result.control_value, other_se**2, expected_se**2
        ),
        rel=1e-9,
    )


def test_ratio_with_constant_denominator_is_a_mean() -> None:
    """With every denominator 1 the ratio is a mean and the delta variance is s**2 / n."""
    revenue, _ = _ratio_data(3)
    other, _ = _ratio_data(4)
    ones = np.ones_like(revenue)
    ratio = compare_ratios(
        control=RatioSummary.from_values(numerator=revenue, denominator=ones),
        treatment=RatioSummary.from_values(numerator=other, denominator=ones),
    )
    welch = compare_means(
        control=MeanSummary.from_values(revenue), treatment=MeanSummary.from_values(other)
    )
    assert ratio.absolute_lift == pytest.approx(welch.absolute_lift, rel=1e-12)
    assert ratio.standard_error == pytest.approx(welch.standard_error, rel=1e-9)


# --- properties ---------------------------------------------------------------------------------

proportions = st.integers(min_value=1, max_value=10_000).flatmap(
    lambda n: st.builds(Proportion, conversions=st.integers(0, n), visitors=st.just(n))
)


def _check_result(result: ComparisonResult) -> None:
    if not math.isnan(result.pvalue):
        assert 0.0 <= result.pvalue <= 1.0
    for estimate, interval in (
        (result.absolute_lift, result.absolute_ci),
        (result.relative_lift, result.relative_ci),
    ):
        if not is_nan_interval(interval):
            assert interval[0] <= estimate <= interval[1]
            assert interval[0] < interval[1]
    nan_fields = [
        math.isnan(x)
        for x in (result.pvalue, result.relative_lift, *result.absolute_ci, *result.relative_ci)
    ]
    assert any(nan_fields) == (result.reason is not None)


@PROPERTY_SETTINGS
@given(control=proportions, treatment=proportions)
def test_proportion_properties(control: Proportion, treatment: Proportion) -> None:
    forward = call_recording(compare_proportions, control=control, treatment=treatment)
    backward = call_recording(compare_proportions, control=treatment, treatment=control)
    _check_result(forward)
    _check_result(backward)
    assert forward.absolute_lift == -backward.absolute_lift
    if not math.isnan(forward.statistic):
        assert forward.statistic == pytest.approx(-backward.statistic, rel=1e-12)
        assert forward.pvalue == pytest.approx(backward.pvalue, rel=1e-12, abs=1e-300)
    if not is_nan_interval(forward.absolute_ci):
        assert forward.absolute_ci == pytest.approx(
            (-backward.absolute_ci[1], -backward.absolute_ci[0]), rel=1e-12, abs=1e-15
        )


# Per-visitor values in cents, as metrics are recorded: arbitrary floats such as 8e-56 only
# probe where a 1e-16 relative rounding swallows the spread, not the statistics.
cents = st.integers(min_value=-1_000_000, max_value=1_000_000).map(lambda c: c / 100)
means = st.lists(cents, min_size=0, max_size=40).map(MeanSummary.from_values)


@PROPERTY_SETTINGS
@given(control=means, treatment=means)
def test_mean_properties(control: MeanSummary, treatment: MeanSummary) -> None:
    forward = call_recording(compare_means, control=control, treatment=treatment)
    backward = call_recording(compare_means, control=treatment, treatment=control)
    _check_result(forward)
    _check_result(backward)
    if not math.isnan(forward.absolute_lift):
        assert forward.absolute_lift == -backward.absolute_lift
    if not math.isnan(forward.statistic):
        assert forward.statistic == pytest.approx(-backward.statistic, rel=1e-9)
        assert forward.pvalue == pytest.approx(backward.pvalue, rel=1e-9, abs=1e-300)


ratios = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 50_000).map(lambda c: c / 100)),
    min_size=0,
    max_size=30,
).map(
    lambda rows: RatioSummary.from_values(
        numerator=[orders * value for orders, value in rows] or np.zeros(0),
        denominator=[float(orders) for orders, _ in rows] or np.zeros(0),
    )
)


@PROPERTY_SETTINGS
@given(control=ratios, treatment=ratios)
def test_ratio_properties(control: RatioSummary, treatment: RatioSummary) -> None:
    forward = call_recording(compare_ratios, control=control, treatment=treatment)
    backward = call_recording(compare_ratios, control=treatment, treatment=control)
    _check_result(forward)
    _check_result(backward)
    if not math.isnan(forward.absolute_lift):
        assert forward.absolute_lift == -backward.absolute_lift
    if not math.isnan(forward.statistic):
        assert forward.statistic == pytest.approx(-backward.statistic, rel=1e-9)


# --- undefined results and invalid input -------------------------------------------------------


def test_empty_variant_is_undefined() -> None:
    with pytest.warns(UndefinedResultWarning, match="control has no visitors"):
        result = compare_proportions(control=Proportion(0, 0), treatment=Proportion(10, 100))
    assert math.isnan(result.pvalue) and math.isnan(result.statistic)
    assert math.isnan(result.absolute_lift) and math.isnan(result.control_value)
    assert is_nan_interval(result.absolute_ci) and is_nan_interval(result.relative_ci)
    assert result.reason == "control has no visitors"


def test_no_conversions_anywhere_is_undefined_not_p_one() -> None:
    with pytest.warns(UndefinedResultWarning, match="standard error of the difference is zero"):
        result = compare_proportions(control=Proportion(0, 500), treatment=Proportion(0, 500))
    assert result.absolute_lift == 0.0
    assert math.isnan(result.pvalue)
    assert is_nan_interval(result.absolute_ci)
    assert math.isnan(result.relative_lift)
    assert result.reason is not None and "control value is 0" in result.reason


def test_zero_control_conversions_only_loses_the_relative_lift() -> None:
    with pytest.warns(UndefinedResultWarning, match="relative lift and its interval are undefined"):
        result = compare_proportions(control=Proportion(0, 500), treatment=Proportion(9, 500))
    assert 0 < result.pvalue < 0.01
    assert not is_nan_interval(result.absolute_ci)
    assert math.isnan(result.relative_lift) and is_nan_interval(result.relative_ci)


def test_zero_variance_means_are_undefined() -> None:
    constant = MeanSummary(n=10, sum=50.0, sum_squares=250.0)
    with pytest.warns(UndefinedResultWarning, match="standard error of the difference is zero"):
        result = compare_means(
            control=constant, treatment=MeanSummary(n=5, sum=30.0, sum_squares=180.0)
        )
    assert result.absolute_lift == 1.0
    assert math.isnan(result.pvalue) and is_nan_interval(result.absolute_ci)


def test_single_visitor_mean_is_undefined() -> None:
    with pytest.warns(UndefinedResultWarning, match="treatment has 1 visitor"):
        result = compare_means(
            control=MeanSummary.from_values([1.0, 2.0, 3.0]),
            treatment=MeanSummary.from_values([4.0]),
        )
    assert result.absolute_lift == 2.0
    assert math.isnan(result.pvalue) and is_nan_interval(result.absolute_ci)


def test_zero_control_mean_loses_relative_lift() -> None:
    with pytest.warns(UndefinedResultWarning, match="control value is 0"):
        result = compare_means(
            control=MeanSummary.from_values([-1.0, 1.0, 0.0]),
            treatment=MeanSummary.from_values([1.0, 2.0, 3.0]),
        )
    assert not math.isnan(result.pvalue)
    assert math.isnan(result.relative_lift)


def test_zero_denominator_ratio_is_undefined() -> None:
    empty = RatioSummary.from_values(numerator=[0.0, 0.0, 0.0], denominator=[0.0, 0.0, 0.0])
    other = RatioSummary.from_values(numerator=[10.0, 0.0, 30.0], denominator=[1.0, 0.0, 2.0])
    with pytest.warns(UndefinedResultWarning, match="control denominator sums to 0"):
        result = compare_ratios(control=empty, treatment=other)
    assert math.isnan(result.control_value) and math.isnan(result.pvalue)
    assert is_nan_interval(result.absolute_ci)


INVALID_SUMMARIES = [
    (
        Proportion,
        {"conversions": 5, "visitors": 3},
        r"conversions must be <= visitors \(3\), got 5",
    ),
    (
        Proportion,
        {"conversions": -1, "visitors": 3},
        r"conversions must be an integer >= 0, got -1",
    ),
    (
        Proportion,
        {"conversions": 1.5, "visitors": 3},
        r"conversions must be an integer >= 0, got 1.5",
    ),
    (MeanSummary, {"n": -2, "sum": 0.0, "sum_squares": 0.0}, r"n must be an integer >= 0, got -2"),
    (
        MeanSummary,
        {"n": 2, "sum": math.nan, "sum_squares": 0.0},
        r"sum must be a finite real number, got nan",
    ),
    (
        MeanSummary,
        {"n": 2, "sum": 10.0, "sum_squares": 40.0},
        r"sum_squares must be >= sum\*\*2 / n = 50.0, got 40.0",
    ),
    (MeanSummary, {"n": 0, "sum": 1.0, "sum_squares": 1.0}, r"sum must be 0 when n is 0, got 1.0"),
    (
        RatioSummary,
        {
            "n": 2,
            "numerator_sum": 2.0,
            "numerator_sum_squares": 2.0,
            "denominator_sum": 2.0,
            "denominator_sum_squares": 4.0,
            "cross_sum": 5.0,
        },
        r"cross_sum = 5.0 is impossible",
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), INVALID_SUMMARIES)
def test_invalid_summaries_name_argument_value_and_range(
    cls: type, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInputError, match=r"confidence_level must be in \(0, 1\), got 0.0"):
        compare_proportions(
            control=Proportion(1, 10), treatment=Proportion(2, 10), confidence_level=0
        )
    with pytest.raises(InvalidInputError, match="control must be a Proportion, got"):
        compare_proportions(control=MeanSummary(1, 1.0, 1.0), treatment=Proportion(2, 10))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="treatment must be a MeanSummary"):
        compare_means(control=MeanSummary(1, 1.0, 1.0), treatment=Proportion(2, 10))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compare_proportions(Proportion(1, 10), Proportion(2, 10))  # type: ignore[call-arg]


def test_summaries_add_across_shards() -> None:
    values = np.arange(10.0)
    whole = MeanSummary.from_values(values)
    parts = MeanSummary.from_values(values[:4]) + MeanSummary.from_values(values[4:])
    assert parts == whole
    assert Proportion(3, 10) + Proportion(4, 20) == Proportion(7, 30)
    numpy_counts = Proportion(conversions=np.int64(3), visitors=np.int64(10))  # type: ignore[arg-type]
    assert numpy_counts.conversions.__class__ is int
