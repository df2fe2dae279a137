"""DataFrame helpers: per-visitor rows and warehouse aggregates into summaries and a tidy table."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stats import (
    CupedSummary,
    InvalidInputError,
    MeanSummary,
    Metric,
    Proportion,
    RatioSummary,
    UndefinedResultWarning,
    adjust_pvalues,
    chance_to_beat_control,
    compare_frame,
    compare_means,
    compare_proportions,
    compare_ratios,
    compare_summaries,
    cuped,
    summarise_aggregates,
    summarise_visitors,
)
from stats.tables import COMPARISON_COLUMNS

ROOT = Path(__file__).resolve().parents[2]

METRICS = [
    Metric("conversion", kind="conversion", column="orders"),
    Metric("revenue", kind="mean"),
    Metric("orders", kind="count"),
    Metric("aov", kind="ratio", numerator="revenue", denominator="orders"),
    Metric("revenue_cuped", kind="mean", column="revenue", covariate="revenue_before"),
]


@pytest.fixture
def visitors() -> pd.DataFrame:
    rng = np.random.default_rng(17)
    n = 3000
    variant = rng.choice(["control", "filters", "sort"], size=n)
    orders = rng.poisson(np.where(variant == "control", 0.10, 0.13))
    revenue = orders * rng.gamma(3.0, 20.0, n)
    before = 0.5 * revenue + rng.gamma(1.0, 5.0, n)
    return pd.DataFrame(
        {"variant": variant, "orders": orders, "revenue": revenue, "revenue_before": before}
    )


def test_summarise_visitors_matches_from_values(visitors: pd.DataFrame) -> None:
    summaries = summarise_visitors(visitors, metrics=METRICS)
    assert list(summaries) == [m.name for m in METRICS]
    assert list(summaries["revenue"]) == list(pd.unique(visitors["variant"]))
    for variant, rows in visitors.groupby("variant"):
        assert summaries["conversion"][variant] == Proportion.from_values(rows["orders"])
        revenue = MeanSummary.from_values(rows["revenue"].to_numpy())
        assert summaries["revenue"][variant].n == revenue.n  # type: ignore[union-attr]
        assert summaries["revenue"][variant].sum == pytest.approx(revenue.sum, rel=1e-12)  # type: ignore[union-attr]
        ratio = summaries["aov"][variant]
        assert isinstance(ratio, RatioSummary)
        assert ratio.ratio == pytest.approx(rows["revenue"].sum() / rows["orders"].sum(), rel=1e-12)
        adjusted = summaries["revenue_cuped"][variant]
        assert isinstance(adjusted, CupedSummary)
        assert adjusted.cross_sum == pytest.approx(
            float(rows["revenue"] @ rows["revenue_before"]), rel=1e-12
        )


def test_compare_frame_is_tidy_and_matches_the_functions(visitors: pd.DataFrame) -> None:
    table = compare_frame(visitors, metrics=METRICS, control="control")
    assert tuple(table.columns) == COMPARISON_COLUMNS
    assert len(table) == len(METRICS) * 3
    for _, rows in table.groupby("metric", sort=False):
        assert rows["variant"].iloc[0] == "control"
        assert rows["method"].isna().tolist() == [True, False, False]
    summaries = summarise_visitors(visitors, metrics=METRICS)
    row = table[(table.metric == "conversion") & (table.variant == "filters")].iloc[0]
    control, treatment = summaries["conversion"]["control"], summaries["conversion"]["filters"]
    assert isinstance(control, Proportion) and isinstance(treatment, Proportion)
    direct = compare_proportions(control=control, treatment=treatment)
    assert row.pvalue == direct.pvalue and row.absolute_ci_low == direct.absolute_ci[0]
    assert row.relative_lift == direct.relative_lift and row.kind == "conversion"
    assert row.chance_to_beat_control == pytest.approx(
        chance_to_beat_control(control=control, treatment=treatment).chance_to_beat_control
    )
    revenue = table[(table.metric == "revenue") & (table.variant == "sort")].iloc[0]
    welch = compare_means(
        control=summaries["revenue"]["control"],  # type: ignore[arg-type]
        treatment=summaries["revenue"]["sort"],  # type: ignore[arg-type]
    )
    assert revenue.statistic == welch.statistic and revenue.method == "Welch's t-test"
    aov = table[(table.metric == "aov") & (table.variant == "sort")].iloc[0]
    assert (
        aov.pvalue
        == compare_ratios(
            control=summaries["aov"]["control"],  # type: ignore[arg-type]
            treatment=summaries["aov"]["sort"],  # type: ignore[arg-type]
        ).pvalue
    )
    assert math.isnan(aov.chance_to_beat_control)
    adjusted = table[(table.metric == "revenue_cuped") & (table.variant == "filters")].iloc[0]
    direct_cuped = cuped(
        control=summaries["revenue_cuped"]["control"],  # type: ignore[arg-type]
        treatment=summaries["revenue_cuped"]["filters"],  # type: ignore[arg-type]
    )
    assert adjusted.variance_reduction == direct_cuped.variance_reduction > 0.1
    assert table[table.metric == "orders"].kind.unique().tolist() == ["count"]
    comparisons = table[table.method.notna()]
    assert tuple(comparisons.pvalue_adjusted) == pytest.approx(
        adjust_pvalues(list(comparisons.pvalue), method="holm")
    )
    assert (comparisons.significant == (comparisons.pvalue_adjusted < 0.05)).all()
    assert table[table.method.isna()].significant.isna().all()


def test_undefined_comparisons_are_not_called_significant_or_insignificant() -> None:
    summaries = {"m": {"a": Proportion(0, 10), "b": Proportion(0, 10), "c": Proportion(5, 10)}}
    with pytest.warns(UndefinedResultWarning):
        table = compare_summaries(summaries, control="a")
    assert table.significant.isna().tolist() == [True, True, False]
    assert "standard error of the difference is zero" in table.reason.iloc[1]


def test_aggregates_give_the_same_table(visitors: pd.DataFrame) -> None:
    """A warehouse query: SELECT variant, COUNT(*) AS n, SUM(x) AS sum, SUM(x*x) AS sum_squares."""
    grouped = visitors.assign(revenue_sq=visitors.revenue**2).groupby("variant", sort=False)
    aggregates = pd.DataFrame(
        {
            "variant": list(grouped.groups),
            "n": grouped.size().to_numpy(),
            "sum": grouped.revenue.sum().to_numpy(),
            "sum_squares": grouped.revenue_sq.sum().to_numpy(),
        }
    )
    from_aggregates = summarise_aggregates(aggregates, kind="mean", metric_name="revenue")
    from_rows = summarise_visitors(visitors, metrics=[Metric("revenue", kind="mean")])
    left = compare_summaries(from_aggregates, control="control")
    right = compare_summaries(from_rows, control="control")
    pd.testing.assert_frame_equal(left, right, rtol=1e-9)


def test_long_aggregate_frame_with_several_metrics() -> None:
    aggregates = pd.DataFrame(
        {
            "metric": ["conversion", "conversion", "revenue", "revenue"],
            "variant": ["control", "filters", "control", "filters"],
            "n": [5012.0, 4988.0, 5012, 4988],
            "sum": [150.0, 188.0, 7100.0, 9850.0],
            "sum_squares": [150.0, 188.0, 410_000.0, 640_000.0],
        }
    )
    summaries = summarise_aggregates(
        aggregates, kind={"conversion": "conversion", "revenue": "mean"}, metric_column="metric"
    )
    assert summaries["conversion"]["filters"] == Proportion(188, 4988)
    assert summaries["revenue"]["control"] == MeanSummary(5012, 7100.0, 410_000.0)
    table = compare_summaries(summaries, control="control", adjust=None)
    assert list(table.variant) == ["control", "filters", "control", "filters"]
    assert table.pvalue_adjusted.equals(table.pvalue)


def test_ratio_and_cuped_aggregates() -> None:
    frame = pd.DataFrame(
        {
            "variant": ["a", "b"],
            "n": [4, 4],
            "numerator_sum": [120.0, 260.0],
            "numerator_sum_squares": [7400.0, 20400.0],
            "denominator_sum": [2.0, 4.0],
            "denominator_sum_squares": [2.0, 6.0],
            "cross_sum": [120.0, 340.0],
        }
    )
    summaries = summarise_aggregates(frame, kind="ratio", metric_name="aov")
    assert summaries["aov"]["a"] == RatioSummary(4, 120.0, 7400.0, 2.0, 2.0, 120.0)
    cuped_frame = pd.DataFrame(
        {
            "variant": ["a", "b"],
            "n": [3, 3],
            "sum": [6.0, 9.0],
            "sum_squares": [14.0, 29.0],
            "covariate_sum": [3.0, 6.0],
            "covariate_sum_squares": [5.0, 14.0],
            "cross_sum": [8.0, 20.0],
        }
    )
    read = summarise_aggregates(cuped_frame, kind="mean")
    assert isinstance(read["metric"]["a"], CupedSummary)


def test_invalid_frames() -> None:
    frame = pd.DataFrame({"variant": ["a", "b"], "x": [1.0, np.nan], "s": ["u", "v"]})
    with pytest.raises(InvalidInputError, match=r"column\(s\) \['y'\] not in frame"):
        summarise_visitors(frame, metrics=[Metric("y", kind="mean")])
    with pytest.raises(InvalidInputError, match="column 'x' has 1 missing value"):
        summarise_visitors(frame, metrics=[Metric("x", kind="mean")])
    with pytest.raises(InvalidInputError, match="column 's' must be numeric"):
        summarise_visitors(frame, metrics=[Metric("s", kind="mean")])
    with pytest.raises(InvalidInputError, match="must be >= 0 for a count metric"):
        summarise_visitors(
            pd.DataFrame({"variant": ["a"], "x": [-1]}), metrics=[Metric("x", kind="count")]
        )
    with pytest.raises(InvalidInputError, match="control 'z' is not a variant of metric 'x'"):
        compare_frame(
            pd.DataFrame({"variant": ["a", "b"], "x": [1, 2]}),
            metrics=[Metric("x", kind="mean")],
            control="z",
        )
    duplicated = pd.DataFrame(
        {"variant": ["a", "a"], "n": [1, 2], "sum": [1.0, 1.0], "sum_squares": [1.0, 1.0]}
    )
    with pytest.raises(InvalidInputError, match="variant 'a' appears more than once"):
        summarise_aggregates(duplicated, kind="mean")
    with pytest.raises(InvalidInputError, match=r"n must be a whole number, got 1\.5"):
        summarise_aggregates(
            pd.DataFrame({"variant": ["a"], "n": [1.5], "sum": [1.0], "sum_squares": [1.0]}),
            kind="mean",
        )
    with pytest.raises(InvalidInputError, match="numerator and denominator are required"):
        Metric("aov", kind="ratio")
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        Metric("x", kind="median")  # type: ignore[arg-type]


def test_import_stats_does_not_load_pandas_or_the_service() -> None:
    code = (
        "import sys, stats; "
        "bad = [m for m in ('pandas', 'redis', 'fastapi', 'experiments', 'service') "
        "if m in sys.modules]; print(bad)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
