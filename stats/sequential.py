"""Always-valid inference by the mixture sequential probability ratio test (mSPRT).

A marketer who opens the report every day and stops as soon as the fixed-horizon p-value dips
below 0.05 has a far higher false-positive rate than 5%. The mSPRT p-value and confidence
sequence stay valid however often, and whenever, the data are looked at (Johari, Pekelis, Walsh
2017): the p-value is the running minimum of ``1 / Lambda_n`` over looks and the confidence
sequence the running intersection of the intervals ``{theta: Lambda_n(theta) < 1 / alpha}``.

The test runs on any stream of looks at an estimate and its variance (:func:`msprt_stream`,
one linear pass); :func:`msprt` builds those streams from cumulative summaries of any kind
(conversions, means, ratios, CUPED) for the absolute and the relative lift.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

from stats import _formulas
from stats._validate import check_confidence_level, check_finite, check_sequence
from stats.errors import InvalidInputError, warn_undefined
from stats.looks import LiftKind, Point, check_plan, estimate_points, summary_points
from stats.results import NAN_INTERVAL, SequentialResult, StreamResult
from stats.summaries import Estimate, Summary

__all__ = ["DEFAULT_TUNING_VISITORS", "Estimate", "LiftKind", "msprt", "msprt_stream"]

DEFAULT_TUNING_VISITORS = 5_000
"""Visitors per variant the mixing variance is tuned to when no plan is given."""

METHOD = "mixture SPRT (normal mixing), two-sided"


class _RunningSequence:
    """Running intersection of intervals over looks."""

    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf
        self.started = False

    def add(self, low: float, high: float) -> None:
        self.started = True
        self.low = max(self.low, low)
        self.high = min(self.high, high)

    def current(self) -> tuple[float, float]:
        if not self.started or self.low > self.high:
            return NAN_INTERVAL
        return (self.low, self.high)


def _describe(problems: dict[str, list[int]]) -> str | None:
    if not problems:
        return None
    return "; ".join(
        f"{message} at look(s) {', '.join(str(look) for look in looks)}"
        for message, looks in problems.items()
    )


def _run(
    points: Sequence[Point],
    mixing_variance: Callable[[Point], float],
    null: float,
    alpha: float,
    level: float,
    name: str,
) -> StreamResult:
    """One pass over the looks: per-look ratio, p-value, interval and the running values."""
    problems: defaultdict[str, list[int]] = defaultdict(list)
    running_p = math.nan
    sequence = _RunningSequence()
    pvalues: list[float] = []
    ratios: list[float] = []
    intervals: list[tuple[float, float]] = []
    sequences: list[tuple[float, float]] = []
    taus: list[float] = []
    for number, point in enumerate(points, start=1):
        ratio = tau2 = math.nan
        interval = NAN_INTERVAL
        if point.problem is not None:
            problems[point.problem].append(number)
        else:
            tau2 = mixing_variance(point)
            log_ratio = _formulas.msprt_log_likelihood_ratio(
                point.value - null, point.variance, tau2
            )
            ratio = math.exp(log_ratio) if log_ratio < 709.0 else math.inf
            pvalue = min(1.0, math.exp(-log_ratio))
            running_p = pvalue if math.isnan(running_p) else min(running_p, pvalue)
            half = _formulas.msprt_half_width(point.variance, tau2, alpha)
            interval = (point.value - half, point.value + half)
            sequence.add(*interval)
        pvalues.append(running_p)
        ratios.append(ratio)
        intervals.append(interval)
        sequences.append(sequence.current())
        taus.append(tau2)
    if sequence.started and sequence.low > sequence.high:
        problems[
            f"the running intersection of the {name} confidence sequence is empty (the "
            "variance estimates moved between looks)"
        ].append(len(points))
    return StreamResult(
        pvalue=running_p,
        pvalues=tuple(pvalues),
        likelihood_ratios=tuple(ratios),
        estimates=tuple(point.value for point in points),
        intervals=tuple(intervals),
        confidence_sequence=tuple(sequences),
        mixing_variances=tuple(taus),
        null=null,
        confidence_level=level,
        method=METHOD,
        reason=_describe(problems),
    )


def _tuner(
    mixing_variance: float | None,
    planned_variance: float | None,
    planned_visitors: float | None,
    alpha: float,
    scale: Callable[[Point], float],
) -> Callable[[Point], float]:
    """The rule giving each look its mixing variance; ``scale`` rescales a fixed one."""
    if mixing_variance is not None:
        fixed = mixing_variance
        return lambda point: fixed * scale(point)
    if planned_variance is not None:
        tau2 = _formulas.mixing_variance_at_plan(planned_variance, alpha)
        return lambda point: tau2
    visitors = DEFAULT_TUNING_VISITORS if planned_visitors is None else planned_visitors
    return lambda point: _formulas.default_mixing_variance(
        point.variance, point.visitors, alpha, visitors
    )


def _positive(name: str, value: object) -> float | None:
    if value is None:
        return None
    number = check_finite(name, value)
    if number <= 0.0:
        raise InvalidInputError(f"{name} must be > 0, got {number}")
    return number


def msprt_stream(
    *,
    estimates: Sequence[Estimate],
    null: float = 0.0,
    mixing_variance: float | None = None,
    planned_variance: float | None = None,
    planned_visitors: float | None = None,
    confidence_level: float = 0.95,
) -> StreamResult:
    r"""Always-valid p-values and confidence sequences on a stream of (estimate, variance) looks.

    Each look gives an estimate :math:`D_n` of the effect (any asymptotically normal estimate: a
    CUPED-adjusted lift, a ratio metric's lift, a relative lift, a known-variance design) and
    its variance :math:`V_n`. With the normal mixing distribution :math:`\theta \sim N(\theta_0,
    \tau^2)` the mixture likelihood ratio against :math:`H_0: \theta = \theta_0` is

    .. math::

        \Lambda_n = \sqrt{\frac{V_n}{V_n + \tau^2}}
            \exp\left(\frac{\tau^2 (D_n - \theta_0)^2}{2 V_n (V_n + \tau^2)}\right),
        \qquad p_n = \min(p_{n-1}, 1 / \Lambda_n), \quad p_0 = 1,

    the per-look interval is

    .. math::

        D_n \pm \sqrt{\frac{2 V_n (V_n + \tau^2)}{\tau^2}
            \left(\log\frac{1}{\alpha} + \frac12 \log\frac{V_n + \tau^2}{V_n}\right)}

    and the confidence sequence is the running intersection of those intervals. Every value is
    computed in one pass over the looks.

    Parameters
    ----------
    estimates : sequence of Estimate
        One per look, oldest first, each on all the data so far.
    null : float, default 0.0
        :math:`\theta_0`, the effect under the null hypothesis.
    mixing_variance : float, optional
        :math:`\tau^2` in squared units of the estimate, fixed for every look.
    planned_variance : float, optional
        The variance the estimate will have at the planned sample size :math:`V_m`; then
        :math:`\tau^2 = c V_m` with :math:`c = -2\log\alpha + \log(1 - 2\log\alpha)`, which
        makes the sequence narrowest at the plan (Howard et al. 2021).
    planned_visitors : float, optional
        The planned visitors per variant :math:`m`; needs ``visitors`` on every estimate and
        then :math:`\tau^2 = c V_n n / m` (:math:`V_n n` is the per-visitor variance).
    confidence_level : float, default 0.95
        :math:`1 - \alpha`.

    Exactly one of ``mixing_variance``, ``planned_variance`` and ``planned_visitors`` must be
    given; the guarantee holds for any choice made before looking at the data.

    Returns
    -------
    StreamResult
        Per-look and running values; never emits a warning (every look is defined).

    References
    ----------
    R. Johari, L. Pekelis, D. Walsh, "Always Valid Inference: Continuous Monitoring of A/B
    Tests", *Operations Research* 70 (2022) 1806-1821.
    S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", *Annals of Statistics* 49 (2021) 1055-1080.

    Examples
    --------
    >>> looks = [Estimate(difference=0.03, variance=0.0004), Estimate(0.035, 0.0002)]
    >>> result = msprt_stream(estimates=looks, planned_variance=0.0002)
    >>> [round(p, 4) for p in result.pvalues]
    [0.9075, 0.197]
    """
    items = check_sequence("estimates", estimates)
    for index, item in enumerate(items):
        if not isinstance(item, Estimate):
            raise InvalidInputError(
                f"estimates[{index}] must be an Estimate, got {item!r} ({type(item).__name__})"
            )
    level = check_confidence_level(confidence_level)
    theta0 = check_finite("null", null)
    fixed = _positive("mixing_variance", mixing_variance)
    at_plan = _positive("planned_variance", planned_variance)
    visitors = _positive("planned_visitors", planned_visitors)
    given = [name for name, value in (("mixing_variance", fixed), ("planned_variance", at_plan),
             ("planned_visitors", visitors)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise InvalidInputError(
            "exactly one of mixing_variance, planned_variance, planned_visitors must be given, "
            f"got {given or 'none'}"
        )
    points = estimate_points(items, need_visitors=visitors is not None)  # type: ignore[arg-type]
    tuner = _tuner(fixed, at_plan, visitors, 1.0 - level, lambda point: 1.0)
    return _run(points, tuner, theta0, 1.0 - level, level, "estimate's")


def msprt(
    *,
    looks: Sequence[tuple[Summary, Summary]],
    lift: LiftKind = "absolute",
    null: float = 0.0,
    mixing_variance: float | None = None,
    planned_visitors: float | None = None,
    confidence_level: float = 0.95,
    tuning_visitors: int | None = None,
) -> SequentialResult:
    r"""Always-valid p-values and confidence sequences over looks at cumulative summaries.

    At each look the estimate and its variance come from the fixed-horizon comparison of that
    kind: the difference of rates with the unpooled variance :math:`p(1-p)/n` per variant,
    of means with :math:`s^2/n`, of ratios with the delta method, of CUPED-adjusted means with
    the CUPED variance (``theta`` re-estimated at each look); the relative lift uses the
    delta-method estimate and variance of :math:`y_t / y_c - 1` (Deng et al. 2018). Both
    streams then go through :func:`msprt_stream`.

    Parameters
    ----------
    looks : sequence of (control, treatment) pairs
        The cumulative summaries (all :class:`Proportion`, all :class:`MeanSummary`, all
        :class:`RatioSummary` or all :class:`CupedSummary`) at each look, oldest first, e.g.
        one pair per day.
    lift : {"absolute", "relative"}, default "absolute"
        The lift that ``pvalue``, ``pvalues``, ``statistic`` and ``null`` refer to; both
        confidence sequences are always returned.
    null : float, default 0.0
        The lift under the null hypothesis.
    mixing_variance : float, optional
        :math:`\tau^2` in squared units of the absolute lift (e.g. ``0.01**2`` for a prior
        scale of one conversion-rate point); for the relative lift it is divided by the squared
        control value. By default :math:`\tau^2 = c \sigma^2 / m` where :math:`\sigma^2 = V_n
        \bar n_n` is the per-visitor variance of the difference (:math:`\bar n_n` visitors per
        variant), :math:`c = -2\log\alpha + \log(1 - 2\log\alpha)` and :math:`m` is
        ``planned_visitors``, which makes the sequence narrowest at the planned sample size
        (Howard et al. 2021).
    planned_visitors : float, optional
        The planned visitors per variant (e.g. from :func:`~stats.sample_size`); without it the
        sequence is tuned to 5,000 visitors per variant.
    confidence_level : float, default 0.95
        :math:`1 - \alpha`.
    tuning_visitors : int, optional
        Deprecated name of ``planned_visitors``.

    Returns
    -------
    SequentialResult
        Per-look always-valid p-values, likelihood ratios, intervals and confidence sequences.
        A look where a variant has no visitors (fewer than two for means) or neither variant
        varies contributes nothing: its values stay NaN until a defined look, and ``reason``
        and an :class:`~stats.errors.UndefinedResultWarning` say which looks.

    References
    ----------
    R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Peeking at A/B Tests: Why it matters, and what
    to do about it", KDD 2017; R. Johari, L. Pekelis, D. Walsh, "Always Valid Inference:
    Continuous Monitoring of A/B Tests", *Operations Research* 70 (2022) 1806-1821.
    S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", *Annals of Statistics* 49 (2021) 1055-1080.

    Examples
    --------
    >>> from stats import Proportion as P  # (conversions, visitors), cumulative per look
    >>> looks = [(P(100, 1000), P(130, 1000)), (P(200, 2000), P(270, 2000))]
    >>> result = msprt(looks=looks)
    >>> [round(p, 4) for p in result.pvalues]
    [0.4131, 0.0226]
    """
    if tuning_visitors is not None:
        warnings.warn(
            "msprt(tuning_visitors=...) is deprecated; use planned_visitors=...",
            DeprecationWarning,
            stacklevel=2,
        )
        if planned_visitors is None:
            planned_visitors = tuning_visitors
    level = check_confidence_level(confidence_level)
    kind = check_plan(lift, null)
    fixed = _positive("mixing_variance", mixing_variance)
    visitors = _positive("planned_visitors", planned_visitors)
    absolute, relative = summary_points(looks, level)
    alpha = 1.0 - level
    streams = {
        "absolute": _run(
            absolute,
            _tuner(fixed, None, visitors, alpha, lambda point: 1.0),
            null if kind == "absolute" else 0.0,
            alpha,
            level,
            "absolute",
        ),
        "relative": _run(
            relative,
            _tuner(fixed, None, visitors, alpha, lambda point: 1.0 / point.control**2),
            null if kind == "relative" else 0.0,
            alpha,
            level,
            "relative",
        ),
    }
    tested = streams[kind]
    problems = [s.reason for s in streams.values() if s.reason is not None]
    reason = "; ".join(dict.fromkeys(problems)) if problems else None
    warn_undefined(reason, stacklevel=2)
    return SequentialResult(
        pvalue=tested.pvalue,
        pvalues=tested.pvalues,
        absolute_cs=streams["absolute"].confidence_sequence,
        relative_cs=streams["relative"].confidence_sequence,
        absolute_lift=absolute[-1].value,
        relative_lift=relative[-1].value,
        statistic=tested.likelihood_ratios[-1],
        mixing_variances=streams["absolute"].mixing_variances,
        confidence_level=level,
        method=METHOD,
        reason=reason,
        likelihood_ratios=tested.likelihood_ratios,
        absolute_intervals=streams["absolute"].intervals,
        relative_intervals=streams["relative"].intervals,
        lift=kind,
        null=null,
    )
