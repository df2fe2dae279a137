"""Result objects returned by the public functions.

Results are frozen dataclasses shaped like scipy's: a ``statistic`` and a ``pvalue`` where a test
was run, the estimates, their intervals, and ``confidence_interval(confidence_level)`` to
recompute an interval at another level from the stored standard error. A quantity that does not
exist for the data is NaN (or None) and ``reason`` says why; ``reason`` is None when every field
is defined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from stats import _formulas
from stats._validate import check_confidence_level

__all__ = [
    "BayesianResult",
    "BestResult",
    "ComparisonResult",
    "CupedResult",
    "GroupSequentialResult",
    "SRMResult",
    "SequentialResult",
    "StreamResult",
]

Interval = tuple[float, float]
NAN_INTERVAL: Interval = (math.nan, math.nan)


def symmetric_interval(estimate: float, standard_error: float, critical: float) -> Interval:
    if not (math.isfinite(estimate) and math.isfinite(standard_error)) or standard_error <= 0.0:
        return NAN_INTERVAL
    return (estimate - critical * standard_error, estimate + critical * standard_error)


@dataclass(frozen=True)
class ComparisonResult:
    """Treatment against control for one metric.

    Attributes
    ----------
    statistic : float
        z or t statistic of the test of no difference.
    pvalue : float
        Two-sided p-value of that test.
    control_value, treatment_value : float
        Conversion rate, mean per visitor, or ratio of each variant.
    absolute_lift : float
        ``treatment_value - control_value``.
    relative_lift : float
        ``treatment_value / control_value - 1``.
    absolute_ci, relative_ci : tuple of float
        Confidence intervals of the two lifts at ``confidence_level``.
    confidence_level : float
        Level of the stored intervals, in (0, 1).
    method : str
        Name of the test, e.g. ``"two-proportion z-test"``.
    reason : str or None
        Why some field is NaN; None when all are defined.
    standard_error : float
        Standard error of the absolute lift used for its interval.
    relative_standard_error : float
        Delta-method standard error of the relative lift.
    df : float
        Degrees of freedom of the absolute interval's t quantile (``inf``: normal quantile).
    relative_statistic, relative_pvalue : float
        Wald test of no relative lift, ``z = relative_lift / relative_standard_error``, and its
        two-sided normal p-value (the ``statistic`` and ``pvalue`` above test the absolute
        lift).
    control_standard_error, treatment_standard_error : float
        Standard error of each variant's value (for a ratio metric, its delta-method one).
    """

    statistic: float
    pvalue: float
    control_value: float
    treatment_value: float
    absolute_lift: float
    relative_lift: float
    absolute_ci: tuple[float, float]
    relative_ci: tuple[float, float]
    confidence_level: float
    method: str
    reason: str | None
    standard_error: float = math.nan
    relative_standard_error: float = math.nan
    df: float = math.inf
    relative_statistic: float = math.nan
    relative_pvalue: float = math.nan
    control_standard_error: float = math.nan
    treatment_standard_error: float = math.nan

    @property
    def significant(self) -> bool:
        """Whether ``pvalue < 1 - confidence_level`` (False when the p-value is undefined)."""
        return self.pvalue < 1.0 - self.confidence_level

    def confidence_interval(self, confidence_level: float | None = None) -> tuple[float, float]:
        """Interval of the absolute lift, at the stored level or at ``confidence_level``.

        ``lift +/- q se`` with ``q`` the t quantile on ``df`` degrees of freedom (the normal
        quantile when ``df`` is infinite).
        """
        if confidence_level is None:
            return self.absolute_ci
        level = check_confidence_level(confidence_level)
        critical = _formulas.t_quantile(level, self.df)
        return symmetric_interval(self.absolute_lift, self.standard_error, critical)

    def relative_confidence_interval(
        self, confidence_level: float | None = None
    ) -> tuple[float, float]:
        """Delta-method interval of the relative lift, ``r +/- z se_r``, normal quantile."""
        if confidence_level is None:
            return self.relative_ci
        level = check_confidence_level(confidence_level)
        critical = _formulas.normal_quantile(level)
        return symmetric_interval(self.relative_lift, self.relative_standard_error, critical)


@dataclass(frozen=True, kw_only=True)
class CupedResult(ComparisonResult):
    """A CUPED-adjusted comparison plus what the adjustment achieved.

    Attributes
    ----------
    theta : float
        Regression coefficient ``Cov(Y, X) / Var(X)`` estimated on the pooled sample.
    variance_reduction : float
        ``1 - Var(adjusted lift) / Var(unadjusted lift)``; about ``corr(X, Y)**2``.
    unadjusted : ComparisonResult
        The same comparison without the covariate (normal quantiles, as the adjusted one).
    """

    theta: float
    variance_reduction: float
    unadjusted: ComparisonResult


@dataclass(frozen=True)
class BayesianResult:
    """Posterior comparison of treatment with control.

    Attributes
    ----------
    chance_to_beat_control : float
        Posterior probability that the treatment's true value exceeds the control's.
    expected_loss : float
        Posterior expected loss of choosing the treatment, ``E[max(control - treatment, 0)]``,
        in the metric's units (e.g. conversion-rate points).
    control_expected_loss : float
        Posterior expected loss of keeping the control, ``E[max(treatment - control, 0)]``.
    method : str
        Posterior model used.
    reason : str or None
        Why some field is NaN; None when all are defined.
    """

    chance_to_beat_control: float
    expected_loss: float
    control_expected_loss: float
    method: str
    reason: str | None


class BestResult(tuple[float, ...]):
    """Posterior chance that each variant is best, in the variants' order.

    A tuple of probabilities (so ``p_control, p_treatment = result`` works) that also carries,
    like every other result, the ``method`` and the ``reason`` (None when defined).
    """

    def __new__(cls, chances: Iterable[float], *, method: str, reason: str | None) -> BestResult:
        result = super().__new__(cls, chances)
        result._method = method
        result._reason = reason
        return result

    _method: str
    _reason: str | None

    @property
    def method(self) -> str:
        """Posterior model used."""
        return self._method

    @property
    def reason(self) -> str | None:
        """Why the chances are NaN; None when they are defined."""
        return self._reason

    @property
    def chances(self) -> tuple[float, ...]:
        """The probabilities as a plain tuple."""
        return tuple(self)


@dataclass(frozen=True)
class SequentialResult:
    """Always-valid inference over a sequence of looks at cumulative data.

    Attributes
    ----------
    pvalue : float
        Always-valid p-value at the last look (the running minimum, so it never goes up).
    pvalues : tuple of float
        The always-valid p-value at each look.
    absolute_cs, relative_cs : tuple of (float, float)
        Confidence sequence of the absolute and relative lift at each look (running
        intersection, so each interval lies inside the previous one).
    absolute_lift, relative_lift : float
        Estimates at the last look.
    statistic : float
        Mixture likelihood ratio at the last look.
    mixing_variances : tuple of float
        Mixing variance ``tau2`` (squared metric units) used at each look.
    confidence_level : float
        Level of the confidence sequences; the test rejects when ``pvalue < 1 - level``.
    method : str
        Name of the procedure.
    reason : str or None
        Why some look has no value; None when all are defined.
    likelihood_ratios : tuple of float
        Mixture likelihood ratio of the tested lift at each look.
    absolute_intervals, relative_intervals : tuple of (float, float)
        The per-look always-valid intervals, before the running intersection.
    lift : {"absolute", "relative"}
        The lift the p-values test.
    null : float
        Its value under the null hypothesis.
    """

    pvalue: float
    pvalues: tuple[float, ...]
    absolute_cs: tuple[tuple[float, float], ...]
    relative_cs: tuple[tuple[float, float], ...]
    absolute_lift: float
    relative_lift: float
    statistic: float
    mixing_variances: tuple[float, ...]
    confidence_level: float
    method: str
    reason: str | None
    likelihood_ratios: tuple[float, ...]
    absolute_intervals: tuple[tuple[float, float], ...]
    relative_intervals: tuple[tuple[float, float], ...]
    lift: str
    null: float

    @property
    def significant(self) -> bool:
        """Whether ``pvalue < 1 - confidence_level`` (False when the p-value is undefined)."""
        return self.pvalue < 1.0 - self.confidence_level

    @property
    def absolute_ci(self) -> tuple[float, float]:
        """The confidence sequence's interval for the absolute lift at the last look."""
        return self.absolute_cs[-1]

    @property
    def relative_ci(self) -> tuple[float, float]:
        """The confidence sequence's interval for the relative lift at the last look."""
        return self.relative_cs[-1]


@dataclass(frozen=True)
class StreamResult:
    """Always-valid inference on one stream of (estimate, variance) looks.

    Attributes
    ----------
    pvalue : float
        Always-valid p-value at the last look (the running minimum).
    pvalues : tuple of float
        The always-valid p-value at each look, non-increasing.
    likelihood_ratios : tuple of float
        Mixture likelihood ratio against ``null`` at each look.
    estimates : tuple of float
        The estimate at each look, as given.
    intervals : tuple of (float, float)
        The always-valid interval of each look on its own.
    confidence_sequence : tuple of (float, float)
        Running intersection of ``intervals``: each lies inside the previous one.
    mixing_variances : tuple of float
        Mixing variance ``tau2`` used at each look.
    null : float
        The effect under the null hypothesis.
    confidence_level : float
        Level of the intervals; the test rejects when ``pvalue < 1 - level``.
    method : str
        Name of the procedure.
    reason : str or None
        Why some look has no value; None when all are defined.
    """

    pvalue: float
    pvalues: tuple[float, ...]
    likelihood_ratios: tuple[float, ...]
    estimates: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]
    confidence_sequence: tuple[tuple[float, float], ...]
    mixing_variances: tuple[float, ...]
    null: float
    confidence_level: float
    method: str
    reason: str | None

    @property
    def significant(self) -> bool:
        """Whether ``pvalue < 1 - confidence_level`` (False when the p-value is undefined)."""
        return self.pvalue < 1.0 - self.confidence_level

    def confidence_interval(self) -> tuple[float, float]:
        """The confidence sequence's interval at the last look."""
        return self.confidence_sequence[-1]


@dataclass(frozen=True)
class GroupSequentialResult:
    """A group-sequential test with alpha spending over planned looks.

    Attributes
    ----------
    rejected : bool
        Whether some look crossed its boundary (the test stops there and rejects).
    rejected_at : int or None
        The first look (1-based) whose statistic crossed its boundary.
    statistics : tuple of float
        ``z_k = (estimate_k - null) / se_k`` at each look.
    boundaries : tuple of float
        Two-sided boundary at each look (``inf`` where a look spends no alpha).
    information_fractions : tuple of float
        Share of the planned information reached at each look, capped at 1.
    alpha_spent : tuple of float
        Cumulative alpha spent up to each look.
    spending : str
        ``"obrien_fleming"`` or ``"pocock"``.
    confidence_level : float
        ``1 - alpha``, the overall level.
    method : str
        Name of the procedure.
    reason : str or None
        Why some look has no value; None when all are defined.
    """

    rejected: bool
    rejected_at: int | None
    statistics: tuple[float, ...]
    boundaries: tuple[float, ...]
    information_fractions: tuple[float, ...]
    alpha_spent: tuple[float, ...]
    spending: str
    confidence_level: float
    method: str
    reason: str | None


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio-mismatch check.

    Attributes
    ----------
    statistic : float
        Pearson chi-square statistic against the configured weights.
    pvalue : float
        Its upper-tail p-value on ``k - 1`` degrees of freedom.
    mismatch : bool
        ``pvalue < threshold``: the split is not what was configured, and the comparisons of
        this experiment should not be trusted until the cause is found.
    expected : tuple of float
        Expected visitors per variant under the configured weights.
    observed : tuple of int
        Visitors per variant, as given.
    threshold : float
        The p-value below which a mismatch is flagged.
    reason : str or None
        Why the p-value is NaN; None otherwise.
    df : int
        Degrees of freedom of the chi-square distribution, ``k - 1``.
    """

    statistic: float
    pvalue: float
    mismatch: bool
    expected: tuple[float, ...]
    observed: tuple[int, ...]
    threshold: float
    reason: str | None
    df: int
