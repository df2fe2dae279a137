"""Group-sequential boundaries against published tables and scipy's multivariate normal, and
the test on summaries and streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from stats import (
    Estimate,
    InvalidInputError,
    Proportion,
    UndefinedResultWarning,
    group_sequential,
    group_sequential_boundaries,
)

# Lan-DeMets spending with five equally spaced looks, two-sided alpha 0.05 (alpha / 2 a side),
# as tabulated by gsDesign (sfLDOF, sfLDPocock) and rpact (asOF, asP).
PUBLISHED = {
    "obrien_fleming": (4.8769, 3.3569, 2.6803, 2.2898, 2.0310),
    "pocock": (2.4380, 2.4268, 2.4101, 2.3966, 2.3859),
}


@pytest.mark.parametrize("spending", sorted(PUBLISHED))
def test_boundaries_match_published_tables(spending: str) -> None:
    design = group_sequential_boundaries(information_fractions=5, spending=spending)  # type: ignore[arg-type]
    # The tables are printed to four decimals from a coarser quadrature than ours.
    assert design.boundaries == pytest.approx(PUBLISHED[spending], abs=2e-4)
    assert design.alpha_spent[-1] == pytest.approx(0.05, abs=1e-12)
    assert design.information_fractions == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.0))


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_crossing_probabilities_match_the_multivariate_normal(spending: str) -> None:
    """P(no crossing up to look k) = 1 - alpha spent by k, with Corr(Z_j, Z_k) = sqrt(t_j/t_k),
    by scipy's multivariate normal CDF; unequal spacing."""
    fractions = (0.3, 0.55, 1.0)
    design = group_sequential_boundaries(
        information_fractions=fractions,
        spending=spending,  # type: ignore[arg-type]
        confidence_level=0.9,
    )
    t = np.array(fractions)
    correlation = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    for k in range(1, 4):
        bound = np.array(design.boundaries[:k])
        law = scipy_stats.multivariate_normal(
            np.zeros(k), correlation[:k, :k], abseps=1e-9, releps=1e-9, maxpts=10**7, seed=1
        )
        inside = law.cdf(bound, lower_limit=-bound)
        assert 1 - inside == pytest.approx(design.alpha_spent[k - 1], abs=2e-6)
    assert design.alpha_spent[-1] == pytest.approx(0.1, abs=1e-12)


def test_a_single_look_is_the_fixed_horizon_test() -> None:
    design = group_sequential_boundaries(information_fractions=[1.0])
    assert design.boundaries[0] == pytest.approx(scipy_stats.norm.ppf(0.975), rel=1e-12)


def test_test_on_a_stream_rejects_at_the_first_crossing() -> None:
    planned = 0.004**2
    looks = [Estimate(0.01, 0.008**2), Estimate(0.012, 0.0056**2), Estimate(0.01, 0.004**2)]
    result = group_sequential(looks=looks, planned_variance=planned)
    fractions = tuple(planned / look.variance for look in looks)
    design = group_sequential_boundaries(information_fractions=fractions)
    assert result.information_fractions == pytest.approx(fractions)
    assert result.boundaries == design.boundaries
    assert result.statistics == pytest.approx((1.25, 0.012 / 0.0056, 2.5))
    assert result.rejected and result.rejected_at == 3
    assert result.reason is None and "O'Brien-Fleming" in result.method


def test_looks_past_the_plan_spend_nothing() -> None:
    looks = [
        (Proportion(30, 1000), Proportion(35, 1000)),
        (Proportion(60, 2000), Proportion(80, 2000)),
        (Proportion(90, 3000), Proportion(150, 3000)),
    ]
    result = group_sequential(looks=looks, planned_visitors=2000, spending="pocock")
    assert result.information_fractions == (0.5, 1.0, 1.0)
    assert math.isinf(result.boundaries[2])
    assert result.alpha_spent[1] == result.alpha_spent[2] == pytest.approx(0.05)
    assert not result.rejected  # the third look's big effect came after the plan


def test_undefined_looks_are_reported() -> None:
    looks = [(Proportion(0, 100), Proportion(0, 100)), (Proportion(5, 200), Proportion(12, 200))]
    with pytest.warns(UndefinedResultWarning, match="neither variant varies yet at look 1"):
        result = group_sequential(looks=looks, planned_visitors=400)
    assert math.isnan(result.statistics[0]) and math.isinf(result.boundaries[0])
    assert result.alpha_spent[0] == 0.0
    # The first defined look is designed as a first look at half the information.
    assert (
        result.boundaries[1]
        == group_sequential_boundaries(information_fractions=[0.5]).boundaries[0]
    )


def test_invalid_designs() -> None:
    with pytest.raises(InvalidInputError, match=r"information_fractions\[1\] must be in \(0, 1\]"):
        group_sequential_boundaries(information_fractions=[0.5, 1.5])
    with pytest.raises(InvalidInputError, match="must be non-decreasing"):
        group_sequential_boundaries(information_fractions=[0.5, 0.4, 1.0])
    with pytest.raises(InvalidInputError, match="information_fractions must be >= 1 looks"):
        group_sequential_boundaries(information_fractions=0)
    with pytest.raises(InvalidInputError, match="spending must be 'obrien_fleming' or 'pocock'"):
        group_sequential_boundaries(information_fractions=3, spending="haybittle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="exactly one of planned_visitors and planned_var"):
        group_sequential(looks=[Estimate(0.1, 0.01)])
    with pytest.raises(InvalidInputError, match=r"planned_variance must be > 0, got -1\.0"):
        group_sequential(looks=[Estimate(0.1, 0.01)], planned_variance=-1.0)
