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
from scipy import integrate, special

__all__ = [
    "bernoulli_variance",
    "beta_expected_loss",
    "beta_probability_greater",
    "chi_square_goodness_of_fit",
    "default_mixing_variance",
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


def default_mixing_variance(
    variance: float, visitors_per_variant: float, alpha: float, tuning_visitors: int
) -> float:
    """Default mixing variance ``tau2 = rho * sigma2`` (normal mixture of Howard et al. 2021).

    ``sigma2 = V * n`` is the per-visitor variance of the difference (``V`` the variance of the
    estimate at ``n`` visitors per variant) and ``rho = (-2 log alpha + log(1 - 2 log alpha)) / m``
    makes the confidence sequence narrowest near ``m = tuning_visitors`` visitors per variant.
    """
    rho = (-2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))) / tuning_visitors
    return rho * variance * visitors_per_variant


# --- Bayesian -----------------------------------------------------------------------------------


def beta_probability_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """``P(X1 > X2)`` for independent ``X1 ~ Beta(a1, b1)``, ``X2 ~ Beta(a2, b2)``, integer
    parameters (a Beta(1, 1) prior updated with counts).

    With integer ``a1`` the closed form (Miller 2015, "Formulas for Bayesian A/B testing") is
    ``sum_{i=0}^{a1-1} B(a2+i, b1+b2) / ((b1+i) B(1+i, b1) B(a2, b2))``. The same sum over ``a2``,
    ``b1`` or ``b2`` follows from ``P(X1 > X2) = 1 - P(X2 > X1)`` and ``1 - X ~ Beta(b, a)``, so
    the shortest is used. Beyond ``_BETA_SUM_MAX_TERMS`` terms every parameter is large, both
    posteriors are narrow and smooth, and the integral ``int f(x) F(x) dx`` (density of the
    narrower one) is evaluated by 128-point Gauss-Legendre quadrature over its +/-12 standard
    deviations.
    """
    length, which = min((a1, "a1"), (a2, "a2"), (b1, "b1"), (b2, "b2"))
    if length > _BETA_SUM_MAX_TERMS:
        return _beta_greater_by_quadrature(a1, b1, a2, b2)
    if which == "a1":
        return _beta_sum(a1, b1, a2, b2)
    if which == "a2":
        return 1.0 - _beta_sum(a2, b2, a1, b1)
    if which == "b2":  # P(X1 > X2) = P(1 - X2 > 1 - X1)
        return _beta_sum(b2, a2, b1, a1)
    return 1.0 - _beta_sum(b1, a1, b2, a2)


_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(128)


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
