"""Holm, Benjamini-Hochberg and Bonferroni against statsmodels and the BH (1995) example."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from stats import InvalidInputError, adjust_pvalues
from tests.stats.conftest import PROPERTY_SETTINGS

STATSMODELS_NAME = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni"}

# Benjamini & Hochberg (1995), JRSS B 57, §4.2: fifteen p-values from a multicentre trial. At
# level 0.05 their procedure rejects the four smallest, Bonferroni only the three smallest.
BH_1995 = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


@pytest.mark.parametrize("method", ["holm", "bh", "bonferroni"])
def test_benjamini_hochberg_1995_example(method: str) -> None:
    adjusted = adjust_pvalues(BH_1995, method=method)  # type: ignore[arg-type]
    reference = multipletests(BH_1995, alpha=0.05, method=STATSMODELS_NAME[method])[1]
    assert adjusted == pytest.approx(tuple(reference), rel=1e-12)
    rejected = sum(p <= 0.05 for p in adjusted)
    assert rejected == {"bh": 4, "bonferroni": 3, "holm": 3}[method]


# statsmodels' multipletests runs gc.collect() on each call (~0.1 s), so fewer examples here.
@settings(PROPERTY_SETTINGS, max_examples=40)
@given(
    pvalues=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30),
    method=st.sampled_from(["holm", "bh", "bonferroni"]),
)
def test_matches_statsmodels(pvalues: list[float], method: str) -> None:
    adjusted = adjust_pvalues(pvalues, method=method)  # type: ignore[arg-type]
    reference = multipletests(pvalues, method=STATSMODELS_NAME[method])[1]
    assert adjusted == pytest.approx(tuple(reference), rel=1e-12, abs=1e-300)
    assert all(a >= p for a, p in zip(adjusted, pvalues, strict=True))
    assert all(0.0 <= a <= 1.0 for a in adjusted)


def test_nan_passes_through_and_is_excluded_from_the_family() -> None:
    with_nan = adjust_pvalues([0.01, math.nan, 0.04, 0.03])
    without = adjust_pvalues([0.01, 0.04, 0.03])
    assert math.isnan(with_nan[1])
    assert (with_nan[0], with_nan[2], with_nan[3]) == without
    assert adjust_pvalues([]) == ()
    assert all(math.isnan(p) for p in adjust_pvalues([math.nan, math.nan], method="bh"))


def test_default_is_holm() -> None:
    assert adjust_pvalues([0.01, 0.02, 0.03]) == adjust_pvalues([0.01, 0.02, 0.03], method="holm")


def test_invalid_input() -> None:
    with pytest.raises(
        InvalidInputError, match=r"pvalues\[1\] must be in \[0, 1\] or NaN, got 1.5"
    ):
        adjust_pvalues([0.1, 1.5])
    with pytest.raises(InvalidInputError, match="method must be one of 'holm', 'bh', 'bonferroni'"):
        adjust_pvalues([0.1], method="fdr")  # type: ignore[arg-type]
