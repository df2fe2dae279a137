"""Bayesian read-outs: chance to beat control, chance to be best, expected loss.

Conversion rates get exact Beta-Binomial posteriors with a uniform Beta(1, 1) prior by default
(any Beta prior per call, :class:`BetaPrior`); means get
the normal posterior of the mean under a flat prior, ``N(mean, s**2 / n)``. Probabilities are
computed exactly (a closed-form sum or numerical integration), never by Monte Carlo, so a report
shows the same number every time it is refreshed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scipy import special

from stats import _formulas
from stats._comparison import join_reasons
from stats._validate import check_finite
from stats.errors import InvalidInputError, warn_undefined
from stats.results import BayesianResult, BestResult
from stats.summaries import MeanSummary, Proportion

__all__ = [
    "JEFFREYS_PRIOR",
    "UNIFORM_PRIOR",
    "BetaPrior",
    "chance_to_be_best",
    "chance_to_beat_control",
]

NORMAL_METHOD = "normal posterior of the mean, flat prior"


@dataclass(frozen=True)
class BetaPrior:
    """A Beta(a, b) prior of a conversion rate, the same for every variant.

    ``Beta(1, 1)`` (uniform) is the default; ``Beta(0.5, 0.5)`` is Jeffreys' prior; an
    informative prior from past tests with rate ``p`` worth ``k`` visitors is
    ``Beta(k p, k (1 - p))``.

    Parameters
    ----------
    a, b : float
        Finite and ``> 0``: prior conversions and non-conversions, in effect.
    """

    a: float = 1.0
    b: float = 1.0

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            value = check_finite(name, getattr(self, name))
            if value <= 0.0:
                raise InvalidInputError(f"{name} must be > 0, got {value}")
            object.__setattr__(self, name, value)

    @property
    def method(self) -> str:
        """The read-out's method text, e.g. ``"Beta-Binomial posterior, Beta(1, 1) prior"``."""
        return f"Beta-Binomial posterior, Beta({self.a:g}, {self.b:g}) prior"


UNIFORM_PRIOR = BetaPrior(1.0, 1.0)
JEFFREYS_PRIOR = BetaPrior(0.5, 0.5)
BETA_METHOD = UNIFORM_PRIOR.method


def _check_prior(prior: object, kind: type) -> BetaPrior:
    if prior is None:
        return UNIFORM_PRIOR
    if not isinstance(prior, BetaPrior):
        raise InvalidInputError(
            f"prior must be a BetaPrior or None, got {prior!r} ({type(prior).__name__})"
        )
    if kind is not Proportion:
        raise InvalidInputError(
            f"prior applies to conversion metrics (Proportion) only, got {kind.__name__} summaries"
        )
    return prior


def _beta(summary: Proportion, prior: BetaPrior = UNIFORM_PRIOR) -> tuple[float, float]:
    return summary.conversions + prior.a, summary.visitors - summary.conversions + prior.b


def _beta_quantile(a: float, b: float, u: float) -> float:
    return float(special.betaincinv(a, b, u))


def _beta_cdf(a: float, b: float, x: float) -> float:
    return float(special.betainc(a, b, x))


def _normal_quantile(mean: float, deviation: float, u: float) -> float:
    return mean + deviation * float(special.ndtri(u))


def _normal_cdf(mean: float, deviation: float, x: float) -> float:
    return float(special.ndtr((x - mean) / deviation))


def _normal_reasons(named: Sequence[tuple[str, MeanSummary]]) -> list[str]:
    reasons = []
    for name, summary in named:
        if summary.n < 2:
            reasons.append(f"{name} has {summary.n} visitor(s); a posterior needs at least 2")
        elif summary.variance == 0.0:
            reasons.append(f"{name} has no variation, so its posterior is degenerate")
    return reasons


def _check_variants(name: str, values: Sequence[object]) -> type[Proportion] | type[MeanSummary]:
    if all(isinstance(value, Proportion) for value in values):
        return Proportion
    if all(isinstance(value, MeanSummary) for value in values):
        return MeanSummary
    raise _type_error(name, values)


def _type_error(name: str, values: Sequence[object]) -> InvalidInputError:
    kinds = sorted({type(value).__name__ for value in values})
    return InvalidInputError(f"{name} must be all Proportion or all MeanSummary, got {kinds}")


def chance_to_beat_control(
    *,
    control: Proportion | MeanSummary,
    treatment: Proportion | MeanSummary,
    prior: BetaPrior | None = None,
) -> BayesianResult:
    r"""Posterior probability that the treatment beats the control, and the expected losses.

    Conversions: with the prior :math:`Beta(a_0, b_0)` (default :math:`Beta(1, 1)`),
    :math:`p_g \sim Beta(a_0 + x_g, b_0 + n_g - x_g)` and, with :math:`a, b` those
    parameters (Miller 2015; the sum needs one integer parameter, else the integral
    :math:`\int_0^1 F_c(Q_t(u))\,du` is evaluated by adaptive quadrature),

    .. math::

        P(p_t > p_c) = \sum_{i=0}^{a_t - 1}
            \frac{B(a_c + i, b_c + b_t)}{(b_t + i) B(1 + i, b_t) B(a_c, b_c)}

    (the shortest of the four equivalent sums; adaptive quadrature of the same integral when
    even that has over 20,000 terms). The expected loss of choosing the treatment is
    :math:`E[\max(p_c - p_t, 0)] = \frac{a_c}{a_c + b_c} P(p_c' > p_t) - \frac{a_t}{a_t + b_t}
    P(p_c > p_t')` where a primed variable has its ``a`` increased by one.

    Means: :math:`\mu_g \sim N(\bar y_g, s_g^2 / n_g)`, so with :math:`D = \mu_t - \mu_c \sim
    N(d, \sigma^2)`, :math:`P(D > 0) = \Phi(d / \sigma)` and the expected loss of choosing the
    treatment is :math:`E[\max(-D, 0)] = \sigma \phi(d/\sigma) - d \Phi(-d/\sigma)`.

    Parameters
    ----------
    control, treatment : Proportion or MeanSummary
        Both of the same type.
    prior : BetaPrior, optional
        Prior of both conversion rates; Beta(1, 1) when None. Conversions only.

    Returns
    -------
    BayesianResult
        Expected losses are in the metric's units (conversion-rate points or per-visitor
        value). For means, fewer than two visitors or no variation in a variant give NaN with
        ``reason`` and an :class:`~stats.errors.UndefinedResultWarning`; for conversions every
        input is defined (a variant without visitors has the uniform prior as its posterior).

    References
    ----------
    E. Miller, "Formulas for Bayesian A/B Testing", 2015,
    https://www.evanmiller.org/bayesian-ab-testing.html.
    C. Stucchio, "Bayesian A/B Testing at VWO", VWO white paper, 2015 (expected loss).

    Examples
    --------
    >>> result = chance_to_beat_control(
    ...     control=Proportion(conversions=1, visitors=2),
    ...     treatment=Proportion(conversions=2, visitors=3),
    ... )
    >>> round(result.chance_to_beat_control, 4)
    0.6286
    """
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        beta_prior = _check_prior(prior, Proportion)
        a_c, b_c = _beta(control, beta_prior)
        a_t, b_t = _beta(treatment, beta_prior)
        return BayesianResult(
            chance_to_beat_control=_formulas.beta_probability_greater(a_t, b_t, a_c, b_c),
            expected_loss=_formulas.beta_expected_loss(a_t, b_t, a_c, b_c),
            control_expected_loss=_formulas.beta_expected_loss(a_c, b_c, a_t, b_t),
            method=beta_prior.method,
            reason=None,
        )
    if isinstance(control, MeanSummary) and isinstance(treatment, MeanSummary):
        _check_prior(prior, MeanSummary)
        return _normal_chance(control, treatment)
    raise _type_error("control and treatment", [control, treatment])


def _normal_chance(control: MeanSummary, treatment: MeanSummary) -> BayesianResult:
    reason = join_reasons(_normal_reasons([("control", control), ("treatment", treatment)]))
    if reason is not None:
        warn_undefined(reason, stacklevel=3)
        return BayesianResult(math.nan, math.nan, math.nan, NORMAL_METHOD, reason)
    difference = treatment.mean - control.mean
    deviation = math.sqrt(control.variance / control.n + treatment.variance / treatment.n)
    return BayesianResult(
        chance_to_beat_control=float(special.ndtr(difference / deviation)),
        expected_loss=_formulas.normal_expected_loss(difference, deviation),
        control_expected_loss=_formulas.normal_expected_loss(-difference, deviation),
        method=NORMAL_METHOD,
        reason=None,
    )


def chance_to_be_best(
    *, variants: Sequence[Proportion] | Sequence[MeanSummary], prior: BetaPrior | None = None
) -> BestResult:
    r"""Posterior probability that each variant has the highest true value.

    .. math::

        P(\theta_i = \max_j \theta_j) = \int \prod_{j \ne i} F_j(x)\, dF_i(x)
            = \int_0^1 \prod_{j \ne i} F_j(Q_i(u))\, du

    with :math:`F_j` the posterior CDF (Beta for conversions, normal for means, as in
    :func:`chance_to_beat_control`) and :math:`Q_i` the quantile function, integrated by
    adaptive quadrature. With two variants this equals ``1 - p`` and ``p`` for ``p`` the chance
    to beat control.

    Parameters
    ----------
    variants : sequence of Proportion, or sequence of MeanSummary
        At least two variants, all of one type, in any order (the result follows it).
    prior : BetaPrior, optional
        Prior of every conversion rate; Beta(1, 1) when None. Conversions only.

    Returns
    -------
    BestResult
        A tuple with one probability per variant (they sum to 1), with ``method`` and
        ``reason`` like the other results. For means with a variant that has fewer
        than two visitors or no variation, every entry is NaN and an
        :class:`~stats.errors.UndefinedResultWarning` says why.

    References
    ----------
    E. Miller, "Formulas for Bayesian A/B Testing", 2015.

    Examples
    --------
    >>> best = chance_to_be_best(
    ...     variants=[Proportion(conversions=1, visitors=2), Proportion(conversions=2, visitors=3)]
    ... )
    >>> [round(p, 4) for p in best]
    [0.3714, 0.6286]
    """
    if isinstance(variants, str | bytes) or not isinstance(variants, Sequence):
        raise InvalidInputError(f"variants must be a sequence of summaries, got {variants!r}")
    if len(variants) < 2:
        raise InvalidInputError(f"variants must have at least 2 items, got {len(variants)}")
    kind = _check_variants("variants", list(variants))
    beta_prior = _check_prior(prior, kind)
    quantiles: list[Callable[[float], float]] = []
    cdfs: list[Callable[[float], float]] = []
    if kind is Proportion:
        parameters = [_beta(v, beta_prior) for v in variants if isinstance(v, Proportion)]
        if len(parameters) == 2:
            (a_0, b_0), (a_1, b_1) = parameters
            chance = _formulas.beta_probability_greater(a_1, b_1, a_0, b_0)
            return BestResult((1.0 - chance, chance), method=beta_prior.method, reason=None)
        for a, b in parameters:
            quantiles.append(functools.partial(_beta_quantile, a, b))
            cdfs.append(functools.partial(_beta_cdf, a, b))
        chances = _formulas.probability_best(quantiles, cdfs)
        return BestResult(chances, method=beta_prior.method, reason=None)
    summaries = [v for v in variants if isinstance(v, MeanSummary)]
    reason = join_reasons(_normal_reasons([(f"variants[{i}]", s) for i, s in enumerate(summaries)]))
    if reason is not None:
        warn_undefined(reason, stacklevel=2)
        return BestResult((math.nan for _ in summaries), method=NORMAL_METHOD, reason=reason)
    for summary in summaries:
        mean, deviation = summary.mean, math.sqrt(summary.variance / summary.n)
        quantiles.append(functools.partial(_normal_quantile, mean, deviation))
        cdfs.append(functools.partial(_normal_cdf, mean, deviation))
    chances = _formulas.probability_best(quantiles, cdfs)
    return BestResult(chances, method=NORMAL_METHOD, reason=None)
