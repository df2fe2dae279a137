"""Sample size, minimum detectable effect and days remaining against statsmodels' power
functions, Lehr's rule of thumb, and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import power_proportions_2indep

from stats import (
    InvalidInputError,
    Proportion,
    UndefinedResultWarning,
    compare_proportions,
    days_remaining,
    minimum_detectable_effect,
    sample_size,
)


def _statsmodels_power(baseline: float, treated: float, n: float, alpha: float = 0.05) -> float:
    return float(
        power_proportions_2indep(treated - baseline, baseline, n, alpha=alpha, return_results=False)
    )


@pytest.mark.parametrize(
    ("baseline", "mde", "relative"),
    [
        (0.03, 0.26, True),
        (0.10, 0.05, True),
        (0.20, 0.05, False),
        (0.5, -0.1, True),
        (0.01, 0.5, True),
    ],
)
def test_conversion_sample_size_matches_statsmodels(
    baseline: float, mde: float, relative: bool
) -> None:
    n = sample_size(baseline=baseline, mde=mde, relative=relative)
    treated = baseline * (1 + mde) if relative else baseline + mde
    exact = optimize.brentq(lambda x: _statsmodels_power(baseline, treated, x) - 0.8, 2, 1e8)
    assert n == math.ceil(exact)
    assert (
        _statsmodels_power(baseline, treated, n)
        >= 0.8
        > _statsmodels_power(baseline, treated, n - 1)
    )


@pytest.mark.parametrize(
    ("effect_size", "alpha", "power"), [(0.25, 0.05, 0.8), (0.1, 0.01, 0.9), (0.05, 0.05, 0.5)]
)
def test_mean_sample_size_matches_normal_ind_power(
    effect_size: float, alpha: float, power: float
) -> None:
    n = sample_size(
        baseline=10.0,
        mde=effect_size * 3.0,
        relative=False,
        kind="mean",
        std=3.0,
        confidence_level=1 - alpha,
        power=power,
    )
    reference = NormalIndPower().solve_power(
        effect_size=effect_size, alpha=alpha, power=power, ratio=1.0
    )
    assert n == math.ceil(reference)


def test_lehr_rule_of_thumb() -> None:
    """Lehr (1992), Statistics in Medicine 11: n per group ~ 16 / (delta / sigma)**2 at
    alpha 0.05 two-sided and power 0.8 (the exact normal factor is 2 (1.96 + 0.84)**2 = 15.7)."""
    for standardised in (0.1, 0.2, 0.5):
        n = sample_size(baseline=1.0, mde=standardised, relative=False, kind="mean", std=1.0)
        assert n == pytest.approx(16 / standardised**2, rel=0.03)


def test_relative_and_absolute_agree_and_variants_split_alpha() -> None:
    relative = sample_size(baseline=0.04, mde=0.25)
    absolute = sample_size(baseline=0.04, mde=0.01, relative=False)
    assert relative == absolute
    three = sample_size(baseline=0.04, mde=0.25, variants=3)
    assert three == sample_size(baseline=0.04, mde=0.25, confidence_level=0.975)
    assert three > relative


def test_minimum_detectable_effect_inverts_sample_size() -> None:
    for n in (500, 8450, 100_000):
        mde = minimum_detectable_effect(baseline=0.03, n_per_variant=n)
        assert sample_size(baseline=0.03, mde=mde * (1 + 1e-9)) <= n
        assert sample_size(baseline=0.03, mde=mde * (1 - 1e-6)) > n - 1
        treated = 0.03 * (1 + mde)
        assert _statsmodels_power(0.03, treated, n) == pytest.approx(0.8, abs=1e-9)
    mean_mde = minimum_detectable_effect(
        baseline=20.0, n_per_variant=1000, relative=False, kind="mean", std=8.0
    )
    # Exact root of statsmodels' power function (its own solve_power stops at about 1e-6).
    achieved = NormalIndPower().power(effect_size=mean_mde / 8.0, nobs1=1000, alpha=0.05, ratio=1.0)
    assert achieved == pytest.approx(0.8, abs=1e-10)
    reference = NormalIndPower().solve_power(nobs1=1000, alpha=0.05, power=0.8, ratio=1.0)
    assert mean_mde == pytest.approx(reference * 8.0, rel=1e-5)
    assert minimum_detectable_effect(
        baseline=20.0, n_per_variant=1000, kind="mean", std=8.0
    ) == pytest.approx(mean_mde / 20.0, rel=1e-12)


def test_unreachable_mde_is_undefined() -> None:
    with pytest.warns(
        UndefinedResultWarning, match="no increase from 0.5 up to a conversion rate of 1"
    ):
        assert math.isnan(minimum_detectable_effect(baseline=0.5, n_per_variant=1))


def test_planned_sample_size_has_the_planned_power_in_simulation() -> None:
    """Seeded: 2,000 experiments at the planned n detect a true +26% on 3% about 80% of the
    time (binomial 99.9% band of 80% over 2,000 runs: about +/- 3 points)."""
    n = sample_size(baseline=0.03, mde=0.26)
    rng = np.random.default_rng(26)
    control = rng.binomial(n, 0.03, size=2000)
    treatment = rng.binomial(n, 0.03 * 1.26, size=2000)
    detected = sum(
        compare_proportions(control=Proportion(int(c), n), treatment=Proportion(int(t), n)).pvalue
        < 0.05
        for c, t in zip(control, treatment, strict=True)
    )
    assert 0.77 <= detected / 2000 <= 0.83


def test_days_remaining() -> None:
    assert (
        days_remaining(required_per_variant=1000, current_per_variant=[500, 400], days_elapsed=5)
        == 7.5
    )
    assert (
        days_remaining(required_per_variant=1000, current_per_variant=[1000, 1200], days_elapsed=9)
        == 0.0
    )
    with pytest.warns(UndefinedResultWarning, match="no traffic yet"):
        assert (
            days_remaining(required_per_variant=1000, current_per_variant=[0, 0], days_elapsed=0)
            is None
        )
    with pytest.warns(UndefinedResultWarning):
        assert (
            days_remaining(required_per_variant=1000, current_per_variant=[10, 0], days_elapsed=2)
            is None
        )


INVALID = [
    ({"baseline": 1.2, "mde": 0.1}, r"baseline must be a conversion rate in \(0, 1\), got 1.2"),
    ({"baseline": 0.5, "mde": 1.5}, r"mde must move the baseline 0.5 to a rate in \(0, 1\)"),
    ({"baseline": 0.5, "mde": 0.0}, r"mde must be non-zero, got 0.0"),
    ({"baseline": 0.5, "mde": 0.1, "power": 0.01}, r"power must be in \(alpha = 0.05, 1\)"),
    (
        {"baseline": 0.5, "mde": 0.1, "confidence_level": 1.0},
        r"confidence_level must be in \(0, 1\), got 1.0",
    ),
    ({"baseline": 0.5, "mde": 0.1, "variants": 1}, r"variants must be an integer >= 2, got 1"),
    ({"baseline": 0.5, "mde": 0.1, "std": 2.0}, r"std must be None for kind='conversion'"),
    ({"baseline": 5.0, "mde": 0.1, "kind": "mean"}, r"std must be given for kind='mean'"),
    ({"baseline": 5.0, "mde": 0.1, "kind": "mean", "std": -1.0}, r"std must be > 0, got -1.0"),
    ({"baseline": 0.0, "mde": 0.1, "kind": "mean", "std": 1.0}, r"baseline must be non-zero"),
    ({"baseline": 0.5, "mde": 0.1, "kind": "ratio"}, r"kind must be 'conversion' or 'mean'"),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID)
def test_invalid_sample_size_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        sample_size(**kwargs)  # type: ignore[arg-type]


def test_invalid_planning_input() -> None:
    with pytest.raises(InvalidInputError, match="n_per_variant must be an integer >= 1, got 0"):
        minimum_detectable_effect(baseline=0.5, n_per_variant=0)
    with pytest.raises(InvalidInputError, match=r"days_elapsed must be >= 0, got -1\.0"):
        days_remaining(required_per_variant=10, current_per_variant=[1], days_elapsed=-1)
    with pytest.raises(InvalidInputError, match=r"current_per_variant\[0\] must be an integer"):
        days_remaining(required_per_variant=10, current_per_variant=[1.5], days_elapsed=1)  # type: ignore[list-item]
