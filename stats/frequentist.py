"""Fixed-horizon comparisons of a treatment with the control.

Conversion metrics use the two-proportion z-test (pooled standard error for the test, unpooled
Wald interval for the difference); mean and count metrics use Welch's t-test; ratio metrics use
the delta method with normal quantiles. The relative lift's interval is always the delta-method
one. Each function takes the two variants' summaries by keyword, so they cannot be swapped by
position, and returns a :class:`~stats.results.ComparisonResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, TypeVar

from stats import _formulas
from stats._comparison import build_comparison
from stats._validate import check_confidence_level
from stats.errors import InvalidInputError, warn_undefined
from stats.results import ComparisonResult
from stats.summaries import MeanSummary, Proportion, RatioSummary

__all__ = [
    "ProportionError",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "means_comparison",
    "proportions_comparison",
    "ratios_comparison",
    "require_summary",
]

ProportionError = Literal["pooled", "unpooled"]

S = TypeVar("S", MeanSummary, RatioSummary)


def require_summary(name: str, value: object, kind: type) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is an instance of ``kind``."""
    if not isinstance(value, kind):
        raise InvalidInputError(
            f"{name} must be a {kind.__name__}, got {value!r} ({type(value).__name__})"
        )


def _checked(
    kind: type[S],
    compare: Callable[[S, S, float], ComparisonResult],
    control: object,
    treatment: object,
    confidence_level: object,
) -> ComparisonResult:
    """Validate the public arguments, compare, and warn if some field is undefined."""
    require_summary("control", control, kind)
    require_summary("treatment", treatment, kind)
    result = compare(control, treatment, check_confidence_level(confidence_level))  # type: ignore[arg-type]
    warn_undefined(result.reason, stacklevel=3)
    return result


def _size_reasons(control: int, treatment: int, minimum: int) -> list[str]:
    reasons = []
    for name, n in (("control", control), ("treatment", treatment)):
        if n == 0:
            reasons.append(f"{name} has no visitors")
        elif n < minimum:
            reasons.append(f"{name} has {n} visitor; a variance needs at least {minimum}")
    return reasons


def compare_proportions(
    *,
    control: Proportion,
    treatment: Proportion,
    confidence_level: float = 0.95,
    standard_error: ProportionError = "pooled",
) -> ComparisonResult:
    r"""Compare conversion rates with the two-proportion z-test.

    By default the test uses the pooled standard error, so its p-value equals that of Pearson's
    chi-square test of the 2x2 table without continuity correction; with
    ``standard_error="unpooled"`` it uses the unpooled (Wald) one, :math:`z = (\hat p_t -
    \hat p_c) / \sqrt{\hat p_c(1-\hat p_c)/n_c + \hat p_t(1-\hat p_t)/n_t}`, as several
    experimentation platforms report. The interval of the difference always uses the unpooled
    (Wald) standard error; the relative lift's interval uses the delta method:

    .. math::

        z = \frac{\hat p_t - \hat p_c}{\sqrt{\bar p (1 - \bar p) (1/n_c + 1/n_t)}}, \quad
        \bar p = \frac{x_c + x_t}{n_c + n_t}, \quad p = 2 \Phi(-|z|)

        \hat p_t - \hat p_c \pm z_{1-\alpha/2}
            \sqrt{\hat p_c (1 - \hat p_c)/n_c + \hat p_t (1 - \hat p_t)/n_t}

    Parameters
    ----------
    control, treatment : Proportion
        Conversions and visitors of each variant.
    confidence_level : float, default 0.95
        Level of the intervals, in (0, 1).
    standard_error : {"pooled", "unpooled"}, default "pooled"
        Standard error of the test statistic.

    Returns
    -------
    ComparisonResult
        ``statistic`` is z. Undefined fields (an empty variant; no conversions, or only
        conversions, in both variants; a control rate of 0 for the relative lift) are NaN, with
        ``reason`` set and an :class:`~stats.errors.UndefinedResultWarning`.

    References
    ----------
    A. Agresti, *An Introduction to Categorical Data Analysis*, 2nd ed., Wiley, 2007, §2.2.
    A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics", KDD 2018.

    Examples
    --------
    >>> result = compare_proportions(
    ...     control=Proportion(conversions=150, visitors=5000),
    ...     treatment=Proportion(conversions=189, visitors=5000),
    ... )
    >>> round(result.absolute_lift, 4), round(result.relative_lift, 2), round(result.pvalue, 3)
    (0.0078, 0.26, 0.031)
    """
    require_summary("control", control, Proportion)
    require_summary("treatment", treatment, Proportion)
    level = check_confidence_level(confidence_level)
    if standard_error not in ("pooled", "unpooled"):
        raise InvalidInputError(
            f"standard_error must be 'pooled' or 'unpooled', got {standard_error!r}"
        )
    result = proportions_comparison(control, treatment, level, pooled=standard_error == "pooled")
    warn_undefined(result.reason, stacklevel=2)
    return result


def proportions_comparison(
    control: Proportion, treatment: Proportion, level: float, *, pooled: bool = True
) -> ComparisonResult:
    """:func:`compare_proportions` on validated input, without the warning."""
    reasons = _size_reasons(control.visitors, treatment.visitors, minimum=1)
    test_se: float | None = None
    if pooled:
        test_se = math.nan
        if not reasons:
            test_se = _formulas.pooled_proportion_standard_error(
                control.conversions, control.visitors, treatment.conversions, treatment.visitors
            )
    return build_comparison(
        control_value=control.rate,
        treatment_value=treatment.rate,
        control_variance=control.variance / control.visitors if control.visitors else math.nan,
        treatment_variance=(
            treatment.variance / treatment.visitors if treatment.visitors else math.nan
        ),
        confidence_level=level,
        method="two-proportion z-test" if pooled else "two-proportion z-test (unpooled)",
        reasons=reasons,
        test_standard_error=test_se,
    )


def compare_means(
    *, control: MeanSummary, treatment: MeanSummary, confidence_level: float = 0.95
) -> ComparisonResult:
    r"""Compare means per visitor with Welch's t-test.

    .. math::

        t = \frac{\bar y_t - \bar y_c}{\sqrt{s_c^2/n_c + s_t^2/n_t}}, \quad
        \nu = \frac{(s_c^2/n_c + s_t^2/n_t)^2}
                   {(s_c^2/n_c)^2/(n_c - 1) + (s_t^2/n_t)^2/(n_t - 1)}, \quad
        p = 2 P(T_\nu > |t|)

    with sample variances ``s**2 = (sum_squares - sum**2 / n) / (n - 1)``. The absolute interval
    uses the t quantile on ``nu`` degrees of freedom; the relative one the delta method with the
    normal quantile.

    Parameters
    ----------
    control, treatment : MeanSummary
        ``n``, ``sum`` and ``sum_squares`` of per-visitor totals in each variant.
    confidence_level : float, default 0.95
        Level of the intervals, in (0, 1).

    Returns
    -------
    ComparisonResult
        ``statistic`` is t and ``df`` is the Welch-Satterthwaite ``nu``. A variant with fewer
        than two visitors, no variation in either variant, or a control mean of 0 (relative lift)
        give NaN fields with ``reason`` and an :class:`~stats.errors.UndefinedResultWarning`.

    References
    ----------
    B. L. Welch, "The generalization of 'Student's' problem when several different population
    variances are involved", *Biometrika* 34 (1947) 28-35.
    A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics", KDD 2018.

    Examples
    --------
    >>> result = compare_means(
    ...     control=MeanSummary(n=4, sum=10.0, sum_squares=30.0),
    ...     treatment=MeanSummary(n=4, sum=14.0, sum_squares=54.0),
    ... )
    >>> result.absolute_lift, round(result.statistic, 4), round(result.df, 2)
    (1.0, 1.0954, 6.0)
    """
    return _checked(MeanSummary, means_comparison, control, treatment, confidence_level)


def means_comparison(
    control: MeanSummary, treatment: MeanSummary, level: float
) -> ComparisonResult:
    """:func:`compare_means` on validated input, without the warning."""
    reasons = _size_reasons(control.n, treatment.n, minimum=2)
    variance_c = control.variance / control.n if control.n else math.nan
    variance_t = treatment.variance / treatment.n if treatment.n else math.nan
    df = math.nan
    if not reasons:
        df = _formulas.welch_df(variance_c, control.n, variance_t, treatment.n)
    return build_comparison(
        control_value=control.mean,
        treatment_value=treatment.mean,
        control_variance=variance_c,
        treatment_variance=variance_t,
        confidence_level=level,
        method="Welch's t-test",
        reasons=reasons,
        df=df,
    )


def ratio_estimate(summary: RatioSummary) -> tuple[float, float]:
    """Ratio ``sum(X) / sum(Y)`` of one variant and its delta-method variance.

    ``Var(R) = (s_X^2/mu_Y^2 - 2 mu_X s_XY/mu_Y^3 + mu_X^2 s_Y^2/mu_Y^4) / n`` with the means
    and sample (co)variances per visitor (Deng et al. 2018, §3).
    """
    n = summary.n
    if n == 0 or summary.denominator_sum == 0.0:
        return math.nan, math.nan
    mean_x = summary.numerator_sum / n
    mean_y = summary.denominator_sum / n
    variance = _formulas.ratio_variance(
        mean_x,
        mean_y,
        summary.numerator.variance / n,
        summary.denominator.variance / n,
        summary.covariance / n,
    )
    return summary.ratio, variance


def compare_ratios(
    *, control: RatioSummary, treatment: RatioSummary, confidence_level: float = 0.95
) -> ComparisonResult:
    r"""Compare ratio metrics (e.g. revenue / orders) with the delta method.

    Each variant's ratio :math:`R = \bar X / \bar Y` has the delta-method variance

    .. math::

        \widehat{Var}(R) = \frac{1}{n}\left(\frac{s_X^2}{\bar Y^2}
            - 2\frac{\bar X s_{XY}}{\bar Y^3} + \frac{\bar X^2 s_Y^2}{\bar Y^4}\right)

    and the lift :math:`R_t - R_c` is tested with :math:`z = (R_t - R_c) / \sqrt{Var(R_t) +
    Var(R_c)}` and normal quantiles; the relative lift :math:`R_t / R_c - 1` applies the same
    delta formula to the two ratios.

    Parameters
    ----------
    control, treatment : RatioSummary
        Per-visitor numerator and denominator sums of each variant.
    confidence_level : float, default 0.95
        Level of the intervals, in (0, 1).

    Returns
    -------
    ComparisonResult
        ``statistic`` is z. A denominator summing to zero, fewer than two visitors, or no
        variation give NaN fields with ``reason`` and an
        :class:`~stats.errors.UndefinedResultWarning`.

    References
    ----------
    A. Deng, U. Knoblich, J. Lu, "Applying the Delta Method in Metric Analytics", KDD 2018.

    Examples
    --------
    >>> control = RatioSummary.from_values(
    ...     numerator=[0, 50, 70, 0, 90], denominator=[0, 1, 1, 0, 2]
    ... )
    >>> treatment = RatioSummary.from_values(
    ...     numerator=[60, 0, 80, 120], denominator=[1, 0, 1, 2]
    ... )
    >>> result = compare_ratios(control=control, treatment=treatment)
    >>> result.control_value, result.treatment_value
    (52.5, 65.0)
    """
    return _checked(RatioSummary, ratios_comparison, control, treatment, confidence_level)


def ratios_comparison(
    control: RatioSummary, treatment: RatioSummary, level: float
) -> ComparisonResult:
    """:func:`compare_ratios` on validated input, without the warning."""
    reasons = _size_reasons(control.n, treatment.n, minimum=2)
    for name, summary in (("control", control), ("treatment", treatment)):
        if summary.n and summary.denominator_sum == 0.0:
            reasons.append(f"the {name} denominator sums to 0, so its ratio is undefined")
    ratio_c, variance_c = ratio_estimate(control)
    ratio_t, variance_t = ratio_estimate(treatment)
    return build_comparison(
        control_value=ratio_c,
        treatment_value=ratio_t,
        control_variance=variance_c,
        treatment_variance=variance_t,
        confidence_level=level,
        method="delta-method z-test (ratio)",
        reasons=reasons,
    )
