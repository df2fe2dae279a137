"""Planning: visitors needed for a minimum detectable effect, the effect reachable with a given
number of visitors, and the days still needed at the observed traffic.

The power calculation matches the tests the package runs: for conversions the two-proportion
z-test with the pooled variance under the null and the unpooled variance under the alternative;
for means the z approximation of Welch's test with a common standard deviation. Both tails of
the two-sided test count towards the power. With more than two variants the significance level
is split over the ``variants - 1`` comparisons with the control (Bonferroni, the worst case of
Holm's procedure), so the plan holds after the multiple-testing adjustment.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import optimize, special

from stats import _formulas
from stats._validate import check_count, check_finite, check_open_unit, check_sequence
from stats.errors import InvalidInputError, warn_undefined

__all__ = [
    "PowerKind",
    "SampleSizeMethod",
    "days_remaining",
    "minimum_detectable_effect",
    "sample_size",
]

PowerKind = Literal["conversion", "mean"]
SampleSizeMethod = Literal["default", "unpooled", "evan_miller", "cohens_h", "kohavi", "t"]

_METHODS: dict[str, tuple[str, ...]] = {
    "conversion": ("default", "unpooled", "evan_miller", "cohens_h", "kohavi"),
    "mean": ("default", "kohavi", "t"),
}


@dataclass(frozen=True)
class _Design:
    """Per-visitor standard deviations of the difference under H0 and H1, and the levels."""

    null_unit: float
    alternative_unit: float
    alpha: float
    power: float
    control: float | None = None  # conversion rates of the plan; None for means
    treated: float | None = None

    def power_at(self, difference: float, n: float) -> float:
        root = math.sqrt(n)
        return _formulas.normal_power(
            difference, self.null_unit / root, self.alternative_unit / root, self.alpha
        )


def _alpha(confidence_level: object, alpha: object, function: str) -> float:
    """The significance level from ``confidence_level`` or the deprecated ``alpha``."""
    if alpha is None:
        return 1.0 - check_open_unit("confidence_level", confidence_level)
    warnings.warn(
        f"{function}(alpha=...) is deprecated; use confidence_level=1 - alpha",
        DeprecationWarning,
        stacklevel=3,
    )
    if confidence_level != 0.95:
        raise InvalidInputError(
            f"give confidence_level or the deprecated alpha, not both; got confidence_level="
            f"{confidence_level!r} and alpha={alpha!r}"
        )
    return check_open_unit("alpha", alpha)


def _levels(alpha: float, power: object, variants: object) -> tuple[float, float]:
    level = alpha
    target = check_open_unit("power", power)
    if target <= level:
        raise InvalidInputError(f"power must be in (alpha = {level:g}, 1), got {target}")
    count = check_count("variants", variants, minimum=2)
    return level / (count - 1), target


def _check_kind(kind: object, std: object) -> float | None:
    if kind not in ("conversion", "mean"):
        raise InvalidInputError(f"kind must be 'conversion' or 'mean', got {kind!r}")
    if kind == "conversion":
        if std is not None:
            raise InvalidInputError(
                f"std must be None for kind='conversion' (it follows from the rate), got {std!r}"
            )
        return None
    if std is None:
        raise InvalidInputError("std must be given for kind='mean', got None")
    deviation = check_finite("std", std)
    if deviation <= 0.0:
        raise InvalidInputError(f"std must be > 0, got {deviation}")
    return deviation


def _check_baseline(baseline: object, *, conversion: bool, relative: bool) -> float:
    if baseline is None:
        if conversion or relative:
            raise InvalidInputError(
                "baseline must be given for a conversion metric or a relative mde, got None"
            )
        return 0.0  # an absolute mde on a mean does not depend on the baseline
    value = check_finite("baseline", baseline)
    if conversion and not 0.0 < value < 1.0:
        raise InvalidInputError(f"baseline must be a conversion rate in (0, 1), got {value}")
    if relative and value == 0.0:
        raise InvalidInputError("baseline must be non-zero for a relative mde, got 0.0")
    return value


def _conversion_units(baseline: float, treated: float) -> tuple[float, float]:
    pooled = (baseline + treated) / 2.0
    return (
        math.sqrt(2.0 * _formulas.bernoulli_variance(pooled)),
        math.sqrt(_formulas.bernoulli_variance(baseline) + _formulas.bernoulli_variance(treated)),
    )


def sample_size(
    *,
    baseline: float | None = None,
    mde: float,
    relative: bool = True,
    kind: PowerKind = "conversion",
    std: float | None = None,
    confidence_level: float = 0.95,
    power: float = 0.8,
    variants: int = 2,
    method: SampleSizeMethod = "default",
    alpha: float | None = None,
) -> int:
    r"""Visitors needed per variant to detect ``mde`` with the given power.

    The smallest :math:`n` with

    .. math::

        \Phi\left(\frac{|\delta| - z_{1-\alpha'/2}\, \sigma_0/\sqrt n}{\sigma_1/\sqrt n}\right)
        + \Phi\left(\frac{-|\delta| - z_{1-\alpha'/2}\, \sigma_0/\sqrt n}{\sigma_1/\sqrt n}\right)
        \ge 1 - \beta

    where :math:`\alpha' = \alpha / (\text{variants} - 1)`; for conversions :math:`p_1` is the
    baseline, :math:`p_2 = p_1 + \delta`, :math:`\sigma_0^2 = 2\bar p(1 - \bar p)` with
    :math:`\bar p = (p_1 + p_2)/2` and :math:`\sigma_1^2 = p_1(1-p_1) + p_2(1-p_2)`; for means
    :math:`\sigma_0^2 = \sigma_1^2 = 2\,\text{std}^2`. This is close to the textbook
    :math:`n = (z_{1-\alpha'/2}\sigma_0 + z_{1-\beta}\sigma_1)^2 / \delta^2`.

    Other conventions (``method``), each matching a calculator or library people check against
    (formulas and references in ``docs/statistics.md``):

    - ``"unpooled"``: the same search with :math:`\sigma_0^2 = \sigma_1^2 = p_1(1-p_1) +
      p_2(1-p_2)` (conversions).
    - ``"evan_miller"``: Evan Miller's calculator, :math:`n = \text{round}((z_{1-\alpha'/2}
      \sqrt{2p_1(1-p_1)} + z_{1-\beta}\sqrt{p_1(1-p_1) + p_2(1-p_2)})^2/\delta^2)`, with the
      baseline reflected to :math:`1 - p_1` above 0.5 as the calculator does (conversions).
    - ``"cohens_h"``: the arcsine effect size :math:`h = 2\arcsin\sqrt{p_2} -
      2\arcsin\sqrt{p_1}` with :math:`\sigma_0 = \sigma_1 = \sqrt 2` and :math:`\delta = h`
      (conversions; statsmodels' ``proportion_effectsize`` with ``NormalIndPower``).
    - ``"kohavi"``: the rule of thumb :math:`n = 16\sigma^2/\delta^2` with :math:`\sigma^2 =
      p_1(1-p_1)` or :math:`\text{std}^2`, for 95% confidence, 80% power, two variants.
    - ``"t"``: the exact power of the two-sample t-test with :math:`2n - 2` degrees of freedom
      and noncentrality :math:`\delta / (\text{std}\sqrt{2/n})` (means; statsmodels'
      ``TTestIndPower``).

    Parameters
    ----------
    baseline : float, optional
        Control conversion rate in (0, 1), or control mean for ``kind="mean"``; not needed
        for an absolute ``mde`` on a mean.
    mde : float
        Minimum detectable effect, non-zero: relative to the baseline (``0.1`` = +10%) when
        ``relative``, else absolute (rate points or metric units).
    relative : bool, default True
        Whether ``mde`` is relative.
    kind : {"conversion", "mean"}, default "conversion"
        Metric kind; counts use ``"mean"``.
    std : float, optional
        Standard deviation per visitor, required for ``kind="mean"`` and only then.
    confidence_level : float, default 0.95
        ``1 - alpha`` for the two-sided significance level ``alpha``, in (0, 1).
    power : float, default 0.8
        Target power, in (alpha, 1).
    variants : int, default 2
        Variants including the control.
    method : {"default", "unpooled", "evan_miller", "cohens_h", "kohavi", "t"}
        The convention, above; ``"default"`` is the pooled/unpooled z-test power.
    alpha : float, optional
        Deprecated: use ``confidence_level = 1 - alpha``.

    Returns
    -------
    int
        Visitors per variant.

    References
    ----------
    J. L. Fleiss, B. Levin, M. C. Paik, *Statistical Methods for Rates and Proportions*, 3rd
    ed., Wiley, 2003 (sample size for comparing two proportions). The power function is the
    one of statsmodels' ``power_proportions_2indep`` and ``NormalIndPower``.

    Examples
    --------
    >>> sample_size(baseline=0.03, mde=0.26)
    8450
    >>> sample_size(mde=0.5, relative=False, kind="mean", std=2.0)
    252
    >>> sample_size(baseline=0.2, mde=0.05, relative=False, method="evan_miller")
    1030
    """
    level = _alpha(confidence_level, alpha, "sample_size")
    design, difference = _design(baseline, mde, relative, kind, std, level, power, variants)
    chosen = _check_method(method, kind)
    if chosen != "default":
        return _named_sample_size(chosen, design, difference, level, power, variants)
    return _smallest_n(design, difference)


def _design(
    baseline: object,
    mde: object,
    relative: bool,
    kind: object,
    std: object,
    alpha: float,
    power: object,
    variants: object,
) -> tuple[_Design, float]:
    deviation = _check_kind(kind, std)
    level, target = _levels(alpha, power, variants)
    base = _check_baseline(baseline, conversion=deviation is None, relative=relative)
    effect = check_finite("mde", mde)
    if effect == 0.0:
        raise InvalidInputError("mde must be non-zero, got 0.0")
    difference = base * effect if relative else effect
    if deviation is not None:
        unit = math.sqrt(2.0) * deviation
        return _Design(unit, unit, level, target), abs(difference)
    treated = base + difference
    if not 0.0 < treated < 1.0:
        raise InvalidInputError(
            f"mde must move the baseline {base} to a rate in (0, 1), got {treated} from "
            f"mde={effect} ({'relative' if relative else 'absolute'})"
        )
    null_unit, alternative_unit = _conversion_units(base, treated)
    return _Design(null_unit, alternative_unit, level, target, base, treated), abs(difference)


def _check_method(method: object, kind: object) -> SampleSizeMethod:
    allowed = _METHODS.get(kind if isinstance(kind, str) else "", ())
    if method not in allowed:
        raise InvalidInputError(
            f"method must be one of {', '.join(repr(m) for m in allowed)} for kind={kind!r}, "
            f"got {method!r}"
        )
    return method  # type: ignore[return-value]


def _named_sample_size(
    method: SampleSizeMethod,
    design: _Design,
    difference: float,
    alpha: float,
    power: object,
    variants: object,
) -> int:
    """Sample size under one of the named conventions (validated inputs)."""
    if method == "kohavi":
        if not (math.isclose(alpha, 0.05) and design.power == 0.8 and variants == 2):
            raise InvalidInputError(
                "method='kohavi' is the rule of thumb for confidence_level=0.95, power=0.8 "
                f"and 2 variants, got confidence_level={1 - alpha:g}, power={power}, "
                f"variants={variants}"
            )
        variance = (
            design.null_unit**2 / 2.0
            if design.control is None
            else _formulas.bernoulli_variance(design.control)
        )
        # The rule is exact arithmetic: a rounding error of a few ulps must not add a visitor.
        return math.ceil(16.0 * variance / difference**2 * (1.0 - 1e-12))
    z_alpha = float(special.ndtri(1.0 - design.alpha / 2.0))
    z_beta = float(special.ndtri(design.power))
    if method == "t":
        return _t_sample_size(design, difference, z_alpha, z_beta)
    assert design.control is not None and design.treated is not None
    p1, p2 = design.control, design.treated
    if method == "evan_miller":
        base = 1.0 - p1 if p1 > 0.5 else p1
        delta = p2 - p1
        null = math.sqrt(2.0 * _formulas.bernoulli_variance(base))
        alternative = math.sqrt(
            _formulas.bernoulli_variance(base) + (base + delta) * (1.0 - base - delta)
        )
        return max(1, round(((z_alpha * null + z_beta * alternative) / delta) ** 2))
    if method == "unpooled":
        unit = math.sqrt(_formulas.bernoulli_variance(p1) + _formulas.bernoulli_variance(p2))
        return _smallest_n(_Design(unit, unit, design.alpha, design.power), difference)
    h = abs(2.0 * math.asin(math.sqrt(p2)) - 2.0 * math.asin(math.sqrt(p1)))
    root2 = math.sqrt(2.0)
    return _smallest_n(_Design(root2, root2, design.alpha, design.power), h)


def _smallest_n(design: _Design, difference: float) -> int:
    """Smallest n at which ``design`` reaches its power, from the closed-form start."""
    z_alpha = float(special.ndtri(1.0 - design.alpha / 2.0))
    z_beta = float(special.ndtri(design.power))
    estimate = (z_alpha * design.null_unit + z_beta * design.alternative_unit) / difference
    n = max(1, math.ceil(estimate * estimate))
    while n > 1 and design.power_at(difference, n - 1) >= design.power:
        n -= 1
    while design.power_at(difference, n) < design.power:
        n += 1
    return n


def _t_power(difference: float, deviation: float, n: int, alpha: float) -> float:
    """Two-sided power of the equal-variance two-sample t-test with n per variant."""
    df = 2.0 * n - 2.0
    noncentrality = difference / (deviation * math.sqrt(2.0 / n))
    critical = float(special.stdtrit(df, 1.0 - alpha / 2.0))
    return float(
        special.nctdtr(df, -noncentrality, -critical) + special.nctdtr(df, noncentrality, -critical)
    )


def _t_sample_size(design: _Design, difference: float, z_alpha: float, z_beta: float) -> int:
    deviation = design.null_unit / math.sqrt(2.0)
    n = max(2, math.ceil(2.0 * ((z_alpha + z_beta) * deviation / difference) ** 2))
    while n > 2 and _t_power(difference, deviation, n - 1, design.alpha) >= design.power:
        n -= 1
    while _t_power(difference, deviation, n, design.alpha) < design.power:
        n += 1
    return n


def minimum_detectable_effect(
    *,
    baseline: float | None = None,
    n_per_variant: int,
    relative: bool = True,
    kind: PowerKind = "conversion",
    std: float | None = None,
    confidence_level: float = 0.95,
    power: float = 0.8,
    variants: int = 2,
    alpha: float | None = None,
) -> float:
    r"""Smallest increase over the baseline detectable with ``n_per_variant`` visitors.

    Solves the power equation of :func:`sample_size` for :math:`\delta > 0` (Brent's method)
    at the given :math:`n`. For means the closed form is close to
    :math:`(z_{1-\alpha'/2} + z_{1-\beta})\,\text{std}\sqrt{2/n}`.

    Parameters
    ----------
    baseline, relative, kind, std, confidence_level, power, variants, alpha
        As in :func:`sample_size`.
    n_per_variant : int
        Visitors per variant, ``>= 1``.

    Returns
    -------
    float
        The MDE, relative to the baseline when ``relative`` else absolute. NaN, with an
        :class:`~stats.errors.UndefinedResultWarning`, when even a conversion rate of 100% would
        not be detected with that power.

    Examples
    --------
    >>> round(minimum_detectable_effect(baseline=0.03, n_per_variant=8450), 4)
    0.26
    """
    deviation = _check_kind(kind, std)
    level, target = _levels(
        _alpha(confidence_level, alpha, "minimum_detectable_effect"), power, variants
    )
    base = _check_baseline(baseline, conversion=deviation is None, relative=relative)
    n = check_count("n_per_variant", n_per_variant, minimum=1)
    if deviation is not None:
        unit = math.sqrt(2.0) * deviation
        design = _Design(unit, unit, level, target)
        upper = (float(special.ndtri(1.0 - level / 2.0)) + float(special.ndtri(target))) * unit
        difference = _solve(design, n, upper / math.sqrt(n))
    else:
        difference = _solve_conversion(base, n, level, target)
    if math.isnan(difference):
        warn_undefined(
            f"no increase from {base} up to a conversion rate of 1 reaches power {target} "
            f"with {n} visitors per variant",
            stacklevel=2,
        )
        return math.nan
    return difference / abs(base) if relative else difference


def _solve(design: _Design, n: int, upper: float) -> float:
    return float(
        optimize.brentq(
            lambda d: design.power_at(d, n) - design.power, 1e-15 * upper, upper, xtol=1e-15
        )
    )


def _solve_conversion(base: float, n: int, level: float, target: float) -> float:
    def gap(difference: float) -> float:
        null_unit, alternative_unit = _conversion_units(base, base + difference)
        return _Design(null_unit, alternative_unit, level, target).power_at(difference, n) - target

    upper = 1.0 - base
    if gap(upper * (1.0 - 1e-12)) < 0.0:
        return math.nan
    return float(optimize.brentq(gap, upper * 1e-12, upper * (1.0 - 1e-12), xtol=1e-15))


def days_remaining(
    *, required_per_variant: int, current_per_variant: Sequence[int], days_elapsed: float
) -> float | None:
    r"""Days still needed for every variant to reach the required visitors at current traffic.

    .. math::

        \max_i \frac{\text{required} - n_i}{n_i / \text{days elapsed}}

    over the variants still short of the requirement; 0 when all have reached it.

    Parameters
    ----------
    required_per_variant : int
        Visitors needed per variant (e.g. from :func:`sample_size`), ``>= 1``.
    current_per_variant : sequence of int
        Visitors so far in each variant, ``>= 0``.
    days_elapsed : float
        Days since the experiment started, ``>= 0``.

    Returns
    -------
    float or None
        None, with an :class:`~stats.errors.UndefinedResultWarning`, when a variant still
        short of the requirement has no traffic yet to extrapolate from.

    Examples
    --------
    >>> days = days_remaining(
    ...     required_per_variant=8450, current_per_variant=[2000, 1900], days_elapsed=4
    ... )
    >>> round(days, 2)
    13.79
    """
    required = check_count("required_per_variant", required_per_variant, minimum=1)
    current = [
        check_count(f"current_per_variant[{i}]", n, minimum=0)
        for i, n in enumerate(check_sequence("current_per_variant", current_per_variant))
    ]
    days = check_finite("days_elapsed", days_elapsed)
    if days < 0.0:
        raise InvalidInputError(f"days_elapsed must be >= 0, got {days}")
    short = [n for n in current if n < required]
    if not short:
        return 0.0
    if days == 0.0 or min(short) == 0:
        warn_undefined(
            "a variant short of the required visitors has no traffic yet, so the days "
            "remaining cannot be extrapolated",
            stacklevel=2,
        )
        return None
    return max((required - n) * days / n for n in short)
