"""The mSPRT on a generic stream of (estimate, variance) looks, any null value, and on CUPED,
ratio and relative-lift inputs: against the numerically integrated mixture, by counting work,
and by an A/A simulation of CUPED-adjusted looks."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stats import (
    CupedSummary,
    Estimate,
    InvalidInputError,
    Proportion,
    RatioSummary,
    _formulas,
    compare_proportions,
    compare_ratios,
    cuped,
    msprt,
    msprt_stream,
)
from tests.stats.conftest import PROPERTY_SETTINGS
from tests.stats.test_sequential import _looks, _mixture_ratio

MIXTURE_C = -2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))


def _stream(count: int, seed: int = 3) -> list[Estimate]:
    rng = np.random.default_rng(seed)
    n = np.arange(1, count + 1) * 200.0
    variance = 2.0 / n
    difference = 0.1 + rng.normal(0.0, 1.0, count).cumsum() / np.sqrt(np.arange(1, count + 1))
    return [
        Estimate(float(d * math.sqrt(v)), float(v), float(k))
        for d, v, k in zip(difference, variance, n, strict=True)
    ]


def test_stream_pvalues_match_the_integrated_mixture_for_any_null() -> None:
    estimates = _stream(6)
    tau2 = 0.02
    for null in (0.0, 0.05, -0.1):
        result = msprt_stream(estimates=estimates, mixing_variance=tau2, null=null)
        running = 1.0
        for look, pvalue, ratio in zip(
            estimates, result.pvalues, result.likelihood_ratios, strict=True
        ):
            exact = _mixture_ratio(look.difference, look.variance, tau2, theta0=null)
            assert ratio == pytest.approx(exact, rel=1e-8)
            running = min(running, 1 / exact)
            assert pvalue == pytest.approx(min(running, 1.0), rel=1e-8)
        assert result.null == null and result.reason is None


def test_per_look_intervals_have_ratio_one_over_alpha_at_their_edges() -> None:
    estimates = _stream(4)
    result = msprt_stream(estimates=estimates, mixing_variance=0.01, confidence_level=0.9)
    for look, (low, high) in zip(estimates, result.intervals, strict=True):
        for edge in (low, high):
            assert _mixture_ratio(look.difference, look.variance, 0.01, theta0=edge) == (
                pytest.approx(10.0, rel=1e-7)
            )
    low, high = -math.inf, math.inf
    for interval, running in zip(result.intervals, result.confidence_sequence, strict=True):
        low, high = max(low, interval[0]), min(high, interval[1])
        assert running == (low, high)
    assert result.confidence_interval() == result.confidence_sequence[-1]


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(st.floats(-1, 1), st.floats(1e-4, 1.0)), min_size=1, max_size=30),
    st.floats(-0.5, 0.5),
)
def test_pvalues_never_increase_and_reject_exactly_outside_the_interval(
    looks: list[tuple[float, float]], null: float
) -> None:
    estimates = [Estimate(d, v) for d, v in looks]
    result = msprt_stream(estimates=estimates, mixing_variance=0.05, null=null)
    assert all(0.0 <= p <= 1.0 for p in result.pvalues)
    assert all(b <= a for a, b in itertools.pairwise(result.pvalues))
    for ratio, (low, high) in zip(result.likelihood_ratios, result.intervals, strict=True):
        if not math.isclose(ratio, 20.0, rel_tol=1e-9):
            assert (ratio > 20.0) == (not low < null < high)


def test_one_pass_over_the_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-look values for n and 2n looks cost n and 2n likelihood ratios: linear, not one
    call per prefix (which would be n (n + 1) / 2)."""
    calls = 0
    original = _formulas.msprt_log_likelihood_ratio

    def counted(difference: float, variance: float, mixing_variance: float) -> float:
        nonlocal calls
        calls += 1
        return original(difference, variance, mixing_variance)

    monkeypatch.setattr(_formulas, "msprt_log_likelihood_ratio", counted)
    work = {}
    for count in (50, 100):
        calls = 0
        result = msprt_stream(estimates=_stream(count), planned_variance=0.001)
        assert len(result.pvalues) == count
        work[count] = calls
    assert work == {50: 50, 100: 100}
    calls = 0
    msprt(looks=_looks())  # summaries: one ratio per look for each of the two lifts
    assert calls == 2 * len(_looks())


def test_planned_tuning() -> None:
    estimates = _stream(3)
    at_plan = msprt_stream(estimates=estimates, planned_variance=0.002)
    assert at_plan.mixing_variances == pytest.approx((MIXTURE_C * 0.002,) * 3, rel=1e-12)
    by_visitors = msprt_stream(estimates=estimates, planned_visitors=800)
    for look, tau2 in zip(estimates, by_visitors.mixing_variances, strict=True):
        assert look.visitors is not None
        assert tau2 == pytest.approx(MIXTURE_C * look.variance * look.visitors / 800, rel=1e-12)
    # The summary form tunes the same way, and the old keyword still works for one release.
    planned = msprt(looks=_looks(), planned_visitors=8450)
    with pytest.warns(DeprecationWarning, match="tuning_visitors"):
        old = msprt(looks=_looks(), tuning_visitors=8450)
    assert old == planned
    assert planned.mixing_variances != msprt(looks=_looks()).mixing_variances


def test_summaries_and_stream_agree() -> None:
    looks = _looks()
    by_summaries = msprt(looks=looks, planned_visitors=3000, null=0.005)
    stream = []
    for control, treatment in looks:
        fixed = compare_proportions(control=control, treatment=treatment)
        stream.append(Estimate(fixed.absolute_lift, fixed.standard_error**2, control.visitors))
    by_stream = msprt_stream(estimates=stream, planned_visitors=3000, null=0.005)
    assert by_summaries.pvalues == by_stream.pvalues
    assert by_summaries.absolute_intervals == by_stream.intervals
    assert by_summaries.absolute_cs == by_stream.confidence_sequence
    assert by_summaries.likelihood_ratios == by_stream.likelihood_ratios


def _cuped_looks(
    rng: np.random.Generator, days: int, daily: int, lift: float
) -> list[tuple[CupedSummary, CupedSummary]]:
    looks = []
    values: dict[str, list[np.ndarray]] = {"x_c": [], "y_c": [], "x_t": [], "y_t": []}
    for _ in range(days):
        for side, shift in (("c", 0.0), ("t", lift)):
            x = rng.gamma(2.0, 5.0, daily)
            y = 0.8 * x + rng.normal(0.0, 4.0, daily) + shift
            values[f"x_{side}"].append(x)
            values[f"y_{side}"].append(y)
        looks.append(
            tuple(
                CupedSummary.from_values(
                    values=np.concatenate(values[f"y_{side}"]),
                    covariate=np.concatenate(values[f"x_{side}"]),
                )
                for side in ("c", "t")
            )
        )
    return looks  # type: ignore[return-value]


def test_cuped_ratio_and_relative_inputs_use_their_fixed_horizon_estimates() -> None:
    rng = np.random.default_rng(5)
    looks = _cuped_looks(rng, days=4, daily=150, lift=1.0)
    result = msprt(looks=looks, planned_visitors=600)
    relative = msprt(looks=looks, planned_visitors=600, lift="relative")
    for (control, treatment), interval, rel_interval in zip(
        looks, result.absolute_intervals, relative.relative_intervals, strict=True
    ):
        fixed = cuped(control=control, treatment=treatment)
        assert (interval[0] + interval[1]) / 2 == pytest.approx(fixed.absolute_lift, rel=1e-12)
        assert (rel_interval[0] + rel_interval[1]) / 2 == pytest.approx(
            fixed.relative_lift, rel=1e-12
        )
    stream = [
        Estimate(r.relative_lift, r.relative_standard_error**2, c.n)
        for c, t in looks
        for r in [cuped(control=c, treatment=t)]
    ]
    assert relative.pvalues == msprt_stream(estimates=stream, planned_visitors=600).pvalues
    assert relative.lift == "relative" and result.lift == "absolute"

    ratio_looks = []
    for day in range(1, 4):
        ratio_parts = [
            RatioSummary.from_values(
                numerator=rng.gamma(2.0, 20.0 + 5 * side, 100 * day),
                denominator=rng.poisson(2.0, 100 * day) + 1.0,
            )
            for side in (0, 1)
        ]
        ratio_looks.append((ratio_parts[0], ratio_parts[1]))
    ratio = msprt(looks=ratio_looks, mixing_variance=4.0)
    for (ratio_c, ratio_t), (low, high) in zip(ratio_looks, ratio.absolute_intervals, strict=True):
        by_ratio = compare_ratios(control=ratio_c, treatment=ratio_t)
        assert (low + high) / 2 == pytest.approx(by_ratio.absolute_lift, rel=1e-12)
        half = _formulas.msprt_half_width(by_ratio.standard_error**2, 4.0, 0.05)
        assert (high - low) / 2 == pytest.approx(half, rel=1e-12)


@pytest.mark.slow
def test_cuped_adjusted_looks_aa_false_positives_at_or_under_alpha() -> None:
    """400 A/A experiments, 20 daily looks of 100 visitors per variant, CUPED-adjusted; the
    false-positive rate over all looks stays at or under alpha (mSPRT tuned to the plan)."""
    rng = np.random.default_rng(17)
    runs, days, daily = 400, 20, 100
    x = rng.gamma(2.0, 5.0, (runs, 2, days * daily))
    y = 0.8 * x + rng.normal(0.0, 4.0, x.shape)
    ends = daily * np.arange(1, days + 1)

    def cumulative(values: np.ndarray) -> np.ndarray:
        return np.cumsum(values, axis=2)[:, :, ends - 1]

    sums = {
        "sum": cumulative(y),
        "sum_squares": cumulative(y * y),
        "covariate_sum": cumulative(x),
        "covariate_sum_squares": cumulative(x * x),
        "cross_sum": cumulative(x * y),
    }
    rejected = 0
    reductions = []
    for run in range(runs):
        looks = []
        for day in range(days):
            pair = [
                CupedSummary(
                    n=int(ends[day]), **{k: float(v[run, side, day]) for k, v in sums.items()}
                )
                for side in (0, 1)
            ]
            looks.append((pair[0], pair[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = msprt(looks=looks, planned_visitors=days * daily)
        rejected += result.significant
        reductions.append(cuped(control=looks[-1][0], treatment=looks[-1][1]).variance_reduction)
    rate = rejected / runs
    print(f"\nCUPED-adjusted mSPRT, A/A over {days} looks: {rate:.4f} ({rejected}/{runs}); "
          f"mean variance reduction {np.mean(reductions):.2f}")  # fmt: skip
    assert rate <= 0.05
    assert np.mean(reductions) > 0.5


def test_invalid_streams() -> None:
    with pytest.raises(InvalidInputError, match="exactly one of mixing_variance"):
        msprt_stream(estimates=_stream(2))
    with pytest.raises(InvalidInputError, match="exactly one of mixing_variance"):
        msprt_stream(estimates=_stream(2), mixing_variance=1.0, planned_variance=1.0)
    with pytest.raises(InvalidInputError, match=r"estimates\[0\] must be an Estimate"):
        msprt_stream(estimates=[(0.1, 0.2)], mixing_variance=1.0)  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=r"estimates\[0\]\.visitors must be given"):
        msprt_stream(estimates=[Estimate(0.1, 0.2)], planned_visitors=100)
    with pytest.raises(InvalidInputError, match=r"variance must be > 0, got 0\.0"):
        Estimate(0.1, 0.0)
    with pytest.raises(InvalidInputError, match=r"difference must be a finite real number"):
        Estimate(math.nan, 1.0)
    with pytest.raises(InvalidInputError, match="null must be a finite real number"):
        msprt_stream(estimates=_stream(2), mixing_variance=1.0, null=math.inf)
    with pytest.raises(InvalidInputError, match="lift must be 'absolute' or 'relative'"):
        msprt(looks=_looks(), lift="ratio")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="summaries of one kind"):
        msprt(looks=[(Proportion(1, 10), Estimate(0.1, 0.1))])  # type: ignore[list-item]
