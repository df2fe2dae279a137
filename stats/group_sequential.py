"""Group-sequential tests: a planned number of looks, alpha spent over them.

The second peeking-safe procedure beside the mSPRT. Where the mSPRT stays valid for unlimited,
unplanned looks, a group-sequential design fixes the planned sample size and spends the
significance level over the looks with a Lan-DeMets spending function, so that at the planned
size it keeps almost all of the fixed-horizon test's power (O'Brien-Fleming shape: little
alpha early, nearly the fixed-horizon boundary at the end) or stops earlier on large effects
(Pocock shape: about equal boundaries). Boundaries depend only on the information fractions
reached so far, so looks need not be equally spaced.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stats import _formulas
from stats._validate import check_confidence_level, check_finite, check_sequence
from stats.errors import InvalidInputError, warn_undefined
from stats.looks import LiftKind, Point, check_plan, estimate_points, summary_points
from stats.results import GroupSequentialResult
from stats.summaries import Estimate, Summary

__all__ = [
    "GroupSequentialBoundaries",
    "Spending",
    "group_sequential",
    "group_sequential_boundaries",
]

Spending = Literal["obrien_fleming", "pocock"]

METHOD = "group-sequential z-test, Lan-DeMets {} spending, two-sided"
_NAMES = {"obrien_fleming": "O'Brien-Fleming", "pocock": "Pocock"}


@dataclass(frozen=True)
class GroupSequentialBoundaries:
    """Two-sided z boundaries of a group-sequential design.

    Attributes
    ----------
    information_fractions : tuple of float
        Share of the planned information at each look.
    boundaries : tuple of float
        Reject at look ``k`` when ``|z_k| >= boundaries[k]`` (``inf``: the look spends nothing).
    alpha_spent : tuple of float
        Cumulative alpha spent up to each look.
    spending : str
        The spending function's shape.
    confidence_level : float
        ``1 - alpha``.
    """

    information_fractions: tuple[float, ...]
    boundaries: tuple[float, ...]
    alpha_spent: tuple[float, ...]
    spending: str
    confidence_level: float


def _check_spending(spending: object) -> Spending:
    if spending == "obrien_fleming":
        return "obrien_fleming"
    if spending == "pocock":
        return "pocock"
    raise InvalidInputError(f"spending must be 'obrien_fleming' or 'pocock', got {spending!r}")


def group_sequential_boundaries(
    *,
    information_fractions: Sequence[float] | int,
    spending: Spending = "obrien_fleming",
    confidence_level: float = 0.95,
) -> GroupSequentialBoundaries:
    r"""Boundaries of a two-sided group-sequential test with Lan-DeMets alpha spending.

    With :math:`t_k` the information fraction at look :math:`k` and the spending function

    .. math::

        a_{OF}(t) = 2 - 2\Phi\left(\frac{z_{1-\alpha/2}}{\sqrt t}\right), \qquad
        a_{P}(t) = \alpha \log(1 + (e - 1) t),

    the boundary :math:`c_k` solves :math:`P_0(|Z_k| \ge c_k, |Z_j| < c_j \; \forall j < k) =
    a(t_k) - a(t_{k-1})`; the joint law of :math:`(Z_1, \dots, Z_K)` is that of a Brownian motion
    observed at :math:`t_k` (:math:`Corr(Z_j, Z_k) = \sqrt{t_j / t_k}`), integrated numerically
    look by look.

    Parameters
    ----------
    information_fractions : sequence of float, or int
        Non-decreasing fractions in (0, 1]; an integer ``K`` means ``K`` equally spaced looks
        ``1/K, 2/K, ..., 1``.
    spending : {"obrien_fleming", "pocock"}, default "obrien_fleming"
        Shape of the spending function.
    confidence_level : float, default 0.95
        ``1 - alpha``; the design spends ``alpha`` by ``t = 1``.

    Returns
    -------
    GroupSequentialBoundaries

    References
    ----------
    K. K. G. Lan, D. L. DeMets, "Discrete sequential boundaries for clinical trials",
    *Biometrika* 70 (1983) 659-663. C. Jennison, B. W. Turnbull, *Group Sequential Methods with
    Applications to Clinical Trials*, Chapman & Hall/CRC, 2000, ch. 7 and 19.

    Examples
    --------
    >>> design = group_sequential_boundaries(information_fractions=5)
    >>> [round(c, 3) for c in design.boundaries]
    [4.877, 3.357, 2.68, 2.29, 2.031]
    """
    level = check_confidence_level(confidence_level)
    shape = _check_spending(spending)
    fractions = _fractions(information_fractions)
    bounds = _bounds(tuple(fractions), 1.0 - level, shape)
    return GroupSequentialBoundaries(
        information_fractions=tuple(fractions),
        boundaries=tuple(c for c, _ in bounds),
        alpha_spent=tuple(spent for _, spent in bounds),
        spending=shape,
        confidence_level=level,
    )


def _fractions(value: object) -> list[float]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise InvalidInputError(f"information_fractions must be >= 1 looks, got {value}")
        return [k / value for k in range(1, value + 1)]
    fractions = [
        check_finite(f"information_fractions[{i}]", t)
        for i, t in enumerate(check_sequence("information_fractions", value))
    ]
    for i, t in enumerate(fractions):
        if not 0.0 < t <= 1.0:
            raise InvalidInputError(f"information_fractions[{i}] must be in (0, 1], got {t}")
        if i and t < fractions[i - 1]:
            raise InvalidInputError(
                f"information_fractions must be non-decreasing: information_fractions[{i}] "
                f"must be >= {fractions[i - 1]}, got {t}"
            )
    return fractions


def group_sequential(
    *,
    looks: Sequence[tuple[Summary, Summary]] | Sequence[Estimate],
    planned_visitors: float | None = None,
    planned_variance: float | None = None,
    spending: Spending = "obrien_fleming",
    lift: LiftKind = "absolute",
    null: float = 0.0,
    confidence_level: float = 0.95,
) -> GroupSequentialResult:
    r"""Group-sequential test of cumulative looks against Lan-DeMets boundaries.

    At look :math:`k` the statistic is :math:`z_k = (D_k - \theta_0) / \sqrt{V_k}` (the estimate
    and variance of the fixed-horizon comparison of the summaries' kind, or an
    :class:`~stats.summaries.Estimate` as given) and the information fraction is :math:`t_k =
    \bar n_k / m` (visitors per variant over the plan) or :math:`t_k = V_m / V_k`, capped at 1;
    the test rejects at the first look with :math:`|z_k| \ge c_k`
    (:func:`group_sequential_boundaries` on the fractions reached).

    Parameters
    ----------
    looks : sequence of (control, treatment) pairs, or sequence of Estimate
        Cumulative looks, oldest first.
    planned_visitors : float, optional
        Planned visitors per variant (e.g. :func:`~stats.sample_size`); needs summaries or
        estimates with ``visitors``.
    planned_variance : float, optional
        Variance of the estimate at the planned size; exactly one of the two must be given.
    spending : {"obrien_fleming", "pocock"}, default "obrien_fleming"
        Shape of the spending function.
    lift : {"absolute", "relative"}, default "absolute"
        For summaries: the lift tested.
    null : float, default 0.0
        :math:`\theta_0`.
    confidence_level : float, default 0.95
        ``1 - alpha``, the overall level.

    Returns
    -------
    GroupSequentialResult
        Looks past the plan add no information and have an infinite boundary (all alpha was
        spent at the plan); undefined looks (no visitors, no variation) likewise, with
        ``reason`` and an :class:`~stats.errors.UndefinedResultWarning`.

    References
    ----------
    K. K. G. Lan, D. L. DeMets, "Discrete sequential boundaries for clinical trials",
    *Biometrika* 70 (1983) 659-663.

    Examples
    --------
    >>> looks = [Estimate(0.01, 0.004**2), Estimate(0.011, 0.003**2)]
    >>> result = group_sequential(looks=looks, planned_variance=0.003**2)
    >>> result.rejected_at, [round(c, 3) for c in result.boundaries]
    (2, [2.77, 1.976])
    """
    level = check_confidence_level(confidence_level)
    shape = _check_spending(spending)
    kind = check_plan(lift, null)
    theta0 = float(null)
    points = _points(looks, kind, level, planned_visitors is not None)
    fractions, reasons = _information(points, planned_visitors, planned_variance)
    # Information never decreases: a look whose variance estimate grew keeps the fraction reached.
    reached: list[float] = []
    for t in fractions:
        previous = reached[-1] if reached else 0.0
        reached.append(previous if math.isnan(t) else max(t, previous))
    defined = [not math.isnan(t) for t in fractions]
    useful = [t for t, ok in zip(reached, defined, strict=True) if ok]
    bounds = iter(_bounds(tuple(useful), 1.0 - level, shape))
    boundaries: list[float] = []
    spent: list[float] = []
    running = 0.0
    for ok in defined:
        critical = math.inf
        if ok:
            critical, running = next(bounds)
        boundaries.append(critical)
        spent.append(running)
    statistics = tuple(
        (p.value - theta0) / math.sqrt(p.variance) if p.problem is None else math.nan
        for p in points
    )
    crossed = [k + 1 for k, (z, c) in enumerate(zip(statistics, boundaries, strict=True))
               if abs(z) >= c]  # fmt: skip
    reason = "; ".join(dict.fromkeys(reasons)) if reasons else None
    warn_undefined(reason, stacklevel=2)
    return GroupSequentialResult(
        rejected=bool(crossed),
        rejected_at=crossed[0] if crossed else None,
        statistics=statistics,
        boundaries=tuple(boundaries),
        information_fractions=tuple(reached),
        alpha_spent=tuple(spent),
        spending=shape,
        confidence_level=level,
        method=METHOD.format(_NAMES[shape]),
        reason=reason,
    )


@functools.lru_cache(maxsize=128)
def _bounds(
    fractions: tuple[float, ...], alpha: float, shape: Spending
) -> tuple[tuple[float, float], ...]:
    """Boundaries are computed once per design: daily looks at a steady traffic repeat them."""
    return tuple(_formulas.group_sequential_bounds(fractions, alpha, shape))


def _points(looks: object, kind: LiftKind, level: float, need_visitors: bool) -> list[Point]:
    items = check_sequence("looks", looks)
    if all(isinstance(item, Estimate) for item in items):
        return estimate_points(items, need_visitors=need_visitors)  # type: ignore[arg-type]
    absolute, relative = summary_points(items, level)  # type: ignore[arg-type]
    return absolute if kind == "absolute" else relative


def _information(
    points: list[Point], planned_visitors: object, planned_variance: object
) -> tuple[list[float], list[str]]:
    given = [v for v in (planned_visitors, planned_variance) if v is not None]
    if len(given) != 1:
        raise InvalidInputError(
            f"exactly one of planned_visitors and planned_variance must be given, got {len(given)}"
        )
    name = "planned_visitors" if planned_visitors is not None else "planned_variance"
    plan = check_finite(name, given[0])
    if plan <= 0.0:
        raise InvalidInputError(f"{name} must be > 0, got {plan}")
    fractions: list[float] = []
    reasons: list[str] = []
    for number, point in enumerate(points, start=1):
        if point.problem is not None:
            reasons.append(f"{point.problem} at look {number}")
            fractions.append(math.nan)
            continue
        share = point.visitors / plan if name == "planned_visitors" else plan / point.variance
        fractions.append(min(share, 1.0))
    return fractions, reasons
