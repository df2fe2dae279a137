"""Adjusted p-values for several variants or metrics tested together.

Holm's step-down procedure (the default) controls the family-wise error rate like Bonferroni
but rejects at least as often; Benjamini-Hochberg controls the false discovery rate instead.
Adjusted p-values are compared with the unadjusted alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from stats._validate import check_probability, check_sequence
from stats.errors import InvalidInputError

__all__ = ["AdjustmentMethod", "adjust_pvalues"]

AdjustmentMethod = Literal["holm", "bh", "bonferroni"]


def adjust_pvalues(
    pvalues: Sequence[float], *, method: AdjustmentMethod = "holm"
) -> tuple[float, ...]:
    r"""Adjust a family of p-values for multiple testing.

    With the :math:`m` non-NaN p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`:

    .. math::

        \text{Bonferroni: } \tilde p_i = \min(1, m p_i)

        \text{Holm: } \tilde p_{(i)} = \max_{j \le i} \min(1, (m - j + 1) p_{(j)})

        \text{Benjamini-Hochberg: } \tilde p_{(i)} = \min_{j \ge i} \min(1, m p_{(j)} / j)

    Parameters
    ----------
    pvalues : sequence of float
        Each in [0, 1], or NaN for a comparison that is undefined; NaN entries come back as NaN
        and are left out of the family (``m`` counts only the others).
    method : {"holm", "bh", "bonferroni"}, default "holm"
        Adjustment procedure.

    Returns
    -------
    tuple of float
        Adjusted p-values in the input order.

    References
    ----------
    S. Holm, "A simple sequentially rejective multiple test procedure", *Scandinavian Journal
    of Statistics* 6 (1979) 65-70.
    Y. Benjamini, Y. Hochberg, "Controlling the false discovery rate: a practical and powerful
    approach to multiple testing", *JRSS B* 57 (1995) 289-300.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03], method="holm")
    (0.03, 0.06, 0.06)
    >>> adjust_pvalues([0.01, float("nan"), 0.04], method="bonferroni")
    (0.02, nan, 0.08)
    """
    values = [
        check_probability(f"pvalues[{i}]", p)
        for i, p in enumerate(check_sequence("pvalues", pvalues, min_length=0))
    ]
    if method not in ("holm", "bh", "bonferroni"):
        raise InvalidInputError(f"method must be one of 'holm', 'bh', 'bonferroni', got {method!r}")
    family = sorted((p, i) for i, p in enumerate(values) if not math.isnan(p))
    m = len(family)
    adjusted = [math.nan] * len(values)
    if method == "bonferroni":
        for p, i in family:
            adjusted[i] = min(1.0, m * p)
    elif method == "holm":
        running = 0.0
        for rank, (p, i) in enumerate(family):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, i = family[rank]
            running = min(running, p * (m / (rank + 1)))
            adjusted[i] = running
    return tuple(adjusted)
