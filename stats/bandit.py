r"""Multi-armed bandit allocation by Thompson sampling, and the read-out that survives it.

A bandit experiment re-weights its traffic once per period toward the variants that convert
best: each variant's weight for the next period is its posterior probability of being the best
(Beta(1 + conversions, 1 + visitors - conversions) posteriors of the primary conversion metric),
raised to at least a floor so that no variant stops learning. That is Thompson sampling done in
batches, "randomized probability matching" (Scott 2010).

Pooling the visitors of all periods then compares variants whose visitors came at different
times in different proportions: when the conversion rate drifts over time (weekdays, a
campaign), the variant that got more traffic in a good period looks better though it is not,
Simpson's paradox (Kohavi, Tang and Xu 2020, ch. 3). :func:`period_weighted_comparison`
compares the variants within each period and averages the per-period differences, weighting
each period by its share of the visitors (a stratified, Cochran-style estimator), so the
allocation's changes cannot bias the result.

References
----------
S. L. Scott, "A modern Bayesian look at the multi-armed bandit", *Applied Stochastic Models in
Business and Industry* 26(6), 2010.
R. Kohavi, D. Tang, Y. Xu, *Trustworthy Online Controlled Experiments*, Cambridge University
Press, 2020, ch. 3 (Simpson's paradox when the allocation changes during an experiment).
W. G. Cochran, "Some methods for strengthening the common chi-square tests", *Biometrics*
10(4), 1954.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stats import _formulas
from stats._validate import check_confidence_level
from stats.bayesian import chance_to_be_best
from stats.errors import InvalidInputError
from stats.results import Interval, symmetric_interval
from stats.summaries import Proportion

__all__ = [
    "PeriodWeightedResult",
    "best_variant_shares",
    "floored",
    "period_weighted_comparison",
    "thompson_weights",
]


def floored(probabilities: Sequence[float], floor: float) -> tuple[float, ...]:
    r"""Weights of at least ``floor`` each, keeping the order of ``probabilities``.

    .. math:: w_i = f + (1 - k f)\, p_i

    for ``k`` variants, so the weights sum to 1 when the probabilities do.

    >>> floored([0.9, 0.1], 0.05)
    (0.86, 0.14)
    """
    k = len(probabilities)
    if not (isinstance(floor, int | float) and 0.0 <= floor <= 1.0 / k):
        raise InvalidInputError(f"floor must be in [0, 1/{k}] for {k} variants, got {floor!r}")
    return tuple(round(floor + (1.0 - k * floor) * p, 12) for p in probabilities)


def thompson_weights(*, variants: Sequence[Proportion], floor: float = 0.0) -> tuple[float, ...]:
    r"""The next period's traffic weights: each variant's chance to be best, floored.

    .. math:: w_i = f + (1 - k f)\, P(\theta_i = \max_j \theta_j \mid \text{data})

    with Beta(1 + x_i, 1 + n_i - x_i) posteriors (:func:`stats.chance_to_be_best`, exact
    quadrature, so the same data always give the same weights) and ``f`` the floor.

    Parameters
    ----------
    variants : sequence of Proportion
        The primary conversion metric of every variant, cumulative over the experiment.
    floor : float, default 0
        The least weight any variant gets, in [0, 1/k].

    Examples
    --------
    >>> weights = thompson_weights(
    ...     variants=[Proportion(conversions=30, visitors=1000),
    ...               Proportion(conversions=45, visitors=1000)],
    ...     floor=0.05,
    ... )
    >>> [round(w, 3) for w in weights]
    [0.085, 0.915]
    """
    for position, summary in enumerate(variants):
        if not isinstance(summary, Proportion):
            raise InvalidInputError(
                f"variants[{position}] must be a Proportion, got {type(summary).__name__}"
            )
    return floored(chance_to_be_best(variants=list(variants)), floor)


def best_variant_shares(
    conversions: NDArray[np.int64],
    visitors: NDArray[np.int64],
    *,
    draws: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Monte Carlo chance to be best of many experiments at once (for simulations).

    ``conversions`` and ``visitors`` have shape ``(runs, k)``; returns the share of ``draws``
    posterior draws per run in which each variant is the highest, shape ``(runs, k)``. It is
    what Thompson sampling visitor by visitor would allocate; :func:`thompson_weights` gives its
    exact limit.
    """
    successes = np.asarray(conversions, dtype=np.float64)
    trials = np.asarray(visitors, dtype=np.float64)
    if successes.shape != trials.shape or successes.ndim != 2:
        raise InvalidInputError(
            f"conversions and visitors must have one shape (runs, k), got {successes.shape} "
            f"and {trials.shape}"
        )
    samples = rng.beta(
        1.0 + successes[:, :, None],
        1.0 + trials[:, :, None] - successes[:, :, None],
        size=(*successes.shape, draws),
    )
    best = samples.argmax(axis=1)
    k = successes.shape[1]
    return np.stack([(best == i).mean(axis=1) for i in range(k)], axis=1)


@dataclass(frozen=True)
class PeriodWeightedResult:
    """Treatment against control, compared within each period and averaged over periods.

    Attributes
    ----------
    statistic, pvalue : float
        z statistic and two-sided p-value of no difference (within-period pooled variances).
    absolute_lift : float
        :math:`\\sum_k w_k (\\hat p_{t,k} - \\hat p_{c,k})`, ``w_k`` the period's visitor share.
    absolute_ci : tuple of float
        Its interval at ``confidence_level`` (within-period unpooled variances).
    standard_error : float
        Of ``absolute_lift`` (unpooled, the interval's).
    periods : int
        Periods compared (those where both variants have visitors).
    reason : str or None
        Why a field is NaN; None when every field is defined.
    """

    statistic: float
    pvalue: float
    absolute_lift: float
    absolute_ci: Interval
    standard_error: float
    confidence_level: float
    periods: int
    reason: str | None

    def confidence_interval(self, confidence_level: float = 0.95) -> Interval:
        level = check_confidence_level(confidence_level)
        critical = _formulas.normal_quantile(level)
        return symmetric_interval(self.absolute_lift, self.standard_error, critical)


def period_weighted_comparison(
    *,
    periods: Sequence[tuple[Proportion, Proportion]],
    confidence_level: float = 0.95,
) -> PeriodWeightedResult:
    r"""Compare conversion rates of two variants whose traffic split changed between periods.

    .. math::

        \hat\Delta = \sum_k w_k (\hat p_{t,k} - \hat p_{c,k}), \quad
        w_k = \frac{n_{c,k} + n_{t,k}}{\sum_j (n_{c,j} + n_{t,j})}

        z = \hat\Delta \Big/ \sqrt{\textstyle\sum_k w_k^2\, \bar p_k (1 - \bar p_k)
            (1/n_{c,k} + 1/n_{t,k})}, \qquad
        \hat\Delta \pm z_{1-\alpha/2} \sqrt{\textstyle\sum_k w_k^2
            \big(\hat p_{c,k}(1-\hat p_{c,k})/n_{c,k} + \hat p_{t,k}(1-\hat p_{t,k})/n_{t,k}\big)}

    with :math:`\bar p_k` the period's pooled rate. With one period it is the two-proportion
    z-test and Wald interval of :func:`stats.compare_proportions`.

    Parameters
    ----------
    periods : sequence of (Proportion, Proportion)
        Per period, the (control, treatment) visitors who entered in it and their conversions.
        Periods in which a variant has no visitor are left out.
    confidence_level : float, default 0.95

    References
    ----------
    W. G. Cochran, *Biometrics* 10(4), 1954; R. Kohavi, D. Tang, Y. Xu, *Trustworthy Online
    Controlled Experiments*, 2020, ch. 3.

    Examples
    --------
    Traffic moved from 50/50 to 10/90 while the rate rose from 2% to 4%; the pooled rates say
    +1.1 points, the periods agree there is no difference:

    >>> P = Proportion
    >>> result = period_weighted_comparison(periods=[
    ...     (P(conversions=100, visitors=5000), P(conversions=100, visitors=5000)),
    ...     (P(conversions=40, visitors=1000), P(conversions=360, visitors=9000)),
    ... ])
    >>> round(result.absolute_lift, 6), round(result.pvalue, 3), result.periods
    (0.0, 1.0, 2)
    """
    level = check_confidence_level(confidence_level)
    used = []
    for position, pair in enumerate(periods):
        if not (isinstance(pair, tuple) and len(pair) == 2) or not all(
            isinstance(p, Proportion) for p in pair
        ):
            raise InvalidInputError(
                f"periods[{position}] must be a (control, treatment) pair of Proportion, "
                f"got {pair!r}"
            )
        if pair[0].visitors > 0 and pair[1].visitors > 0:
            used.append(pair)
    total = sum(c.visitors + t.visitors for c, t in used)
    difference = test_variance = variance = 0.0
    for control, treatment in used:
        weight = (control.visitors + treatment.visitors) / total
        difference += weight * (treatment.rate - control.rate)
        pooled = _formulas.pooled_proportion_standard_error(
            control.conversions, control.visitors, treatment.conversions, treatment.visitors
        )
        test_variance += weight**2 * pooled**2
        variance += weight**2 * (
            control.variance / control.visitors + treatment.variance / treatment.visitors
        )
    reason = None
    if not used:
        reason = "no period has visitors in both variants"
    elif test_variance <= 0.0:
        reason = "no period has a conversion rate strictly between 0 and 1"
    if reason is not None:
        nan = math.nan
        return PeriodWeightedResult(
            nan, nan, difference if used else nan, (nan, nan), nan, level, len(used), reason
        )
    statistic = difference / math.sqrt(test_variance)
    standard_error = math.sqrt(variance)
    critical = _formulas.normal_quantile(level)
    return PeriodWeightedResult(
        statistic=statistic,
        pvalue=_formulas.two_sided_pvalue(statistic),
        absolute_lift=difference,
        absolute_ci=symmetric_interval(difference, standard_error, critical),
        standard_error=standard_error,
        confidence_level=level,
        periods=len(used),
        reason=None,
    )
