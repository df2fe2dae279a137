"""Sample-ratio mismatch against scipy.stats.chisquare and Mendel's dihybrid cross."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from stats import InvalidInputError, UndefinedResultWarning, srm_test


@pytest.mark.parametrize(
    ("visitors", "weights"),
    [
        ([5012, 4988], [0.5, 0.5]),
        ([5000, 4600], [1, 1]),
        ([1000, 2100, 2900], [0.2, 0.4, 0.4]),
        ([9000, 1050], [0.9, 0.1]),
    ],
)
def test_matches_scipy_chisquare(visitors: list[int], weights: list[float]) -> None:
    result = srm_test(visitors=visitors, weights=weights)
    total = sum(visitors)
    expected = [total * w / sum(weights) for w in weights]
    reference = scipy_stats.chisquare(visitors, expected)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.expected == pytest.approx(tuple(expected), rel=1e-12)
    assert result.observed == tuple(visitors)
    assert result.mismatch is bool(reference.pvalue < 0.001)
    assert result.reason is None


def test_mendel_dihybrid_cross() -> None:
    """Mendel's peas (315 round yellow, 108 round green, 101 wrinkled yellow, 32 wrinkled green)
    against the 9:3:3:1 ratio: X2 = 0.47 on 3 df, p = 0.925 — the classic textbook fit."""
    result = srm_test(visitors=[315, 108, 101, 32], weights=[9, 3, 3, 1])
    assert round(result.statistic, 2) == 0.47
    assert round(result.pvalue, 3) == 0.925
    assert result.mismatch is False


def test_flags_mismatch_loudly_and_respects_threshold() -> None:
    result = srm_test(visitors=[5000, 4600], weights=[0.5, 0.5])
    assert result.pvalue < 0.001 and result.mismatch is True
    lenient = srm_test(visitors=[5000, 4850], weights=[0.5, 0.5], threshold=0.2)
    assert 0.001 < lenient.pvalue < 0.2 and lenient.mismatch is True
    assert lenient.threshold == 0.2


def test_tail_pvalue_does_not_underflow() -> None:
    result = srm_test(visitors=[55_000, 45_000], weights=[1, 1])
    assert 0 < result.pvalue < 1e-200
    assert math.log(result.pvalue) == pytest.approx(
        scipy_stats.chi2.logsf(result.statistic, 1), rel=1e-10
    )


def test_no_visitors_is_undefined() -> None:
    with pytest.warns(UndefinedResultWarning, match="no visitors yet"):
        result = srm_test(visitors=[0, 0], weights=[0.5, 0.5])
    assert math.isnan(result.pvalue) and result.mismatch is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"visitors": [10], "weights": [1.0]}, r"visitors must have at least 2 item\(s\), got 1"),
        ({"visitors": [10, -1], "weights": [1, 1]}, r"visitors\[1\] must be an integer >= 0"),
        ({"visitors": [10, 5], "weights": [1, 0]}, r"weights\[1\] must be > 0, got 0.0"),
        ({"visitors": [10, 5], "weights": [1, 1, 1]}, r"weights must have one entry per variant"),
        (
            {"visitors": [10, 5], "weights": [1, 1], "threshold": 0},
            r"threshold must be in \(0, 1\)",
        ),
        ({"visitors": "10", "weights": [1, 1]}, r"visitors must be a sequence"),
    ],
)
def test_invalid_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        srm_test(**kwargs)  # type: ignore[arg-type]
