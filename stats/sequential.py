"""Always-valid inference by the mixture sequential probability ratio test (mSPRT).

A marketer who opens the report every day and stops as soon as the fixed-horizon p-value dips
below 0.05 has a far higher false-positive rate than 5%. The mSPRT p-value and confidence
sequence stay valid however often, and whenever, the data are looked at (Johari, Pekelis, Walsh
2017): the p-value is the running minimum of ``1 / Lambda_n`` over looks and the confidence
sequence the running intersection of the intervals ``{theta: Lambda_n(theta) < 1 / alpha}``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from stats import _formulas
from stats._validate import check_confidence_level, check_count, check_finite, check_sequence
from stats.errors import InvalidInputError, warn_undefined
from stats.results import NAN_INTERVAL, SequentialResult
from stats.summaries import MeanSummary, Proportion

__all__ = ["DEFAULT_TUNING_VISITORS", "msprt"]

S = TypeVar("S", Proportion, MeanSummary)

DEFAULT_TUNING_VISITORS = 5_000
"""Visitors per variant at which the default mixing variance makes the sequence narrowest."""

METHOD = "mixture SPRT (normal mixing), two-sided"


@dataclass(frozen=True)
class _Estimate:
    """One variant's estimate at one look and the variance of that estimate."""

    value: float
    variance: float
    visitors: int
    problem: str | None


def _estimate(name: str, summary: Proportion | MeanSummary) -> _Estimate:
    if isinstance(summary, Proportion):
        n = summary.visitors
        if n == 0:
            return _Estimate(math.nan, math.nan, n, f"{name} has no visitors")
        return _Estimate(summary.rate, summary.variance / n, n, None)
    n = summary.n
    if n < 2:
        return _Estimate(math.nan, math.nan, n, f"{name} has fewer than 2 visitors")
    return _Estimate(summary.mean, summary.variance / n, n, None)


def _validated_looks(looks: object) -> list[tuple[Proportion | MeanSummary, ...]]:
    items = check_sequence("looks", looks)
    pairs: list[tuple[Proportion | MeanSummary, ...]] = []
    for index, item in enumerate(items):
        pair = tuple(check_sequence(f"looks[{index}]", item))
        if len(pair) != 2:
            raise InvalidInputError(
                f"looks[{index}] must be a (control, treatment) pair, got {len(pair)} items"
            )
        pairs.append(pair)  # type: ignore[arg-type]
    kind = type(pairs[0][0])
    if kind not in (Proportion, MeanSummary) or any(
        type(summary) is not kind for pair in pairs for summary in pair
    ):
        raise InvalidInputError(
            "looks must hold only Proportion or only MeanSummary summaries, got "
            f"{sorted({type(s).__name__ for pair in pairs for s in pair})}"
        )
    for index in range(1, len(pairs)):
        for side, name in enumerate(("control", "treatment")):
            before, after = _visitors(pairs[index - 1][side]), _visitors(pairs[index][side])
            if after < before:
                raise InvalidInputError(
                    f"looks must be cumulative: {name} visitors at looks[{index}] must be >= "
                    f"{before} (looks[{index - 1}]), got {after}"
                )
    return pairs


def _visitors(summary: Proportion | MeanSummary) -> int:
    return summary.visitors if isinstance(summary, Proportion) else summary.n


def _describe(problems: dict[str, list[int]]) -> str | None:
    if not problems:
        return None
    return "; ".join(
        f"{message} at look(s) {', '.join(str(look) for look in looks)}"
        for message, looks in problems.items()
    )


class _RunningSequence:
    """Running minimum p-value and running intersection of intervals over looks."""

    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf
        self.started = False

    def add(self, centre: float, half_width: float) -> tuple[float, float]:
        self.started = True
        self.low = max(self.low, centre - half_width)
        self.high = min(self.high, centre + half_width)
        return self.current()

    def current(self) -> tuple[float, float]:
        if not self.started or self.low > self.high:
            return NAN_INTERVAL
        return (self.low, self.high)


def msprt(
    *,
    looks: Sequence[tuple[S, S]],
    mixing_variance: float | None = None,
    confidence_level: float = 0.95,
    tuning_visitors: int = DEFAULT_TUNING_VISITORS,
) -> SequentialResult:
    r"""Always-valid p-values and confidence sequences over looks at cumulative data.

    At look :math:`n`, let :math:`D_n` be the estimated absolute lift and :math:`V_n =
    s_c^2/n_c + s_t^2/n_t` its variance (unpooled: :math:`p(1-p)` for conversions, the sample
    variance for means). With the normal mixing distribution :math:`\theta \sim N(0, \tau^2)`
    the mixture likelihood ratio against :math:`H_0: \theta = 0` is

    .. math::

        \Lambda_n = \sqrt{\frac{V_n}{V_n + \tau^2}}
            \exp\left(\frac{\tau^2 D_n^2}{2 V_n (V_n + \tau^2)}\right),
        \qquad p_n = \min(p_{n-1}, 1 / \Lambda_n), \quad p_0 = 1,

    and the confidence sequence is the running intersection of

    .. math::

        D_n \pm \sqrt{\frac{2 V_n (V_n + \tau^2)}{\tau^2}
            \left(\log\frac{1}{\alpha} + \frac12 \log\frac{V_n + \tau^2}{V_n}\right)}.

    The relative lift uses the same construction with the delta-method estimate and variance
    of :math:`\bar y_t / \bar y_c - 1` (Deng et al. 2018).

    Parameters
    ----------
    looks : sequence of (control, treatment) pairs
        The cumulative summaries (all :class:`Proportion` or all :class:`MeanSummary`) at each
        look, oldest first, e.g. one pair per day.
    mixing_variance : float, optional
        :math:`\tau^2` in squared units of the absolute lift (e.g. ``0.01**2`` for a prior
        scale of one conversion-rate point); for the relative lift it is divided by the squared
        control value. By default :math:`\tau^2 = \rho \sigma^2` where :math:`\sigma^2 = V_n
        \bar n_n` is the per-visitor variance of the difference (:math:`\bar n_n` visitors per
        variant) and :math:`\rho = (-2\log\alpha + \log(1 - 2\log\alpha)) / m` with
        ``m = tuning_visitors``, which makes the sequence narrowest near ``m`` visitors per
        variant (Howard et al. 2021). A larger mixing variance suits larger effects and is
        tightest early; a smaller one suits small effects and is tightest late. The guarantee
        holds for any choice made before looking at the data.
    confidence_level : float, default 0.95
        :math:`1 - \alpha`.
    tuning_visitors : int, default 5000
        ``m`` above; only used when ``mixing_variance`` is None.

    Returns
    -------
    SequentialResult
        Per-look always-valid p-values and confidence sequences. A look where a variant has
        no visitors (fewer than two for means) or neither variant varies contributes nothing:
        its per-look values stay NaN until a defined look, and ``reason`` and an
        :class:`~stats.errors.UndefinedResultWarning` say which looks.

    References
    ----------
    R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Peeking at A/B Tests: Why it matters, and what
    to do about it", KDD 2017; R. Johari, L. Pekelis, D. Walsh, "Always Valid Inference:
    Continuous Monitoring of A/B Tests", *Operations Research* 70 (2022) 1806-1821.
    S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", *Annals of Statistics* 49 (2021) 1055-1080.

    Examples
    --------
    >>> P = Proportion  # (conversions, visitors), cumulative at each daily look
    >>> looks = [(P(100, 1000), P(130, 1000)), (P(200, 2000), P(270, 2000))]
    >>> result = msprt(looks=looks)
    >>> [round(p, 4) for p in result.pvalues]
    [0.4131, 0.0226]
    """
    pairs = _validated_looks(looks)
    level = check_confidence_level(confidence_level)
    tuning = check_count("tuning_visitors", tuning_visitors, minimum=1)
    tau2_fixed: float | None = None
    if mixing_variance is not None:
        tau2_fixed = check_finite("mixing_variance", mixing_variance)
        if tau2_fixed <= 0.0:
            raise InvalidInputError(f"mixing_variance must be > 0, got {tau2_fixed}")

    problems: defaultdict[str, list[int]] = defaultdict(list)
    running_p = math.nan
    absolute, relative = _RunningSequence(), _RunningSequence()
    pvalues: list[float] = []
    absolute_cs: list[tuple[float, float]] = []
    relative_cs: list[tuple[float, float]] = []
    analysed: list[_Look] = []
    for number, (control, treatment) in enumerate(pairs, start=1):
        look = _analyse_look(control, treatment, tau2_fixed, 1.0 - level, tuning)
        analysed.append(look)
        for problem in look.problems:
            problems[problem].append(number)
        if not math.isnan(look.pvalue):
            running_p = look.pvalue if math.isnan(running_p) else min(running_p, look.pvalue)
            absolute.add(look.lift, look.half_width)
        if not math.isnan(look.relative_half_width):
            relative.add(look.relative_lift, look.relative_half_width)
        pvalues.append(running_p)
        absolute_cs.append(absolute.current())
        relative_cs.append(relative.current())

    for name, sequence in (("absolute", absolute), ("relative", relative)):
        if sequence.started and sequence.low > sequence.high:
            problems[
                f"the running intersection of the {name} confidence sequence is empty (the "
                "variance estimates moved between looks)"
            ].append(len(pairs))
    reason = _describe(problems)
    warn_undefined(reason, stacklevel=2)
    last = analysed[-1]
    return SequentialResult(
        pvalue=running_p,
        pvalues=tuple(pvalues),
        absolute_cs=tuple(absolute_cs),
        relative_cs=tuple(relative_cs),
        absolute_lift=last.lift,
        relative_lift=last.relative_lift,
        statistic=last.likelihood_ratio,
        mixing_variances=tuple(look.mixing_variance for look in analysed),
        confidence_level=level,
        method=METHOD,
        reason=reason,
    )


@dataclass(frozen=True)
class _Look:
    """What one look contributes; NaN where it contributes nothing."""

    lift: float
    pvalue: float
    likelihood_ratio: float
    half_width: float
    mixing_variance: float
    relative_lift: float
    relative_half_width: float
    problems: tuple[str, ...]


def _analyse_look(
    control_summary: Proportion | MeanSummary,
    treatment_summary: Proportion | MeanSummary,
    tau2_fixed: float | None,
    alpha: float,
    tuning: int,
) -> _Look:
    control = _estimate("control", control_summary)
    treatment = _estimate("treatment", treatment_summary)
    problems = [p for p in (control.problem, treatment.problem) if p is not None]
    per_variant = (control.visitors + treatment.visitors) / 2.0
    lift = treatment.value - control.value
    variance = control.variance + treatment.variance
    if not problems and not variance > 0.0:
        problems.append("neither variant varies yet")
    if problems:
        nan = math.nan
        return _Look(lift, nan, nan, nan, nan, nan, nan, problems=tuple(problems))

    tau2 = tau2_fixed or _formulas.default_mixing_variance(variance, per_variant, alpha, tuning)
    log_ratio = _formulas.msprt_log_likelihood_ratio(lift, variance, tau2)
    relative_lift = relative_half_width = math.nan
    if control.value == 0.0:
        problems.append("the control value is 0, so the relative lift is undefined")
    else:
        relative_lift = treatment.value / control.value - 1.0
        relative_variance = _formulas.ratio_variance(
            treatment.value, control.value, treatment.variance, control.variance, 0.0
        )
        if relative_variance > 0.0:
            relative_tau2 = (
                tau2_fixed / control.value**2
                if tau2_fixed is not None
                else _formulas.default_mixing_variance(
                    relative_variance, per_variant, alpha, tuning
                )
            )
            relative_half_width = _formulas.msprt_half_width(
                relative_variance, relative_tau2, alpha
            )
    return _Look(
        lift=lift,
        pvalue=min(1.0, math.exp(-log_ratio)),
        likelihood_ratio=math.exp(log_ratio) if log_ratio < 709.0 else math.inf,
        half_width=_formulas.msprt_half_width(variance, tau2, alpha),
        mixing_variance=tau2,
        relative_lift=relative_lift,
        relative_half_width=relative_half_width,
        problems=tuple(problems),
    )
