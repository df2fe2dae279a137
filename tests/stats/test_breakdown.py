"""stats.breakdown against independent computations: scipy for the tests, statsmodels for Holm."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

import stats

DEVICES = ("mobile", "desktop", "tablet")


def _log(visitors: int = 900, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[tuple[object, ...]] = []
    for i in range(visitors):
        visitor, variant = f"v{i}", ("control", "filters")[i % 2]
        device = DEVICES[int(rng.integers(0, 3))]
        at = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(seconds=i)
        rows.append(("exposure", visitor, variant, at, None, None, json.dumps({"device": device})))
        for k in range(int(rng.poisson(0.6 if variant == "control" else 0.8))):
            value = round(float(rng.lognormal(3, 1)), 2)
            rows.append(
                (
                    "event",
                    visitor,
                    variant,
                    at + pd.Timedelta(minutes=k + 1),
                    "purchase",
                    value,
                    None,
                )
            )
    return pd.DataFrame(
        rows, columns=["type", "visitor_id", "variant", "timestamp", "event", "value", "attributes"]
    )


METRICS = [
    stats.Metric("conversion", kind="conversion", event="purchase"),
    stats.Metric("revenue", kind="mean", event="purchase"),
]


def test_each_slice_is_the_comparison_of_its_visitors_with_holm_across_slices() -> None:
    log = _log()
    table = stats.breakdown(
        log,
        metrics=METRICS,
        dimension="device",
        control="control",
        weights={"control": 0.5, "filters": 0.5},
        caps={"revenue": 60.0},
    )
    assert list(table.columns) == list(stats.BREAKDOWN_COLUMNS)
    rows = stats.visitor_rows(log, metrics=METRICS, attributes=["device"])
    rows["revenue"] = rows["revenue"].clip(upper=60.0)
    assert table.groupby("slice").slice_visitors.first().sum() == len(rows)
    for name in ("conversion", "revenue"):
        mine = table[(table.metric == name) & table.method.notna()]
        raw = []
        for device in mine.slice:
            part = rows[rows.device == device]
            a = part.loc[part.variant == "control", name].to_numpy(dtype=float)
            b = part.loc[part.variant == "filters", name].to_numpy(dtype=float)
            if name == "revenue":
                expected = scipy_stats.ttest_ind(b, a, equal_var=False).pvalue
            else:
                counts = np.array([[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]])
                expected = scipy_stats.chi2_contingency(counts, correction=False).pvalue
            raw.append(expected)
        assert mine.pvalue.to_numpy() == pytest.approx(raw, rel=1e-9)
        holm = multipletests(raw, method="holm")[1]
        assert mine.pvalue_adjusted.to_numpy() == pytest.approx(holm, rel=1e-9)
    for device, part in rows.groupby("device"):
        counts = part.variant.value_counts()
        expected = scipy_stats.chisquare([counts["control"], counts["filters"]]).pvalue
        srm = table.loc[table.slice == device, "srm_pvalue"].iloc[0]
        assert srm == pytest.approx(expected, rel=1e-9)


def test_values_after_max_values_share_other_and_missing_is_none() -> None:
    assert stats.slice_labels(["a", "b", None, "c", "a", 3], max_values=2) == [
        "a",
        "b",
        "other",
        "other",
        "a",
        "other",
    ]
    assert stats.slice_labels([None, True, {"k": 1}], max_values=5) == ["(none)", "true", '{"k":1}']
    with pytest.raises(ValueError, match="max_values must be an integer >= 1, got 0"):
        stats.slice_labels(["a"], max_values=0)


def test_percentile_cap_is_the_quantile_of_the_positive_values() -> None:
    values = pd.Series([0.0] * 50 + list(range(1, 101)), dtype=float)
    assert stats.percentile_cap(values, 0.9) == pytest.approx(np.quantile(np.arange(1, 101), 0.9))
    with pytest.raises(ValueError, match=r"quantile must be in \(0, 1\], got 1.5"):
        stats.percentile_cap(values, 1.5)
    with pytest.raises(ValueError, match="no positive value"):
        stats.percentile_cap(pd.Series([0.0, 0.0]), 0.99)


def test_definition_caps_reads_the_caps_and_refuses_nonsense() -> None:
    metrics: list[dict[str, object]] = [
        {"name": "revenue", "kind": "mean", "cap": 500},
        {"name": "orders"},
    ]
    assert stats.definition_caps(metrics) == {"revenue": 500.0}
    with pytest.raises(ValueError, match="cap must be a number"):
        stats.definition_caps([{"name": "revenue", "cap": "lots"}])
