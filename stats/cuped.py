"""CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi, Walker 2013).

A visitor's metric ``Y`` during the experiment is adjusted by their pre-period value ``X`` of a
covariate (usually the same metric before the experiment started):
``Y_cv = Y - theta (X - mean(X))``. Randomisation makes ``X`` independent of the variant, so the
adjusted lift estimates the same effect with variance reduced by about ``corr(X, Y)**2``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stats._comparison import build_comparison
from stats._validate import check_confidence_level
from stats.errors import warn_undefined
from stats.frequentist import require_summary
from stats.results import ComparisonResult, CupedResult
from stats.summaries import CupedSummary

__all__ = ["cuped", "cuped_comparison"]


def _mean_covariance(summary: CupedSummary) -> np.ndarray:
    """Covariance matrix of the variant's ``(mean Y, mean X)``: sample covariance / n."""
    var_y = summary.metric.variance
    var_x = summary.covariate.variance
    cov = summary.covariance
    return np.array([[var_y, cov], [cov, var_x]]) / summary.n


def _theta(pooled: CupedSummary) -> float:
    variance_x = pooled.covariate.variance
    if not variance_x > 0.0:
        # A constant covariate carries no information and every theta gives the same estimate,
        # because then each variant's mean of X equals the pooled mean.
        return 0.0
    return pooled.covariance / variance_x


def cuped(
    *, control: CupedSummary, treatment: CupedSummary, confidence_level: float = 0.95
) -> CupedResult:
    r"""Compare means per visitor after CUPED adjustment with a pre-period covariate.

    With ``theta`` estimated once on the pooled sample of both variants,

    .. math::

        \theta = \frac{\widehat{Cov}(Y, X)}{\widehat{Var}(X)}, \qquad
        \hat Y_g = \bar Y_g - \theta (\bar X_g - \bar X), \qquad
        \Delta = \hat Y_t - \hat Y_c = (\bar Y_t - \bar Y_c) - \theta (\bar X_t - \bar X_c)

    and ``Var(Delta) = Var_t(Y - theta X) / n_t + Var_c(Y - theta X) / n_c`` with
    ``Var_g(Y - theta X) = s_Y^2 - 2 theta s_XY + theta^2 s_X^2`` within each variant. The test
    and intervals use normal quantiles; the relative lift ``Y_t / Y_c - 1`` uses the delta method
    on the four variant means (``theta`` treated as fixed, the pooled mean of X included in the
    covariance of the two adjusted means). A constant covariate leaves the estimate unchanged for
    every ``theta``, which is then reported as 0.

    Parameters
    ----------
    control, treatment : CupedSummary
        Sums of the metric, the covariate, their squares and their cross-product per variant.
    confidence_level : float, default 0.95
        Level of the intervals, in (0, 1).

    Returns
    -------
    CupedResult
        A :class:`~stats.results.ComparisonResult` of the adjusted means plus ``theta``,
        ``variance_reduction = 1 - Var(adjusted lift) / Var(unadjusted lift)`` and the
        ``unadjusted`` comparison.

    References
    ----------
    A. Deng, Y. Xu, R. Kohavi, T. Walker, "Improving the Sensitivity of Online Controlled
    Experiments by Utilizing Pre-Experiment Data", WSDM 2013.
    A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics", KDD 2018.

    Examples
    --------
    >>> control = CupedSummary.from_values(values=[3, 5, 4, 8], covariate=[2, 4, 3, 7])
    >>> treatment = CupedSummary.from_values(values=[6, 5, 9, 7], covariate=[4, 2, 7, 5])
    >>> result = cuped(control=control, treatment=treatment)
    >>> round(result.theta, 3), round(result.variance_reduction, 3)
    (0.955, 0.975)
    """
    require_summary("control", control, CupedSummary)
    require_summary("treatment", treatment, CupedSummary)
    result = cuped_comparison(control, treatment, check_confidence_level(confidence_level))
    warn_undefined(result.reason, stacklevel=2)
    return result


def cuped_comparison(control: CupedSummary, treatment: CupedSummary, level: float) -> CupedResult:
    """:func:`cuped` on validated input, without the warning."""
    reasons = [
        f"{name} has {summary.n} visitor(s); a variance needs at least 2"
        for name, summary in (("control", control), ("treatment", treatment))
        if summary.n < 2
    ]
    if reasons:
        # The adjusted means need theta and both variances; with under two visitors in a variant
        # none of the comparison is defined.
        return _undefined(level, reasons)

    theta = _theta(control + treatment)
    weight_c = control.n / (control.n + treatment.n)
    weight_t = 1.0 - weight_c
    # Coefficients of each adjusted mean on (mean Y_c, mean X_c, mean Y_t, mean X_t).
    coef_c = np.array([1.0, -theta * weight_t, 0.0, theta * weight_t])
    coef_t = np.array([0.0, theta * weight_c, 1.0, -theta * weight_c])
    means = np.array(
        [
            control.metric.mean,
            control.covariate.mean,
            treatment.metric.mean,
            treatment.covariate.mean,
        ]
    )
    covariance = np.zeros((4, 4))
    covariance[:2, :2] = _mean_covariance(control)
    covariance[2:, 2:] = _mean_covariance(treatment)

    adjusted = build_comparison(
        control_value=float(coef_c @ means),
        treatment_value=float(coef_t @ means),
        control_variance=float(coef_c @ covariance @ coef_c),
        treatment_variance=float(coef_t @ covariance @ coef_t),
        covariance=float(coef_c @ covariance @ coef_t),
        confidence_level=level,
        method="CUPED z-test (delta method)",
    )
    unadjusted = build_comparison(
        control_value=control.metric.mean,
        treatment_value=treatment.metric.mean,
        control_variance=float(covariance[0, 0]),
        treatment_variance=float(covariance[2, 2]),
        confidence_level=level,
        method="z-test (unadjusted)",
    )
    reduction = math.nan
    if unadjusted.standard_error > 0.0:
        reduction = 1.0 - (adjusted.standard_error / unadjusted.standard_error) ** 2
    return CupedResult(
        **{field.name: getattr(adjusted, field.name) for field in dataclasses.fields(adjusted)},
        theta=theta,
        variance_reduction=reduction,
        unadjusted=unadjusted,
    )


def _undefined(level: float, reasons: list[str]) -> CupedResult:
    def build(method: str) -> ComparisonResult:
        return build_comparison(
            control_value=math.nan,
            treatment_value=math.nan,
            control_variance=math.nan,
            treatment_variance=math.nan,
            confidence_level=level,
            method=method,
            reasons=reasons,
        )

    adjusted = build("CUPED z-test (delta method)")
    return CupedResult(
        **{field.name: getattr(adjusted, field.name) for field in dataclasses.fields(adjusted)},
        theta=math.nan,
        variance_reduction=math.nan,
        unadjusted=build("z-test (unadjusted)"),
    )
