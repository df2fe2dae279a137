"""Sample-ratio mismatch: is the observed split of visitors the configured one?

A split that differs from the weights beyond chance (a redirect that loses visitors in one
variant, a bot filter, a bucketing bug) biases every comparison of the experiment, whatever
their p-values say. The check is Pearson's chi-square goodness-of-fit test against the weights,
flagged at a strict threshold (p < 0.001 by default) because it runs on every report refresh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stats import _formulas
from stats._validate import check_count, check_finite, check_open_unit, check_sequence
from stats.errors import InvalidInputError, warn_undefined
from stats.results import SRMResult

__all__ = ["srm_test"]


def srm_test(
    *, visitors: Sequence[int], weights: Sequence[float], threshold: float = 0.001
) -> SRMResult:
    r"""Chi-square goodness-of-fit test of the visitors per variant against the weights.

    .. math::

        E_i = N \frac{w_i}{\sum_j w_j}, \qquad
        X^2 = \sum_i \frac{(O_i - E_i)^2}{E_i}, \qquad p = P(\chi^2_{k-1} > X^2)

    Parameters
    ----------
    visitors : sequence of int
        Visitors per variant, ``>= 0``, at least two variants.
    weights : sequence of float
        Configured traffic weights, ``> 0``, same length; they need not sum to 1.
    threshold : float, default 0.001
        Flag a mismatch when ``p < threshold``; in (0, 1).

    Returns
    -------
    SRMResult
        With no visitors at all the p-value is NaN, ``mismatch`` is False, and ``reason`` and
        an :class:`~stats.errors.UndefinedResultWarning` say so.

    References
    ----------
    K. Pearson, "On the criterion that a given system of deviations...", *Philosophical
    Magazine* 50 (1900) 157-175.
    A. Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments",
    KDD 2019.

    Examples
    --------
    >>> result = srm_test(visitors=[5012, 4988], weights=[0.5, 0.5])
    >>> round(result.pvalue, 4), result.mismatch
    (0.8103, False)
    """
    counts = tuple(
        check_count(f"visitors[{i}]", v)
        for i, v in enumerate(check_sequence("visitors", visitors, min_length=2))
    )
    raw_weights = [
        check_finite(f"weights[{i}]", w)
        for i, w in enumerate(check_sequence("weights", weights, min_length=2))
    ]
    if len(raw_weights) != len(counts):
        raise InvalidInputError(
            f"weights must have one entry per variant ({len(counts)}), got {len(raw_weights)}"
        )
    for i, weight in enumerate(raw_weights):
        if weight <= 0.0:
            raise InvalidInputError(f"weights[{i}] must be > 0, got {weight}")
    level = check_open_unit("threshold", threshold)
    total_weight = math.fsum(raw_weights)
    total = sum(counts)
    expected = tuple(total * w / total_weight for w in raw_weights)
    if total == 0:
        reason = "no visitors yet, so the split cannot be tested"
        warn_undefined(reason, stacklevel=2)
        return SRMResult(
            math.nan, math.nan, False, expected, counts, level, reason, df=len(counts) - 1
        )
    statistic, pvalue = _formulas.chi_square_goodness_of_fit(counts, expected)
    return SRMResult(
        statistic=statistic,
        pvalue=pvalue,
        mismatch=pvalue < level,
        expected=expected,
        observed=counts,
        threshold=level,
        reason=None,
        df=len(counts) - 1,
    )
