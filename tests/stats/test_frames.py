"""DataFrame helpers: per-visitor rows and warehouse aggregates into summaries and a tidy table."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stats import (
    CupedSummary,
    IncompleteLogWarning,
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
    definition_metrics,
    summarise_aggregates,
    summarise_visitors,
    visitor_rows,
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


# -- raw event logs (the service's events export) --------------------------------------------

LogRow = tuple[str, str, str, float, str | None, float | None, object]

DEFINITION_METRICS: list[dict[str, object]] = [
    {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
    {"name": "revenue", "kind": "mean", "event": "purchase"},
    {"name": "orders", "kind": "count", "event": "purchase"},
    {"name": "cart_visits", "kind": "count", "event": "cart_view"},
    {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
]


def _log(rows: Sequence[LogRow]) -> Any:
    """An events export from (type, visitor, variant, day, event, value, attributes) rows."""
    frame = pd.DataFrame(
        rows, columns=["type", "visitor_id", "variant", "day", "event", "value", "attributes"]
    )
    frame["timestamp"] = pd.to_datetime(frame.pop("day"), unit="D", utc=True)
    return frame


LOG = [
    ("exposure", "ann", "control", 10.0, None, None, '{"device":"mobile"}'),
    ("exposure", "bob", "filters", 11.0, None, None, {"device": "desktop", "plan": "pro"}),
    ("exposure", "cy", "filters", 12.0, None, None, None),
    ("event", "ann", "control", 10.5, "purchase", 20.0, None),
    ("event", "ann", "control", 10.6, "purchase", 5.5, None),
    ("event", "ann", "control", 10.7, "cart_view", 0.0, None),
    ("event", "bob", "filters", 11.2, "purchase", 0.0, None),
    ("pre_exposure", "bob", "filters", 10.0, "purchase", 40.0, None),
    ("pre_exposure", "bob", "filters", 1.0, "cart_view", 0.0, None),  # 10 days before
    ("pre_exposure", "cy", "filters", 12.0, "purchase", 9.0, None),  # not before: left out
]


def test_definition_metrics_reads_an_experiment_definition() -> None:
    plain = definition_metrics(DEFINITION_METRICS)
    assert [(m.name, m.kind, m.event, m.covariate) for m in plain] == [
        ("conversion", "conversion", "purchase", None),
        ("revenue", "mean", "purchase", None),
        ("orders", "count", "purchase", None),
        ("cart_visits", "count", "cart_view", None),
        ("aov", "ratio", None, None),
    ]
    assert (plain[-1].numerator, plain[-1].denominator) == ("revenue", "orders")
    adjusted = definition_metrics(DEFINITION_METRICS, cuped=True)
    assert [m.covariate for m in adjusted] == [
        "conversion_pre",
        "revenue_pre",
        "orders_pre",
        "cart_visits_pre",
        None,
    ]
    with pytest.raises(InvalidInputError, match=r"metrics\[0\] \('x'\) needs an 'event'"):
        definition_metrics([{"name": "x", "kind": "mean"}])
    with pytest.raises(InvalidInputError, match=r"metrics\[0\].kind must be one of"):
        definition_metrics([{"name": "x", "kind": "median", "event": "e"}])
    with pytest.raises(InvalidInputError, match=r"metrics\[1\] must be a mapping"):
        definition_metrics([DEFINITION_METRICS[0], "revenue"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="a ratio reads its numerator and denominator"):
        Metric("aov", kind="ratio", numerator="a", denominator="b", event="purchase")


def test_visitor_rows_compute_each_metric_as_the_service_does() -> None:
    rows = visitor_rows(
        _log(LOG), metrics=definition_metrics(DEFINITION_METRICS), attributes=["device", "plan"]
    )
    assert list(rows.columns) == [
        "visitor_id",
        "variant",
        "exposed_at",
        "device",
        "plan",
        "conversion",
        "revenue",
        "orders",
        "cart_visits",
        "conversion_pre",
        "revenue_pre",
        "orders_pre",
        "cart_visits_pre",
    ]
    by_visitor = rows.set_index("visitor_id")
    assert by_visitor.loc["ann", ["conversion", "revenue", "orders", "cart_visits"]].tolist() == [
        1,
        25.5,
        2,
        1,
    ]
    # A zero-valued purchase still converts and counts as an order.
    assert by_visitor.loc["bob", ["conversion", "revenue", "orders"]].tolist() == [1, 0.0, 1]
    assert by_visitor.loc["cy", ["conversion", "revenue", "orders", "cart_visits"]].sum() == 0
    assert by_visitor.loc["bob", ["conversion_pre", "revenue_pre", "cart_visits_pre"]].tolist() == [
        1,
        40.0,
        1,
    ]
    assert by_visitor.loc["cy", "revenue_pre"] == 0.0  # at the exposure instant: not before
    assert by_visitor.device.tolist()[:2] == ["mobile", "desktop"]
    assert pd.isna(by_visitor.loc["cy", "device"]) and pd.isna(by_visitor.loc["ann", "plan"])
    assert rows.visitor_id.tolist() == ["ann", "bob", "cy"]  # by exposure time
    # A lookback window keeps only the recent history; ISO text timestamps are read too.
    text = _log(LOG).assign(timestamp=lambda f: f.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    recent = visitor_rows(text, metrics=definition_metrics(DEFINITION_METRICS), lookback_days=5)
    assert recent.set_index("visitor_id").loc["bob", "cart_visits_pre"] == 0
    assert recent.set_index("visitor_id").loc["bob", "revenue_pre"] == 40.0


def test_visitor_rows_feed_the_comparison_table_and_cuped() -> None:
    rng = np.random.default_rng(5)
    log: list[LogRow] = []
    for i in range(400):
        variant = "control" if i % 2 else "filters"
        log.append(("exposure", f"v{i}", variant, 20.0, None, None, None))
        habit = rng.poisson(1.0)
        for _ in range(habit):
            log.append(("pre_exposure", f"v{i}", variant, 10.0, "cart_view", 0.0, None))
        for _ in range(rng.poisson(0.5 + habit + (0.3 if variant == "filters" else 0.0))):
            log.append(("event", f"v{i}", variant, 21.0, "cart_view", 0.0, None))
        if rng.random() < 0.1:
            value = round(float(rng.gamma(2.0, 15.0)), 2)
            log.append(("event", f"v{i}", variant, 21.0, "purchase", value, None))
            log.append(("event", f"v{i}", variant, 21.1, "purchase", 10.0, None))
    rows = visitor_rows(_log(log), metrics=definition_metrics(DEFINITION_METRICS))
    plain = compare_frame(rows, metrics=definition_metrics(DEFINITION_METRICS), control="control")
    assert set(plain.metric) == {m["name"] for m in DEFINITION_METRICS}
    adjusted = compare_frame(
        rows, metrics=definition_metrics(DEFINITION_METRICS, cuped=True), control="control"
    )
    carts = adjusted[(adjusted.metric == "cart_visits") & (adjusted.variant == "filters")].iloc[0]
    assert carts.method == "CUPED z-test (delta method)"
    assert carts.variance_reduction > 0.3  # the habit predicts most of the visits
    assert adjusted[adjusted.metric == "aov"].method.iloc[1] == "delta-method z-test (ratio)"


def test_visitor_rows_refuse_what_they_cannot_read() -> None:
    metrics = definition_metrics(DEFINITION_METRICS)
    with pytest.raises(InvalidInputError, match=r"events: column\(s\) \['type'\] not in frame"):
        visitor_rows(_log(LOG).drop(columns="type"), metrics=metrics)
    twice = _log([*LOG, LOG[0]])
    with pytest.raises(InvalidInputError, match="1 visitor\\(s\\) with more than one exposure"):
        visitor_rows(twice, metrics=metrics)
    with pytest.raises(InvalidInputError, match="metric 'x' has no event to read"):
        visitor_rows(_log(LOG), metrics=[Metric("x", kind="mean")])
    with pytest.raises(InvalidInputError, match="ratio metric 'aov' reads \\['orders'\\]"):
        visitor_rows(_log(LOG), metrics=[metrics[1], metrics[4]])
    with pytest.raises(InvalidInputError, match="'revenue' would clash"):
        visitor_rows(_log(LOG), metrics=metrics, attributes=["revenue"])
    with pytest.raises(InvalidInputError, match="lookback_days must be a number >= 0"):
        visitor_rows(_log(LOG), metrics=metrics, lookback_days=-1)
    trimmed = _log([row for row in LOG if row[1] != "ann" or row[0] != "exposure"])
    with pytest.warns(IncompleteLogWarning, match="3 credited event\\(s\\) belong to visitors"):
        rows = visitor_rows(trimmed, metrics=metrics)
    assert rows.visitor_id.tolist() == ["bob", "cy"]


def test_summarise_aggregates_reads_kinds_from_the_summary_export() -> None:
    summary = pd.DataFrame(
        {
            "variant": ["control", "filters", "control", "filters"],
            "metric": ["conversion", "conversion", "aov", "aov"],
            "kind": ["conversion", "conversion", "ratio", "ratio"],
            "n": [100, 100, 100, 100],
            "sum": [10.0, 14.0, np.nan, np.nan],
            "sum_squares": [10.0, 14.0, np.nan, np.nan],
            "numerator_sum": [np.nan, np.nan, 300.0, 500.0],
            "numerator_sum_squares": [np.nan, np.nan, 12_000.0, 24_000.0],
            "denominator_sum": [np.nan, np.nan, 10.0, 14.0],
            "denominator_sum_squares": [np.nan, np.nan, 10.0, 16.0],
            "cross_sum": [np.nan, np.nan, 300.0, 560.0],
        }
    )
    read = summarise_aggregates(summary, metric_column="metric")
    assert read["conversion"]["filters"] == Proportion(14, 100)
    assert read["aov"]["control"] == RatioSummary(100, 300.0, 12_000.0, 10.0, 10.0, 300.0)
    with pytest.raises(InvalidInputError, match="kind_column"):
        summarise_aggregates(summary.drop(columns="kind"), metric_column="metric")


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


def test_expand_attributes_makes_one_column_per_key() -> None:
    from stats import expand_attributes

    log = pd.DataFrame(
        {
            "type": ["exposure", "exposure", "event"],
            "attributes": ['{"device": "mobile", "age": 31}', {"device": "tablet"}, None],
            "value": [None, None, 3.0],
        }
    )
    expanded = expand_attributes(log)
    assert list(expanded.columns) == ["type", "age", "device", "value"]
    assert expanded["age"].tolist()[0] == 31 and pd.isna(expanded["age"].tolist()[1])
    assert expanded["device"].tolist()[:2] == ["mobile", "tablet"]
    assert pd.isna(expanded["device"].tolist()[2])
    clash = log.assign(attributes=['{"type": "x"}', None, None])
    with pytest.raises(InvalidInputError, match=r"attributes \['type'\] clash"):
        expand_attributes(clash)
    assert list(expand_attributes(clash, prefix="attr_").columns) == ["type", "attr_type", "value"]
    with pytest.raises(InvalidInputError, match="must hold JSON objects"):
        expand_attributes(log.assign(attributes=["[1, 2]", None, None]))
