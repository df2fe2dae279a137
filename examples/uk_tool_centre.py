"""UK Tool Centre-like experiment: removing a filter menu from a product page, SIMULATED visitors.

UK Tool Centre removed a filter menu from a product page and reported +27% engagement. No raw
traffic was published, so this script simulates two weeks of visitors whose true effect on
engagement actions per visitor (add to basket, image zoom, spec tab, ...) is exactly +27%, and
shows the analyses a marketer and a data scientist would run:

- planning: visitors needed per variant and days needed at the traffic seen so far;
- the fixed-horizon read-out at the end, with and without CUPED (each visitor's engagement in
  the two weeks before the test is the pre-period covariate; it reduces the variance by the
  squared correlation);
- daily monitoring with the mSPRT always-valid p-value and confidence sequence, next to the
  fixed-horizon p-value that must not be peeked at;
- the sample-ratio-mismatch check.

Engagement per visitor is Poisson with a visitor-level Gamma propensity ``g`` shared by the
pre-period and the test period, so the share of engaged visitors has the closed form
``1 - (1 + theta * rate) ** -shape`` and its true lift is known exactly too.

Run it with ``python examples/uk_tool_centre.py``; it exits non-zero if a true lift falls
outside its 95% interval (or confidence sequence).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script from a checkout: make `stats` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stats

SEED = 20_231_102
DAYS = 14
VISITORS_PER_DAY = 400
RATE = 0.8  # engagement actions per visitor in control
LIFT = 0.27
SHAPE, SCALE = 0.5, 2.0  # Gamma propensity: mean 1, variance 2 (heavy users and light ones)


def _engaged_share(rate: float) -> float:
    return float(1.0 - (1.0 + SCALE * rate) ** -SHAPE)


TRUE_RELATIVE_LIFTS = {
    "engagement": LIFT,
    "engagement_cuped": LIFT,
    "engaged": _engaged_share(RATE * (1 + LIFT)) / _engaged_share(RATE) - 1.0,
}

METRICS = [
    stats.Metric("engagement", kind="count"),
    stats.Metric("engagement_cuped", kind="count", column="engagement", covariate="pre_engagement"),
    stats.Metric("engaged", kind="conversion", column="engagement"),
]


def simulate(seed: int = SEED, visitors_per_day: int = VISITORS_PER_DAY) -> pd.DataFrame:
    """One row per visitor: day of first visit, variant, pre-period and test engagement."""
    rng = np.random.default_rng(seed)
    n = DAYS * visitors_per_day
    day = np.repeat(np.arange(1, DAYS + 1), visitors_per_day)
    treated = rng.random(n) < 0.5
    propensity = rng.gamma(SHAPE, SCALE, n)
    pre_engagement = rng.poisson(propensity * RATE)
    engagement = rng.poisson(propensity * RATE * np.where(treated, 1 + LIFT, 1.0))
    return pd.DataFrame(
        {
            "day": day,
            "variant": np.where(treated, "no_filter_menu", "control"),
            "pre_engagement": pre_engagement,
            "engagement": engagement,
        }
    )


def analyse(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed-horizon read-out at the end of the test: one row per metric and variant."""
    return stats.compare_frame(frame, metrics=METRICS, control="control")


def daily_looks(frame: pd.DataFrame) -> list[tuple[stats.MeanSummary, stats.MeanSummary]]:
    """Cumulative engagement summaries per variant at the end of each day."""
    looks = []
    for day in range(1, DAYS + 1):
        seen = frame[frame.day <= day]
        pair = tuple(
            stats.MeanSummary.from_values(seen.loc[seen.variant == v, "engagement"].to_numpy())
            for v in ("control", "no_filter_menu")
        )
        looks.append((pair[0], pair[1]))
    return looks


def monitor(frame: pd.DataFrame) -> tuple[stats.SequentialResult, list[float]]:
    """The always-valid sequence over daily looks, and the fixed-horizon p-value of each day."""
    looks = daily_looks(frame)
    sequential = stats.msprt(looks=looks)
    fixed = [stats.compare_means(control=c, treatment=t).pvalue for c, t in looks]
    return sequential, fixed


def recovered(table: pd.DataFrame, sequential: stats.SequentialResult) -> dict[str, bool]:
    """Whether each true relative lift lies in its interval (and in the final sequence)."""
    rows = table[table.variant == "no_filter_menu"].set_index("metric")
    inside = {
        metric: bool(
            rows.at[metric, "relative_ci_low"] <= lift <= rows.at[metric, "relative_ci_high"]
        )
        for metric, lift in TRUE_RELATIVE_LIFTS.items()
    }
    low, high = sequential.relative_cs[-1]
    inside["engagement (sequence)"] = bool(low <= LIFT <= high)
    return inside


def plan(frame: pd.DataFrame, mde: float = 0.10) -> str:
    """After day 1: visitors per variant to detect +10% engagement, and the days still needed."""
    first_day = frame[frame.day == 1]
    control = first_day.loc[first_day.variant == "control", "engagement"]
    needed = stats.sample_size(
        baseline=float(control.mean()), mde=mde, kind="mean", std=float(control.std())
    )
    remaining = stats.days_remaining(
        required_per_variant=needed,
        current_per_variant=[int(n) for n in first_day.variant.value_counts()],
        days_elapsed=1,
    )
    return (
        f"Plan after day 1: {control.mean():.2f} actions per visitor (sd {control.std():.2f}); "
        f"{needed:,} visitors per variant detect {mde:+.0%} with 80% power; "
        f"about {remaining:.0f} more days at this traffic"
    )


def main() -> int:
    frame = simulate()
    counts = frame.variant.value_counts()
    srm = stats.srm_test(
        visitors=[int(counts["control"]), int(counts["no_filter_menu"])], weights=[0.5, 0.5]
    )
    print(f"UK Tool Centre-like simulation: {len(frame):,} visitors over {DAYS} days, seed {SEED}")
    print(f"SRM p = {srm.pvalue:.3f} ({'MISMATCH' if srm.mismatch else 'no mismatch'})")

    print(plan(frame))

    table = analyse(frame)
    shown = table[table.variant == "no_filter_menu"]
    print("\nFixed-horizon read-out after 14 days (true lifts: ", end="")
    print(", ".join(f"{k} {v:+.2%}" for k, v in TRUE_RELATIVE_LIFTS.items()) + ")")
    for row in shown.itertuples():
        extra = (
            f", variance reduction {row.variance_reduction:.0%}"
            if not np.isnan(row.variance_reduction)
            else ""
        )
        print(
            f"  {row.metric:17s} {row.relative_lift:+.1%} "
            f"[{row.relative_ci_low:+.1%}, {row.relative_ci_high:+.1%}] "
            f"p = {row.pvalue:.2g}{extra}"
        )

    sequential, fixed = monitor(frame)
    print("\nDaily monitoring of engagement per visitor (cumulative; 95% confidence sequences):")
    print("  day  fixed p  always-valid p  absolute lift (actions/visitor)  relative lift")
    for day in range(DAYS):
        low, high = sequential.absolute_cs[day]
        rel_low, rel_high = sequential.relative_cs[day]
        absolute = f"[{low:+.3f}, {high:+.3f}]"
        print(
            f"  {day + 1:3d}  {fixed[day]:7.2g}  {sequential.pvalues[day]:14.2g}  "
            f"{absolute:33s}  [{rel_low:+.1%}, {rel_high:+.1%}]"
        )
    inside = recovered(table, sequential)
    print("\nTrue lift inside its interval: " + ", ".join(f"{k} {v}" for k, v in inside.items()))
    return 0 if all(inside.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
