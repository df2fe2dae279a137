"""Power of the peeking-safe tests against the fixed-horizon test, by seeded simulation.

Scenario of the case studies: 3% baseline conversion, 20 equally spaced daily looks up to the
planned sample size (``sample_size`` for +26%: 8,450 visitors per variant), and the issue's
10,000 visitors per variant with +26% and +15%. The runs are vectorised with numpy on the same
estimates, variances and boundaries the package uses; the first runs of each scenario are also
put through the public functions, which must reach the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats as scipy_stats

from stats import (
    Estimate,
    Proportion,
    Spending,
    compare_proportions,
    group_sequential,
    group_sequential_boundaries,
    msprt,
    sample_size,
)
from stats.sequential import DEFAULT_TUNING_VISITORS

ALPHA = 0.05
LOOKS = 20
RUNS = 10_000
CHECKED_RUNS = 40
BASELINE = 0.03
SPENDINGS: tuple[Spending, ...] = ("obrien_fleming", "pocock")
MIXTURE_C = -2 * math.log(ALPHA) + math.log(1 - 2 * math.log(ALPHA))


@dataclass(frozen=True)
class Runs:
    """Cumulative conversions per run and look, and the visitors per variant at each look."""

    control: np.ndarray
    treatment: np.ndarray
    visitors: np.ndarray


def _simulate(lift: float, planned: int, seed: int) -> Runs:
    rng = np.random.default_rng(seed)
    daily = planned // LOOKS
    visitors = daily * np.arange(1, LOOKS + 1)
    control = np.cumsum(rng.binomial(daily, BASELINE, (RUNS, LOOKS)), axis=1)
    treatment = np.cumsum(rng.binomial(daily, BASELINE * (1 + lift), (RUNS, LOOKS)), axis=1)
    return Runs(control, treatment, visitors)


def _estimates(runs: Runs) -> tuple[np.ndarray, np.ndarray]:
    rate_c, rate_t = runs.control / runs.visitors, runs.treatment / runs.visitors
    variance = (rate_c * (1 - rate_c) + rate_t * (1 - rate_t)) / runs.visitors
    return rate_t - rate_c, variance


def _msprt_rejects(runs: Runs, tuning: float) -> np.ndarray:
    """Some look's mixture likelihood ratio reaches 1 / alpha (Howard tuning at ``tuning``)."""
    d, v = _estimates(runs)
    defined = v > 0
    v = np.where(defined, v, 1.0)
    tau2 = MIXTURE_C * v * runs.visitors / tuning
    log_ratio = 0.5 * np.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
    rejected: np.ndarray = np.any(defined & (log_ratio >= -math.log(ALPHA)), axis=1)
    return rejected


def _group_sequential_rejects(runs: Runs, spending: Spending) -> np.ndarray:
    d, v = _estimates(runs)
    defined = v > 0
    z = np.abs(d) / np.sqrt(np.where(defined, v, 1.0))
    design = group_sequential_boundaries(information_fractions=LOOKS, spending=spending)
    rejected: np.ndarray = np.any(defined & (z >= np.array(design.boundaries)), axis=1)
    return rejected


def _fixed_rejects(runs: Runs) -> np.ndarray:
    """The pooled two-proportion z-test at the planned size, once."""
    n = runs.visitors[-1]
    pooled = (runs.control[:, -1] + runs.treatment[:, -1]) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    d = (runs.treatment[:, -1] - runs.control[:, -1]) / n
    rejected: np.ndarray = np.abs(d) / se >= scipy_stats.norm.ppf(1 - ALPHA / 2)
    return rejected


def _looks(runs: Runs, run: int) -> list[tuple[Proportion, Proportion]]:
    return [
        (Proportion(int(c), int(n)), Proportion(int(t), int(n)))
        for c, t, n in zip(runs.control[run], runs.treatment[run], runs.visitors, strict=True)
    ]


def _check_public_functions_agree(
    runs: Runs, planned: int, decisions: dict[str, np.ndarray]
) -> None:
    for run in range(CHECKED_RUNS):
        looks = _looks(runs, run)
        planned_msprt = msprt(looks=looks, planned_visitors=planned)
        assert planned_msprt.significant == decisions["msprt, tuned to the plan"][run]
        default = msprt(looks=looks)
        assert default.significant == decisions["msprt, tuned to 5,000"][run]
        d, v = _estimates(runs)
        stream = [Estimate(float(d[run, k]), float(v[run, k]), float(n))
                  for k, n in enumerate(runs.visitors) if v[run, k] > 0]  # fmt: skip
        for spending in SPENDINGS:
            by_summaries = group_sequential(
                looks=looks, planned_visitors=planned, spending=spending
            )
            assert by_summaries.rejected == decisions[f"group-sequential, {spending}"][run]
            if len(stream) == LOOKS:
                by_stream = group_sequential(
                    looks=stream, planned_visitors=planned, spending=spending
                )
                assert by_stream.rejected_at == by_summaries.rejected_at
        fixed = compare_proportions(control=looks[-1][0], treatment=looks[-1][1])
        assert fixed.significant == decisions["fixed horizon"][run]


def _decisions(runs: Runs, planned: int) -> dict[str, np.ndarray]:
    return {
        "fixed horizon": _fixed_rejects(runs),
        "msprt, tuned to 5,000": _msprt_rejects(runs, DEFAULT_TUNING_VISITORS),
        "msprt, tuned to the plan": _msprt_rejects(runs, planned),
        "group-sequential, obrien_fleming": _group_sequential_rejects(runs, "obrien_fleming"),
        "group-sequential, pocock": _group_sequential_rejects(runs, "pocock"),
    }


def _upper_band(rate: float) -> float:
    """Upper end of the central 99.9% binomial band of RUNS runs at ``rate``."""
    return float(scipy_stats.binom.ppf(0.9995, RUNS, rate)) / RUNS


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::stats.UndefinedResultWarning")
@pytest.mark.parametrize(("lift", "planned"), [(0.26, None), (0.26, 10_000), (0.15, 10_000)])
def test_peeking_safe_power_against_fixed_horizon(lift: float, planned: int | None) -> None:
    n = planned or sample_size(baseline=BASELINE, mde=0.26)
    null_runs = _simulate(0.0, n, seed=11)
    effect_runs = _simulate(lift, n, seed=12)
    null, effect = _decisions(null_runs, n), _decisions(effect_runs, n)
    _check_public_functions_agree(null_runs, n, null)
    _check_public_functions_agree(effect_runs, n, effect)

    fixed_power = effect["fixed horizon"].mean()
    print(f"\n{BASELINE:.0%} baseline, +{lift:.0%}, {n:,} visitors per variant, {LOOKS} looks, "
          f"{RUNS:,} runs")  # fmt: skip
    for name in null:
        power, false_positive = effect[name].mean(), null[name].mean()
        print(f"  {name:34s} power {power:.3f}  ratio to fixed {power / fixed_power:.3f}  "
              f"A/A over {LOOKS} looks {false_positive:.4f}")  # fmt: skip
        assert false_positive <= _upper_band(ALPHA)
    # At the planned size, O'Brien-Fleming spending keeps over 0.9 of the fixed-horizon power.
    assert effect["group-sequential, obrien_fleming"].mean() >= 0.9 * fixed_power
    # The mSPRT pays for unlimited looks: well under alpha on A/A, and lower power.
    assert null["msprt, tuned to the plan"].mean() < ALPHA
    assert effect["msprt, tuned to the plan"].mean() < effect["group-sequential, pocock"].mean()


@pytest.mark.slow
def test_naive_peeking_is_what_the_designs_prevent() -> None:
    """Stopping at the first |z| >= 1.96 over the same 20 looks: far above alpha."""
    runs = _simulate(0.0, 8_450, seed=13)
    d, v = _estimates(runs)
    defined = v > 0
    z = np.abs(d) / np.sqrt(np.where(defined, v, 1.0))
    naive = np.any(defined & (z >= scipy_stats.norm.ppf(1 - ALPHA / 2)), axis=1).mean()
    print(f"\nnaive peeking over {LOOKS} looks: A/A {naive:.4f}")
    assert naive > 3 * ALPHA
