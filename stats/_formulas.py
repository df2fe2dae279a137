"""The one home of every formula in the package.

Public functions validate their arguments, call these helpers and package the numbers into
result objects; tests, intervals, power and the sequential test share the same helpers, so no
formula is written twice. The helpers take plain floats, trust their inputs, and return NaN
(never raise, never emit a numpy warning) where a quantity does not exist; the callers decide
what to tell the user. Tail probabilities come from survival functions (``ndtr(-z)``,
``stdtr(df, -t)``, ``chdtrc``) so that small p-values do not underflow to 0 through ``1 - cdf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "alpha_spent",
    "bernoulli_variance",
    "beta_expected_loss",
    "beta_probability_greater",
    "chi_square_goodness_of_fit",
    "default_mixing_variance",
    "group_sequential_bounds",
    "mixing_variance_at_plan",
    "msprt_half_width",
    "msprt_log_likelihood_ratio",
    "normal_expected_loss",
    "normal_power",
    "normal_quantile",
    "pooled_proportion_standard_error",
    "probability_best",
    "ratio_variance",
    "sample_covariance",
    "sample_variance",
    "t_quantile",
    "two_sided_pvalue",
    "welch_df",
]

# Above this many terms the exact Beta sum is replaced by adaptive quadrature of the same
# integral; both are exact up to floating point (the tests check they agree at the switch).
_BETA_SUM_MAX_TERMS = 20_000


# --- distributions ------------------------------------------------------------------------------


def normal_quantile(confidence_level: float) -> float:
    """Two-sided normal critical value ``z_{1 - alpha/2}`` for a confidence level."""
    return float(special.ndtri(0.5 + confidence_level / 2.0))


def t_quantile(confidence_level: float, df: float) -> float:
    """Two-sided Student-t critical value; the normal one when ``df`` is infinite."""
    if math.isinf(df):
        return normal_quantile(confidence_level)
    return float(special.stdtrit(df, 0.5 + confidence_level / 2.0))


def two_sided_pvalue(statistic: float, df: float = math.inf) -> float:
    """``2 * P(T > |statistic|)`` for a normal (``df`` infinite) or Student-t statistic."""
    if math.isnan(statistic) or math.isnan(df):
        return math.nan
    if math.isinf(df):
        tail = float(special.ndtr(-abs(statistic)))
    else:
        tail = float(special.stdtr(df, -abs(statistic)))
    return min(1.0, 2.0 * tail)


# --- moments from sums --------------------------------------------------------------------------


def bernoulli_variance(rate: float) -> float:
    """Variance ``p (1 - p)`` of a 0/1 outcome with success probability ``p``."""
    return rate * (1.0 - rate)


def sample_variance(n: int, total: float, squares: float) -> float:
    """Sample variance ``(S2 - S1**2 / n) / (n - 1)`` from sums; NaN below two observations.

    Rounding can push the centred sum of squares of identical values a few ulps below zero,
    which is clamped to exactly zero.
    """
    if n < 2:
        return math.nan
    return max(squares - total * total / n, 0.0) / (n - 1)


def sample_covariance(n: int, sum_x: float, sum_y: float, cross: float) -> float:
    """Sample covariance ``(Sxy - Sx Sy / n) / (n - 1)`` from sums; NaN below two observations."""
    if n < 2:
        return math.nan
    return (cross - sum_x * sum_y / n) / (n - 1)


# --- frequentist comparisons --------------------------------------------------------------------


def pooled_proportion_standard_error(
    conversions_a: int, visitors_a: int, conversions_b: int, visitors_b: int
) -> float:
    """Standard error of ``p_b - p_a`` under H0: ``sqrt(p (1 - p) (1/n_a + 1/n_b))``, pooled p."""
    pooled = (conversions_a + conversions_b) / (visitors_a + visitors_b)
    return math.sqrt(bernoulli_variance(pooled) * (1.0 / visitors_a + 1.0 / visitors_b))


def welch_df(variance_of_mean_a: float, n_a: int, variance_of_mean_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the squared standard errors ``s**2 / n``.

    ``df = (v_a + v_b)**2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))``.
    """
    denominator = variance_of_mean_a**2 / (n_a - 1) + variance_of_mean_b**2 / (n_b - 1)
    if denominator <= 0.0:
        return math.nan
    return (variance_of_mean_a + variance_of_mean_b) ** 2 / denominator


def ratio_variance(
    numerator: float,
    denominator: float,
    numerator_variance: float,
    denominator_variance: float,
    covariance: float,
) -> float:
    """Delta-method variance of ``A / B`` (Deng, Knoblich, Lu 2018).

    ``Var(A/B) ~ Var(A)/B**2 - 2 A Cov(A, B)/B**3 + A**2 Var(B)/B**4``. Used for ratio metrics
    (A, B = numerator and denominator means of one variant), for relative lifts (A, B = treatment
    and control estimates) and for CUPED relative lifts. NaN when ``B`` is zero.
    """
    if denominator == 0.0:
        return math.nan
    ratio = numerator / denominator
    # Dividing by B twice, not by B**2, keeps a tiny B from underflowing to a division by zero.
    value = (
        (numerator_variance - 2.0 * ratio * covariance + ratio * ratio * denominator_variance)
        / denominator
        / denominator
    )
    return max(value, 0.0)


# --- sequential (mixture SPRT) ------------------------------------------------------------------


def msprt_log_likelihood_ratio(difference: float, variance: float, mixing_variance: float) -> float:
    """Log of the normal-mixture likelihood ratio for H0: effect = 0 (Johari et al. 2017).

    With the estimate ``D ~ N(theta, V)`` and mixing distribution ``theta ~ N(0, tau2)``,
    ``Lambda = sqrt(V / (V + tau2)) * exp(tau2 D**2 / (2 V (V + tau2)))``.
    """
    total = variance + mixing_variance
    return 0.5 * math.log(variance / total) + (
        mixing_variance * difference * difference / (2.0 * variance * total)
    )


def msprt_half_width(variance: float, mixing_variance: float, alpha: float) -> float:
    """Half-width of the mSPRT confidence sequence ``{theta0: Lambda(theta0) < 1/alpha}``.

    ``sqrt(2 V (V + tau2) / tau2 * (log(1/alpha) + log(sqrt((V + tau2) / V))))``.
    """
    total = variance + mixing_variance
    log_bound = -math.log(alpha) + 0.5 * math.log(total / variance)
    return math.sqrt(2.0 * variance * total / mixing_variance * log_bound)


def mixing_variance_at_plan(planned_variance: float, alpha: float) -> float:
    """Mixing variance ``tau2 = c V_m`` that makes the sequence narrowest where ``V = V_m``.

    ``c = -2 log alpha + log(1 - 2 log alpha)`` (normal mixture of Howard et al. 2021) and
    ``V_m`` is the variance of the estimate at the planned sample size.
    """
    return (-2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))) * planned_variance


def default_mixing_variance(
    variance: float, visitors_per_variant: float, alpha: float, tuning_visitors: float
) -> float:
    """Mixing variance tuned to ``m = tuning_visitors`` visitors per variant.

    ``sigma2 = V * n`` is the per-visitor variance of the difference (``V`` the variance of the
    estimate at ``n`` visitors per variant), so the variance at ``m`` visitors is
    ``sigma2 / m`` and ``tau2 = c sigma2 / m`` (:func:`mixing_variance_at_plan`).
    """
    return mixing_variance_at_plan(variance * visitors_per_variant / tuning_visitors, alpha)


# --- group-sequential boundaries ----------------------------------------------------------------

# Points of the Simpson grid carrying the sub-density of the score between looks; at 20 looks
# the boundaries move by under 1e-8 from 401 to 2401 points.
_GRID_POINTS = 401
# The score is never followed beyond this many standard deviations.
_GRID_DEVIATIONS = 9.0


def alpha_spent(fraction: float, alpha: float, spending: str) -> float:
    """Two-sided Lan-DeMets spending functions of the information fraction ``t`` in [0, 1].

    Each side spends ``alpha / 2`` (as gsDesign and rpact do for a symmetric two-sided design):
    O'Brien-Fleming shape ``2 * (2 - 2 Phi(z_{1 - alpha/4} / sqrt(t)))``, Pocock shape
    ``alpha log(1 + (e - 1) t)``. Both spend ``alpha`` at ``t = 1``.
    """
    if fraction <= 0.0:
        return 0.0
    if fraction >= 1.0:
        return alpha
    if spending == "obrien_fleming":
        critical = float(special.ndtri(1.0 - alpha / 4.0))
        return float(4.0 * special.ndtr(-critical / math.sqrt(fraction)))
    return alpha * math.log(1.0 + (math.e - 1.0) * fraction)


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.full(points, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return weights * step / 3.0


def group_sequential_bounds(
    fractions: Sequence[float], alpha: float, spending: str
) -> list[tuple[float, float]]:
    """Two-sided z boundaries and cumulative alpha spent at each look (Lan, DeMets 1983).

    The score ``S_k = Z_k sqrt(t_k)`` is a Brownian motion in the information fraction ``t``.
    The sub-density of paths that have not crossed is carried on a Simpson grid from look to
    look by convolution with the normal increment (Armitage, McPherson, Rowe 1969); the
    boundary ``c_k`` at look ``k`` solves ``P(|Z_k| >= c_k, no earlier crossing) = a(t_k) -
    a(t_{k-1})`` by Brent's method. A look that adds no information spends nothing and has an
    infinite boundary. ``fractions`` must be non-decreasing in (0, 1].
    """
    bounds: list[tuple[float, float]] = []
    grid = mass = np.empty(0)  # grid points and density x Simpson weight of surviving paths
    previous_fraction = spent = 0.0
    for fraction in fractions:
        target = alpha_spent(fraction, alpha, spending)
        increment, share = fraction - previous_fraction, target - spent
        if increment <= 0.0 or share <= 1e-15:
            bounds.append((math.inf, spent))
            continue
        if grid.size == 0:
            critical = float(special.ndtri(1.0 - share / 2.0))
        else:
            critical = _next_boundary(grid, mass, math.sqrt(fraction), math.sqrt(increment), share)
        grid, mass = _surviving(grid, mass, critical, fraction, increment)
        spent, previous_fraction = target, fraction
        bounds.append((critical, spent))
    return bounds


def _next_boundary(
    grid: np.ndarray, mass: np.ndarray, root_t: float, root_step: float, share: float
) -> float:
    """The boundary whose crossing probability from the surviving paths is ``share``."""

    def crossing(critical: float) -> float:
        edge = critical * root_t
        tails = special.ndtr((-edge - grid) / root_step) + special.ndtr((grid - edge) / root_step)
        return float(mass @ tails) - share

    return float(optimize.brentq(crossing, 1e-6, 40.0, xtol=1e-12))


def _surviving(
    grid: np.ndarray, mass: np.ndarray, critical: float, fraction: float, increment: float
) -> tuple[np.ndarray, np.ndarray]:
    """Grid and weighted sub-density at ``fraction`` of the paths inside ``+/-critical``."""
    edge = min(critical, _GRID_DEVIATIONS) * math.sqrt(fraction)
    new_grid = np.linspace(-edge, edge, _GRID_POINTS)
    weights = _simpson_weights(_GRID_POINTS, 2.0 * edge / (_GRID_POINTS - 1))
    if grid.size == 0:
        density = np.exp(-0.5 * new_grid**2 / fraction) / math.sqrt(2.0 * math.pi * fraction)
    else:
        root_step = math.sqrt(increment)
        kernel = np.exp(-0.5 * ((new_grid[:, None] - grid[None, :]) / root_step) ** 2)
        density = kernel @ mass / (root_step * math.sqrt(2.0 * math.pi))
    return new_grid, weights * density


# --- Bayesian -----------------------------------------------------------------------------------


def beta_probability_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """``P(X1 > X2)`` for independent ``X1 ~ Beta(a1, b1)``, ``X2 ~ Beta(a2, b2)``.

    With integer ``a1`` the closed form (Miller 2015, "Formulas for Bayesian A/B testing") is
    ``sum_{i=0}^{a1-1} B(a2+i, b1+b2) / ((b1+i) B(1+i, b1) B(a2, b2))``. The same sum over ``a2``,
    ``b1`` or ``b2`` follows from ``P(X1 > X2) = 1 - P(X2 > X1)`` and ``1 - X ~ Beta(b, a)``, so
    the shortest sum over an integer parameter is used. When every parameter exceeds
    ``_BETA_SUM_MAX_TERMS`` both posteriors are narrow and smooth, and the integral ``int f(x)
    F(x) dx`` (density of the narrower one) is evaluated by 128-point Gauss-Legendre quadrature
    over its +/-12 standard deviations. Without a short integer parameter (a Jeffreys prior,
    say) the integral ``int_0^1 F_2(Q_1(u)) du`` is evaluated by adaptive quadrature.
    """
    integer = [(v, n) for v, n in ((a1, "a1"), (a2, "a2"), (b1, "b1"), (b2, "b2")) if v % 1 == 0]
    if min(a1, a2, b1, b2) > _BETA_SUM_MAX_TERMS:
        return _beta_greater_by_quadrature(a1, b1, a2, b2)
    if not integer or min(integer)[0] > _BETA_SUM_MAX_TERMS:
        return _beta_greater_by_quantiles(a1, b1, a2, b2)
    _, which = min(integer)
    if which == "a1":
        return _beta_sum(a1, b1, a2, b2)
    if which == "a2":
        return 1.0 - _beta_sum(a2, b2, a1, b1)
    if which == "b2":  # P(X1 > X2) = P(1 - X2 > 1 - X1)
        return _beta_sum(b2, a2, b1, a1)
    return 1.0 - _beta_sum(b1, a1, b2, a2)


_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(128)


def _beta_greater_by_quantiles(a1: float, b1: float, a2: float, b2: float) -> float:
    def quantile(u: float) -> float:
        return float(special.betaincinv(a1, b1, u))

    def cdf(x: float) -> float:
        return float(special.betainc(a2, b2, x))

    return _probability_best_one(0, [quantile, quantile], [cdf, cdf])


def _beta_greater_by_quadrature(a1: float, b1: float, a2: float, b2: float) -> float:
    def deviation(a: float, b: float) -> float:
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))

    if deviation(a1, b1) > deviation(a2, b2):
        return 1.0 - _beta_greater_by_quadrature(a2, b2, a1, b1)
    mean, spread = a1 / (a1 + b1), 12.0 * deviation(a1, b1)
    low, high = max(mean - spread, 0.0), min(mean + spread, 1.0)
    nodes, weights = _GAUSS_LEGENDRE
    x = low + (high - low) * (nodes + 1.0) / 2.0
    # Self-normalised: the density's constant B(a1, b1) cancels, and with it the rounding of
    # betaln at parameters in the millions.
    log_density = (a1 - 1.0) * np.log(x) + (b1 - 1.0) * np.log1p(-x)
    density = np.exp(log_density - log_density.max())
    integral = float(weights @ (density * special.betainc(a2, b2, x))) / float(weights @ density)
    return min(1.0, max(0.0, integral))


def _beta_sum(a1: float, b1: float, a2: float, b2: float) -> float:
    i = np.arange(int(a1), dtype=np.float64)
    log_terms = (
        special.betaln(a2 + i, b1 + b2)
        - np.log(b1 + i)
        - special.betaln(1.0 + i, b1)
        - special.betaln(a2, b2)
    )
    largest = float(log_terms.max())
    total = math.exp(largest) * float(np.exp(log_terms - largest).sum())
    return min(1.0, max(0.0, total))


def beta_expected_loss(a_chosen: float, b_chosen: float, a_other: float, b_other: float) -> float:
    """``E[max(X_other - X_chosen, 0)]`` for independent Beta posteriors.

    Splitting on the event ``X_other > X_chosen`` and size-biasing each Beta (``x f(x; a, b) =
    a/(a+b) f(x; a+1, b)``) gives ``a_o/(a_o+b_o) P(Beta(a_o+1, b_o) > X_chosen) -
    a_c/(a_c+b_c) P(X_other > Beta(a_c+1, b_c))``.
    """
    other_term = (a_other / (a_other + b_other)) * beta_probability_greater(
        a_other + 1.0, b_other, a_chosen, b_chosen
    )
    chosen_term = (a_chosen / (a_chosen + b_chosen)) * beta_probability_greater(
        a_other, b_other, a_chosen + 1.0, b_chosen
    )
    return max(other_term - chosen_term, 0.0)


def normal_expected_loss(mean_difference: float, standard_deviation: float) -> float:
    """``E[max(-D, 0)]`` for ``D ~ N(d, s**2)``: ``s phi(d/s) - d Phi(-d/s)``."""
    z = mean_difference / standard_deviation
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return max(
        standard_deviation * density - mean_difference * float(special.ndtr(-z)),
        0.0,
    )


def probability_best(
    quantile_functions: Sequence[Callable[[float], float]],
    cdfs: Sequence[Callable[[float], float]],
) -> tuple[float, ...]:
    """``P(X_i = max_j X_j)`` for each of several independent continuous variables.

    ``P(X_i best) = int prod_{j != i} F_j(x) dF_i(x) = int_0^1 prod_{j != i} F_j(Q_i(u)) du``
    with ``Q_i`` the quantile function of ``X_i``; the substitution ``x = Q_i(u)`` gives a bounded
    integrand on [0, 1] however narrow the distributions are.
    """
    return tuple(
        _probability_best_one(i, quantile_functions, cdfs) for i in range(len(quantile_functions))
    )


def _probability_best_one(
    index: int,
    quantile_functions: Sequence[Callable[[float], float]],
    cdfs: Sequence[Callable[[float], float]],
) -> float:
    quantile = quantile_functions[index]
    others = [cdf for j, cdf in enumerate(cdfs) if j != index]

    def integrand(u: float) -> float:
        x = quantile(u)
        return math.prod(float(cdf(x)) for cdf in others)

    # full_output returns quadpack's accuracy message instead of warning; at these tolerances the
    # result is accurate to well below 1e-8 even when the message is set (checked in the tests).
    value = integrate.quad(
        integrand, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=500, full_output=1
    )[0]
    return min(1.0, max(0.0, float(value)))


# --- power --------------------------------------------------------------------------------------


def normal_power(
    difference: float, null_standard_error: float, alternative_standard_error: float, alpha: float
) -> float:
    """Power of a two-sided z-test whose statistic has different variances under H0 and H1.

    ``Phi((|d| - z_{1-alpha/2} se0) / se1) + Phi((-|d| - z_{1-alpha/2} se0) / se1)``.
    """
    critical = float(special.ndtri(1.0 - alpha / 2.0)) * null_standard_error
    d = abs(difference)
    return float(
        special.ndtr((d - critical) / alternative_standard_error)
        + special.ndtr((-d - critical) / alternative_standard_error)
    )


# --- goodness of fit ----------------------------------------------------------------------------


def chi_square_goodness_of_fit(
    observed: Sequence[int], expected: Sequence[float]
) -> tuple[float, float]:
    """Pearson's ``X2 = sum (O - E)**2 / E`` and its upper-tail p-value on ``k - 1`` df."""
    statistic = math.fsum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return statistic, float(special.chdtrc(len(observed) - 1, statistic))
