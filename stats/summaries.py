"""Sufficient statistics of one variant, the only input the comparisons need.

Every analysis in :mod:`stats` works on a handful of sums per variant, which is what the store
keeps and what a warehouse ``GROUP BY variant`` returns: visitors and conversions for a
conversion metric; ``n``, ``sum`` and ``sum_squares`` of per-visitor totals for a mean or count
metric; the same for a numerator and a denominator plus their cross-product for a ratio metric;
and the same for a metric and its pre-period covariate for CUPED. The summaries validate
themselves on construction (so a negative count or an impossible sum of squares fails at the
edge), add up across shards with ``+``, and can be built from raw per-visitor values with
``from_values``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stats import _formulas
from stats._validate import check_count, check_finite
from stats.errors import InvalidInputError

__all__ = ["CupedSummary", "Estimate", "MeanSummary", "Proportion", "RatioSummary", "Summary"]

# Sums accumulated in floating point (Redis INCRBYFLOAT, warehouse SUM) can put sum_squares a few
# ulps below sum**2 / n when every value is equal; anything beyond this relative slack is an error.
_RELATIVE_TOLERANCE = 1e-8


def _float_array(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{name} must contain only finite numbers (no NaN or inf)")
    return array


def _check_empty(n: int, **sums: float) -> None:
    if n == 0:
        for name, value in sums.items():
            if value != 0.0:
                raise InvalidInputError(f"{name} must be 0 when n is 0, got {value}")


def _check_squares(n: int, sum_name: str, total: float, squares_name: str, squares: float) -> None:
    if squares < 0.0:
        raise InvalidInputError(f"{squares_name} must be >= 0, got {squares}")
    if n > 0:
        floor = total * total / n
        if squares - floor < -_RELATIVE_TOLERANCE * max(squares, floor):
            raise InvalidInputError(
                f"{squares_name} must be >= {sum_name}**2 / n = {floor!r}, got {squares!r}"
            )


def _check_cross(
    n: int, x: tuple[float, float], y: tuple[float, float], cross: float, cross_name: str
) -> None:
    """Cauchy-Schwarz: the centred cross-product is bounded by the centred sums of squares."""
    if n == 0:
        return
    centred_x = max(x[1] - x[0] * x[0] / n, 0.0)
    centred_y = max(y[1] - y[0] * y[0] / n, 0.0)
    centred_cross = cross - x[0] * y[0] / n
    bound = math.sqrt(centred_x * centred_y)
    if abs(centred_cross) > bound + _RELATIVE_TOLERANCE * math.sqrt(x[1] * y[1]):
        raise InvalidInputError(
            f"{cross_name} = {cross!r} is impossible for these sums: the centred cross-product "
            f"{centred_cross!r} must be within +/-{bound!r} (Cauchy-Schwarz)"
        )


def _validate_pair(
    summary: Any, x: tuple[str, str], y: tuple[str, str], cross: str = "cross_sum"
) -> None:
    """Validate and normalise a frozen summary of two per-visitor variables and their cross sum.

    ``x`` and ``y`` name each variable's (sum, sum of squares) fields. Shared by
    :class:`RatioSummary` and :class:`CupedSummary`.
    """
    n = check_count("n", summary.n)
    values = {name: check_finite(name, getattr(summary, name)) for name in (*x, *y, cross)}
    _check_empty(n, **values)
    for sum_name, squares_name in (x, y):
        _check_squares(n, sum_name, values[sum_name], squares_name, values[squares_name])
    _check_cross(
        n, (values[x[0]], values[x[1]]), (values[y[0]], values[y[1]]), values[cross], cross
    )
    object.__setattr__(summary, "n", n)
    for name, value in values.items():
        object.__setattr__(summary, name, value)


@dataclass(frozen=True)
class Proportion:
    """Conversions among visitors of one variant.

    Parameters
    ----------
    conversions : int
        Visitors with at least one conversion, ``0 <= conversions <= visitors``.
    visitors : int
        Visitors exposed to the variant, ``>= 0``.

    Examples
    --------
    >>> Proportion(conversions=30, visitors=1000).rate
    0.03
    """

    conversions: int
    visitors: int

    def __post_init__(self) -> None:
        conversions = check_count("conversions", self.conversions)
        visitors = check_count("visitors", self.visitors)
        if conversions > visitors:
            raise InvalidInputError(
                f"conversions must be <= visitors ({visitors}), got {conversions}"
            )
        object.__setattr__(self, "conversions", conversions)
        object.__setattr__(self, "visitors", visitors)

    @property
    def rate(self) -> float:
        """Conversion rate ``conversions / visitors`` (NaN without visitors)."""
        return self.conversions / self.visitors if self.visitors else math.nan

    @property
    def variance(self) -> float:
        """Bernoulli variance ``p (1 - p)`` of one visitor (NaN without visitors)."""
        return _formulas.bernoulli_variance(self.rate)

    def as_mean_summary(self) -> MeanSummary:
        """The same data as 0/1 per-visitor values (``sum = sum_squares = conversions``)."""
        return MeanSummary(n=self.visitors, sum=self.conversions, sum_squares=self.conversions)

    def __add__(self, other: Proportion) -> Proportion:
        if not isinstance(other, Proportion):
            return NotImplemented
        return Proportion(
            conversions=self.conversions + other.conversions,
            visitors=self.visitors + other.visitors,
        )

    @classmethod
    def from_values(cls, values: ArrayLike) -> Proportion:
        """Summarise per-visitor values; a visitor converts when their value is above zero."""
        array = _float_array("values", values)
        if np.any(array < 0):
            raise InvalidInputError("values must be >= 0 for a conversion metric")
        return cls(conversions=int(np.count_nonzero(array > 0)), visitors=int(array.size))


@dataclass(frozen=True)
class MeanSummary:
    """Per-visitor totals of a mean or count metric in one variant.

    Parameters
    ----------
    n : int
        Visitors, ``>= 0``.
    sum : float
        Sum over visitors of their per-visitor total (revenue, orders, ...).
    sum_squares : float
        Sum over visitors of the squared per-visitor total; at least ``sum**2 / n``.

    Examples
    --------
    >>> summary = MeanSummary.from_values([1.0, 2.0, 3.0])
    >>> summary.mean, summary.variance
    (2.0, 1.0)
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = check_count("n", self.n)
        total = check_finite("sum", self.sum)
        squares = check_finite("sum_squares", self.sum_squares)
        _check_empty(n, sum=total, sum_squares=squares)
        _check_squares(n, "sum", total, "sum_squares", squares)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)

    @property
    def visitors(self) -> int:
        """Visitors, ``n`` (the name :class:`Proportion` uses)."""
        return self.n

    @property
    def mean(self) -> float:
        """Mean per visitor (NaN without visitors)."""
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance per visitor with ``n - 1`` in the denominator (NaN below 2 visitors)."""
        return _formulas.sample_variance(self.n, self.sum, self.sum_squares)

    def __add__(self, other: MeanSummary) -> MeanSummary:
        if not isinstance(other, MeanSummary):
            return NotImplemented
        return MeanSummary(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_squares=self.sum_squares + other.sum_squares,
        )

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanSummary:
        """Summarise an array of per-visitor totals."""
        array = _float_array("values", values)
        return cls(n=int(array.size), sum=float(array.sum()), sum_squares=float(array @ array))


@dataclass(frozen=True)
class RatioSummary:
    """Per-visitor numerator ``X`` and denominator ``Y`` of a ratio metric in one variant.

    The metric is ``sum(X) / sum(Y)``, e.g. average order value = revenue / orders.

    Parameters
    ----------
    n : int
        Visitors, ``>= 0``.
    numerator_sum, numerator_sum_squares : float
        Sum of ``X`` and of ``X**2`` over visitors.
    denominator_sum, denominator_sum_squares : float
        Sum of ``Y`` and of ``Y**2`` over visitors.
    cross_sum : float
        Sum of ``X * Y`` over visitors.
    """

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    cross_sum: float

    def __post_init__(self) -> None:
        _validate_pair(
            self,
            ("numerator_sum", "numerator_sum_squares"),
            ("denominator_sum", "denominator_sum_squares"),
        )

    @property
    def visitors(self) -> int:
        """Visitors, ``n`` (the name :class:`Proportion` uses)."""
        return self.n

    @property
    def numerator(self) -> MeanSummary:
        """The numerator on its own."""
        return MeanSummary(n=self.n, sum=self.numerator_sum, sum_squares=self.numerator_sum_squares)

    @property
    def denominator(self) -> MeanSummary:
        """The denominator on its own."""
        return MeanSummary(
            n=self.n, sum=self.denominator_sum, sum_squares=self.denominator_sum_squares
        )

    @property
    def ratio(self) -> float:
        """``sum(X) / sum(Y)`` (NaN when the denominator sums to zero)."""
        return self.numerator_sum / self.denominator_sum if self.denominator_sum else math.nan

    @property
    def covariance(self) -> float:
        """Sample covariance of ``X`` and ``Y`` per visitor (NaN below 2 visitors)."""
        return _formulas.sample_covariance(
            self.n, self.numerator_sum, self.denominator_sum, self.cross_sum
        )

    def __add__(self, other: RatioSummary) -> RatioSummary:
        if not isinstance(other, RatioSummary):
            return NotImplemented
        return RatioSummary(
            n=self.n + other.n,
            numerator_sum=self.numerator_sum + other.numerator_sum,
            numerator_sum_squares=self.numerator_sum_squares + other.numerator_sum_squares,
            denominator_sum=self.denominator_sum + other.denominator_sum,
            denominator_sum_squares=self.denominator_sum_squares + other.denominator_sum_squares,
            cross_sum=self.cross_sum + other.cross_sum,
        )

    @classmethod
    def from_values(cls, *, numerator: ArrayLike, denominator: ArrayLike) -> RatioSummary:
        """Summarise per-visitor numerator and denominator arrays of equal length."""
        x = _float_array("numerator", numerator)
        y = _float_array("denominator", denominator)
        if x.size != y.size:
            raise InvalidInputError(
                f"denominator must have the numerator's length {x.size}, got {y.size}"
            )
        return cls(
            n=int(x.size),
            numerator_sum=float(x.sum()),
            numerator_sum_squares=float(x @ x),
            denominator_sum=float(y.sum()),
            denominator_sum_squares=float(y @ y),
            cross_sum=float(x @ y),
        )


@dataclass(frozen=True)
class CupedSummary:
    """A metric ``Y`` and its pre-period covariate ``X`` per visitor in one variant, for CUPED.

    Parameters
    ----------
    n : int
        Visitors, ``>= 0``.
    sum, sum_squares : float
        Sum of ``Y`` and of ``Y**2`` over visitors (as in :class:`MeanSummary`).
    covariate_sum, covariate_sum_squares : float
        Sum of ``X`` and of ``X**2`` over visitors (visitors new in the experiment count 0).
    cross_sum : float
        Sum of ``X * Y`` over visitors.
    """

    n: int
    sum: float
    sum_squares: float
    covariate_sum: float
    covariate_sum_squares: float
    cross_sum: float

    def __post_init__(self) -> None:
        _validate_pair(self, ("sum", "sum_squares"), ("covariate_sum", "covariate_sum_squares"))

    @property
    def visitors(self) -> int:
        """Visitors, ``n`` (the name :class:`Proportion` uses)."""
        return self.n

    @property
    def metric(self) -> MeanSummary:
        """The metric ``Y`` on its own."""
        return MeanSummary(n=self.n, sum=self.sum, sum_squares=self.sum_squares)

    @property
    def covariate(self) -> MeanSummary:
        """The covariate ``X`` on its own."""
        return MeanSummary(n=self.n, sum=self.covariate_sum, sum_squares=self.covariate_sum_squares)

    @property
    def covariance(self) -> float:
        """Sample covariance of ``Y`` and ``X`` per visitor (NaN below 2 visitors)."""
        return _formulas.sample_covariance(self.n, self.sum, self.covariate_sum, self.cross_sum)

    def __add__(self, other: CupedSummary) -> CupedSummary:
        if not isinstance(other, CupedSummary):
            return NotImplemented
        return CupedSummary(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_squares=self.sum_squares + other.sum_squares,
            covariate_sum=self.covariate_sum + other.covariate_sum,
            covariate_sum_squares=self.covariate_sum_squares + other.covariate_sum_squares,
            cross_sum=self.cross_sum + other.cross_sum,
        )

    @classmethod
    def from_values(cls, *, values: ArrayLike, covariate: ArrayLike) -> CupedSummary:
        """Summarise per-visitor metric values and pre-period covariate values."""
        y = _float_array("values", values)
        x = _float_array("covariate", covariate)
        if x.size != y.size:
            raise InvalidInputError(
                f"covariate must have the values' length {y.size}, got {x.size}"
            )
        return cls(
            n=int(y.size),
            sum=float(y.sum()),
            sum_squares=float(y @ y),
            covariate_sum=float(x.sum()),
            covariate_sum_squares=float(x @ x),
            cross_sum=float(x @ y),
        )


Summary: TypeAlias = Proportion | MeanSummary | RatioSummary | CupedSummary
"""Any per-variant summary accepted by the DataFrame helpers."""


@dataclass(frozen=True)
class Estimate:
    """One look at an effect: its estimate and the variance of that estimate.

    The input of :func:`stats.msprt_stream` and :func:`stats.group_sequential` for a stream
    that does not come from summaries: a warehouse query's daily (difference, variance), a
    CUPED-adjusted or relative lift, a design with known variance.

    Parameters
    ----------
    difference : float
        The estimate (e.g. an absolute lift), finite.
    variance : float
        Variance of the estimate, finite and ``> 0``.
    visitors : float, optional
        Visitors per variant behind the look, ``> 0``; needed only to tune to
        ``planned_visitors``.
    """

    difference: float
    variance: float
    visitors: float | None = None

    def __post_init__(self) -> None:
        difference = check_finite("difference", self.difference)
        variance = check_finite("variance", self.variance)
        if variance <= 0.0:
            raise InvalidInputError(f"variance must be > 0, got {variance}")
        object.__setattr__(self, "difference", difference)
        object.__setattr__(self, "variance", variance)
        if self.visitors is not None:
            visitors = check_finite("visitors", self.visitors)
            if visitors <= 0.0:
                raise InvalidInputError(f"visitors must be > 0, got {visitors}")
            object.__setattr__(self, "visitors", visitors)
