"""Cost of a statistical read-out at 1,000 and at 10,000,000 visitors, as a ratio.

A read-out works on per-variant sufficient statistics, so its cost should not depend on the
traffic behind them. This builds the aggregates of a Buyakilt-like experiment (conversion,
revenue, orders, cart visits, average order value; 10 daily cumulative snapshots) for a small
and a large experiment, then times the full read-out on each in interleaved rounds (so machine
noise hits both alike): SRM check, every fixed-horizon comparison, chance to beat control,
mSPRT over the daily looks, Holm adjustment, sample size and days remaining. It prints the
median time of each and the ratio large / small, plus a per-function breakdown.

    python bench/bench_stats.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stats

DAYS = 10


@dataclass
class Experiment:
    """Cumulative daily (control, treatment) summaries of each metric."""

    conversion: list[tuple[stats.Proportion, stats.Proportion]] = field(default_factory=list)
    revenue: list[tuple[stats.MeanSummary, stats.MeanSummary]] = field(default_factory=list)
    orders: list[tuple[stats.MeanSummary, stats.MeanSummary]] = field(default_factory=list)
    cart_visits: list[tuple[stats.MeanSummary, stats.MeanSummary]] = field(default_factory=list)
    aov: list[tuple[stats.RatioSummary, stats.RatioSummary]] = field(default_factory=list)


def _day(
    rng: np.random.Generator, visitors: int, lift: float
) -> tuple[
    stats.Proportion, stats.MeanSummary, stats.MeanSummary, stats.MeanSummary, stats.RatioSummary
]:
    converts = rng.random(visitors) < 0.03 * lift
    orders = (converts * (1 + rng.poisson(0.15, visitors))).astype(float)
    revenue = np.zeros(visitors)
    buyers = np.flatnonzero(orders)
    revenue[buyers] = orders[buyers] * rng.lognormal(4.2, 0.6, buyers.size) * lift
    carts = rng.poisson(0.4 * lift, visitors).astype(float)
    return (
        stats.Proportion.from_values(orders),
        stats.MeanSummary.from_values(revenue),
        stats.MeanSummary.from_values(orders),
        stats.MeanSummary.from_values(carts),
        stats.RatioSummary.from_values(numerator=revenue, denominator=orders),
    )


def aggregates(visitors: int, seed: int = 7) -> Experiment:
    """Simulate day by day (ten million visitors never sit in memory at once) and accumulate."""
    rng = np.random.default_rng(seed)
    per_day = visitors // (2 * DAYS)
    experiment = Experiment()
    totals: list[tuple[Any, ...]] = []
    for day in range(DAYS):
        today = [_day(rng, per_day, lift) for lift in (1.0, 1.26)]
        totals = (
            today
            if day == 0
            else [
                tuple(a + b for a, b in zip(t, d, strict=True))
                for t, d in zip(totals, today, strict=True)
            ]
        )
        control, treatment = totals
        experiment.conversion.append((control[0], treatment[0]))
        experiment.revenue.append((control[1], treatment[1]))
        experiment.orders.append((control[2], treatment[2]))
        experiment.cart_visits.append((control[3], treatment[3]))
        experiment.aov.append((control[4], treatment[4]))
    return experiment


def readout(experiment: Experiment) -> list[float]:
    """Everything the results page computes, returning the p-values so nothing is elided."""
    control, treatment = experiment.conversion[-1]
    stats.srm_test(visitors=[control.visitors, treatment.visitors], weights=[0.5, 0.5])
    pvalues = [stats.compare_proportions(control=control, treatment=treatment).pvalue]
    stats.chance_to_beat_control(control=control, treatment=treatment)
    stats.msprt(looks=experiment.conversion)
    for looks in (experiment.revenue, experiment.orders, experiment.cart_visits):
        c, t = looks[-1]
        pvalues.append(stats.compare_means(control=c, treatment=t).pvalue)
        stats.chance_to_beat_control(control=c, treatment=t)
        stats.msprt(looks=looks)
    c_ratio, t_ratio = experiment.aov[-1]
    pvalues.append(stats.compare_ratios(control=c_ratio, treatment=t_ratio).pvalue)
    stats.adjust_pvalues(pvalues)
    required = stats.sample_size(baseline=max(control.rate, 1e-3), mde=0.1)
    stats.days_remaining(
        required_per_variant=required,
        current_per_variant=[control.visitors, treatment.visitors],
        days_elapsed=DAYS,
    )
    return pvalues


def _median_seconds(function: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    warnings.simplefilter("error")  # a benchmark that warns is measuring the wrong thing
    print("building aggregates (simulating 10,000,000 visitors takes a few seconds)...")
    small, large = aggregates(1_000), aggregates(10_000_000)
    for label, experiment in (("small", small), ("large", large)):
        c, t = experiment.conversion[-1]
        print(f"  {label}: {c.visitors + t.visitors:,} visitors")
    readout(small), readout(large)  # warm-up: imports, caches
    small_times, large_times = [], []
    for _ in range(args.rounds):
        small_times.append(_median_seconds(lambda: readout(small)))
        large_times.append(_median_seconds(lambda: readout(large)))
    small_ms = statistics.median(small_times) * 1e3
    large_ms = statistics.median(large_times) * 1e3
    print(f"read-out, 1,000 visitors:      {small_ms:8.2f} ms (median of {args.rounds} rounds)")
    print(f"read-out, 10,000,000 visitors: {large_ms:8.2f} ms")
    print(f"ratio large / small:           {large_ms / small_ms:8.2f}")

    print("\nper call (median of 200 runs, microseconds): small / large / ratio")
    calls: dict[str, Callable[[Experiment], object]] = {
        "compare_proportions": lambda e: stats.compare_proportions(
            control=e.conversion[-1][0], treatment=e.conversion[-1][1]
        ),
        "compare_means": lambda e: stats.compare_means(
            control=e.revenue[-1][0], treatment=e.revenue[-1][1]
        ),
        "compare_ratios": lambda e: stats.compare_ratios(
            control=e.aov[-1][0], treatment=e.aov[-1][1]
        ),
        "chance_to_beat_control (Beta)": lambda e: stats.chance_to_beat_control(
            control=e.conversion[-1][0], treatment=e.conversion[-1][1]
        ),
        "msprt (10 looks)": lambda e: stats.msprt(looks=e.conversion),
    }
    for name, call in calls.items():
        a = _median_seconds(functools.partial(call, small), repeat=200) * 1e6
        b = _median_seconds(functools.partial(call, large), repeat=200) * 1e6
        print(f"  {name:32s} {a:9.1f} {b:9.1f} {b / a:6.2f}")


if __name__ == "__main__":
    main()
