"""CUPED against the same comparison on explicitly adjusted per-visitor values, and against
ordinary least squares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats._delta_method import NonlinearDeltaCov

from stats import (
    CupedResult,
    CupedSummary,
    MeanSummary,
    UndefinedResultWarning,
    compare_means,
    cuped,
)
from tests.stats.conftest import is_nan_interval


def _data(
    seed: int, n_c: int = 3000, n_t: int = 2500, lift: float = 0.5
) -> tuple[Any, Any, Any, Any]:
    rng = np.random.default_rng(seed)
    x_c = rng.gamma(2.0, 5.0, n_c)
    x_t = rng.gamma(2.0, 5.0, n_t)
    y_c = 0.8 * x_c + rng.normal(0.0, 4.0, n_c)
    y_t = 0.8 * x_t + lift + rng.normal(0.0, 4.0, n_t)
    return x_c, y_c, x_t, y_t


def test_cuped_equals_welch_on_adjusted_values_with_pooled_theta() -> None:
    x_c, y_c, x_t, y_t = _data(11)
    result = cuped(
        control=CupedSummary.from_values(values=y_c, covariate=x_c),
        treatment=CupedSummary.from_values(values=y_t, covariate=x_t),
    )
    x = np.concatenate([x_c, x_t])
    y = np.concatenate([y_c, y_t])
    theta = np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1)
    assert result.theta == pytest.approx(theta, rel=1e-10)
    adjusted_c = y_c - theta * (x_c - x.mean())
    adjusted_t = y_t - theta * (x_t - x.mean())
    reference = scipy_stats.ttest_ind(adjusted_t, adjusted_c, equal_var=False)
    assert result.control_value == pytest.approx(adjusted_c.mean(), rel=1e-10)
    assert result.treatment_value == pytest.approx(adjusted_t.mean(), rel=1e-10)
    assert result.absolute_lift == pytest.approx(adjusted_t.mean() - adjusted_c.mean(), rel=1e-9)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    # CUPED reads its tails from the normal distribution (DESIGN.md), not Student's t.
    assert result.pvalue == pytest.approx(2 * scipy_stats.norm.sf(abs(reference.statistic)))
    z = scipy_stats.norm.ppf(0.975)
    se = result.absolute_lift / reference.statistic
    assert result.absolute_ci == pytest.approx(
        (result.absolute_lift - z * se, result.absolute_lift + z * se), rel=1e-9
    )
    unadjusted = compare_means(
        control=MeanSummary.from_values(y_c), treatment=MeanSummary.from_values(y_t)
    )
    assert result.unadjusted.absolute_lift == pytest.approx(unadjusted.absolute_lift, rel=1e-12)
    assert result.unadjusted.standard_error == pytest.approx(unadjusted.standard_error, rel=1e-12)
    assert result.variance_reduction == pytest.approx(
        1 - (result.standard_error / unadjusted.standard_error) ** 2, rel=1e-12
    )
    assert isinstance(result, CupedResult)
    assert result.method == "CUPED z-test (delta method)"


def test_variance_reduction_is_about_squared_correlation() -> None:
    x_c, y_c, x_t, y_t = _data(12)
    result = cuped(
        control=CupedSummary.from_values(values=y_c, covariate=x_c),
        treatment=CupedSummary.from_values(values=y_t, covariate=x_t),
    )
    rho = np.corrcoef(np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t]))[0, 1]
    assert result.variance_reduction == pytest.approx(rho**2, abs=0.02)
    assert result.standard_error < result.unadjusted.standard_error


def test_cuped_lift_close_to_ancova_regression() -> None:
    """OLS of Y on the variant indicator and X estimates the same effect (theta within groups)."""
    x_c, y_c, x_t, y_t = _data(13)
    result = cuped(
        control=CupedSummary.from_values(values=y_c, covariate=x_c),
        treatment=CupedSummary.from_values(values=y_t, covariate=x_t),
    )
    design = np.column_stack(
        [
            np.ones(x_c.size + x_t.size),
            np.r_[np.zeros(x_c.size), np.ones(x_t.size)],
            np.r_[x_c, x_t],
        ]
    )
    fit = sm.OLS(np.r_[y_c, y_t], design).fit(cov_type="HC1")
    assert result.absolute_lift == pytest.approx(fit.params[1], abs=0.02 * fit.bse[1])
    assert result.standard_error == pytest.approx(fit.bse[1], rel=0.02)


def test_relative_lift_variance_matches_statsmodels_delta_method() -> None:
    x_c, y_c, x_t, y_t = _data(14, n_c=800, n_t=1200)
    result = cuped(
        control=CupedSummary.from_values(values=y_c, covariate=x_c),
        treatment=CupedSummary.from_values(values=y_t, covariate=x_t),
    )
    theta = result.theta
    n_c, n_t = x_c.size, x_t.size
    w_c, w_t = n_c / (n_c + n_t), n_t / (n_c + n_t)

    def relative(p: np.ndarray) -> np.ndarray:
        mean_x = w_c * p[1] + w_t * p[3]
        control = p[0] - theta * (p[1] - mean_x)
        treatment = p[2] - theta * (p[3] - mean_x)
        return np.array([treatment / control - 1.0])

    params = np.array([y_c.mean(), x_c.mean(), y_t.mean(), x_t.mean()])
    covariance = np.zeros((4, 4))
    covariance[:2, :2] = np.cov(np.vstack([y_c, x_c]), ddof=1) / n_c
    covariance[2:, 2:] = np.cov(np.vstack([y_t, x_t]), ddof=1) / n_t
    delta = NonlinearDeltaCov(relative, params, covariance)
    assert result.relative_lift == pytest.approx(float(relative(params)[0]), rel=1e-10)
    assert result.relative_standard_error == pytest.approx(
        float(np.sqrt(delta.cov()[0, 0])), rel=1e-6
    )


def test_constant_covariate_leaves_comparison_unchanged() -> None:
    rng = np.random.default_rng(3)
    y_c, y_t = rng.normal(10, 2, 500), rng.normal(10.5, 2, 500)
    zeros = np.zeros(500)
    result = cuped(
        control=CupedSummary.from_values(values=y_c, covariate=zeros),
        treatment=CupedSummary.from_values(values=y_t, covariate=zeros),
    )
    assert result.theta == 0.0
    assert result.variance_reduction == pytest.approx(0.0, abs=1e-12)
    assert result.absolute_lift == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-12)


def test_cuped_undefined_with_a_single_visitor() -> None:
    one = CupedSummary.from_values(values=[1.0], covariate=[2.0])
    many = CupedSummary.from_values(values=[1.0, 2.0, 3.0], covariate=[2.0, 1.0, 3.0])
    with pytest.warns(UndefinedResultWarning, match="control has 1 visitor"):
        result = cuped(control=one, treatment=many)
    assert math.isnan(result.absolute_lift) and math.isnan(result.theta)
    assert math.isnan(result.pvalue) and is_nan_interval(result.absolute_ci)
    assert math.isnan(result.variance_reduction)


def test_cuped_rejects_other_summaries() -> None:
    with pytest.raises(ValueError, match="control must be a CupedSummary"):
        cuped(control=MeanSummary(2, 1.0, 1.0), treatment=MeanSummary(2, 1.0, 1.0))  # type: ignore[arg-type]
