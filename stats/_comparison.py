"""Assemble a :class:`~stats.results.ComparisonResult` from two estimates and their variances.

Every frequentist comparison (proportions, means, ratios, CUPED) reduces to a control estimate,
a treatment estimate and the variance of each; this module turns those into the lifts, the test,
the intervals and, where a quantity does not exist, the reason it does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from stats import _formulas
from stats.results import NAN_INTERVAL, ComparisonResult, symmetric_interval

__all__ = ["build_comparison", "join_reasons"]

NO_VARIATION = (
    "the standard error of the difference is zero (no visitor-to-visitor variation in either "
    "variant), so the test statistic, p-value and absolute interval are undefined"
)
NO_TEST_VARIATION = (
    "the standard error under no difference is zero (no variation in either variant), so the "
    "test statistic and p-value are undefined"
)
NO_INTERVAL_VARIATION = "the standard error of the lift is zero, so its interval is undefined"
ZERO_CONTROL = "the control value is 0, so the relative lift and its interval are undefined"
NOT_FINITE = (
    "the values are too extreme (near 0 or huge) for finite standard errors, so some fields are "
    "undefined"
)
NO_RELATIVE_VARIATION = "the relative lift's standard error is zero, so its interval is undefined"


def join_reasons(reasons: Iterable[str]) -> str | None:
    """Join distinct reasons with ``"; "`` in first-seen order; None when there are none."""
    unique = list(dict.fromkeys(reasons))
    return "; ".join(unique) if unique else None


def build_comparison(
    *,
    control_value: float,
    treatment_value: float,
    control_variance: float,
    treatment_variance: float,
    confidence_level: float,
    method: str,
    reasons: Iterable[str] = (),
    df: float = math.inf,
    test_standard_error: float | None = None,
    covariance: float = 0.0,
) -> ComparisonResult:
    """Lifts, test and intervals from two estimates and the variances of those estimates.

    ``control_variance`` and ``treatment_variance`` are variances of the estimates (``s**2 / n``
    for a mean), ``covariance`` their covariance (zero for independent variants). The test uses
    ``test_standard_error`` when given (the pooled one for proportions), else the standard error
    of the lift. Absolute interval: ``lift +/- q se`` with the t quantile on ``df``; relative
    interval: delta method with the normal quantile.
    """
    notes = list(reasons)
    lift = treatment_value - control_value
    variance = control_variance + treatment_variance - 2.0 * covariance
    standard_error = math.sqrt(variance) if variance >= 0.0 else math.nan
    test_se = standard_error if test_standard_error is None else test_standard_error

    statistic = pvalue = math.nan
    if math.isfinite(lift) and math.isfinite(test_se) and test_se > 0.0:
        statistic = lift / test_se
        pvalue = _formulas.two_sided_pvalue(statistic, df)
    if test_se == 0.0 and standard_error == 0.0:
        notes.append(NO_VARIATION)
    elif test_se == 0.0:
        notes.append(NO_TEST_VARIATION)
    elif standard_error == 0.0:
        notes.append(NO_INTERVAL_VARIATION)
    absolute_ci = NAN_INTERVAL
    if not math.isnan(df):
        absolute_ci = symmetric_interval(
            lift, standard_error, _formulas.t_quantile(confidence_level, df)
        )

    relative, relative_se, relative_ci = _relative_lift(
        control_value, treatment_value, control_variance, treatment_variance, covariance,
        confidence_level, notes, absolute_defined=standard_error != 0.0,
    )  # fmt: skip
    relative_statistic = relative_pvalue = math.nan
    if math.isfinite(relative) and math.isfinite(relative_se) and relative_se > 0.0:
        relative_statistic = relative / relative_se
        relative_pvalue = _formulas.two_sided_pvalue(relative_statistic)
    undefined = (statistic, pvalue, relative, *absolute_ci, *relative_ci)
    if not notes and any(math.isnan(value) for value in undefined):
        notes.append(NOT_FINITE)

    return ComparisonResult(
        statistic=statistic,
        pvalue=pvalue,
        control_value=control_value,
        treatment_value=treatment_value,
        absolute_lift=lift,
        relative_lift=relative,
        absolute_ci=absolute_ci,
        relative_ci=relative_ci,
        confidence_level=confidence_level,
        method=method,
        reason=join_reasons(notes),
        standard_error=standard_error,
        relative_standard_error=relative_se,
        df=df,
        relative_statistic=relative_statistic,
        relative_pvalue=relative_pvalue,
        control_standard_error=_root(control_variance),
        treatment_standard_error=_root(treatment_variance),
    )


def _root(variance: float) -> float:
    return math.sqrt(variance) if variance >= 0.0 else math.nan


def _relative_lift(
    control_value: float,
    treatment_value: float,
    control_variance: float,
    treatment_variance: float,
    covariance: float,
    confidence_level: float,
    notes: list[str],
    *,
    absolute_defined: bool,
) -> tuple[float, float, tuple[float, float]]:
    """Relative lift, its delta-method standard error and interval; appends why not defined."""
    if control_value == 0.0:
        notes.append(ZERO_CONTROL)
        return math.nan, math.nan, NAN_INTERVAL
    relative = treatment_value / control_value - 1.0
    if not math.isfinite(relative):
        return math.nan, math.nan, NAN_INTERVAL
    variance = _formulas.ratio_variance(
        treatment_value, control_value, treatment_variance, control_variance, covariance
    )
    standard_error = math.sqrt(variance) if variance >= 0.0 else math.nan
    interval = symmetric_interval(
        relative, standard_error, _formulas.normal_quantile(confidence_level)
    )
    if standard_error == 0.0 and absolute_defined:
        notes.append(NO_RELATIVE_VARIATION)
    return relative, standard_error, interval
