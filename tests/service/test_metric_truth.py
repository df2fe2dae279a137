"""Caps and breakdowns through the real app on both Redis kinds, checked against the raw log.

Visitors are assigned over HTTP with a device attribute and send purchases (a few of them
outliers far above the cap) and refunds; the read-out must equal a recomputation from the
events export with the same caps, overall and per device slice, to 1e-9.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import stats
from service.client import breakdown_frame
from service.readout.model import ExperimentResults
from tests.service.conftest import AUTH, create_running

KEY = "capped-kilts"
DEFINITION: dict[str, Any] = {
    "key": KEY,
    "name": "Capped revenue by device",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "filters", "weight": 0.5}],
    "dimensions": ["device", {"name": "returning", "max_values": 1}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase", "cap": 400, "unit": "£"},
        {"name": "orders", "kind": "count", "event": "purchase", "cap": 2},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
        {
            "name": "refunds",
            "kind": "count",
            "event": "refund",
            "direction": "lower",
            "guardrail": True,
        },
    ],
}
DEVICES = ("mobile", "desktop", "tablet")
VISITORS = 240


def _traffic(client: TestClient) -> None:
    create_running(client, DEFINITION)
    rng = np.random.default_rng(14)
    events: list[dict[str, Any]] = []
    for i in range(VISITORS):
        visitor = f"v{i:04d}"
        attributes: dict[str, Any] = {"device": DEVICES[i % 3]}
        if i % 4:
            attributes["returning"] = bool(i % 2)  # a second value: "other" (max_values 1)
        response = client.post("/v1/assign", json={"visitor_id": visitor, "attributes": attributes})
        assert response.status_code == 200, response.text
        for _ in range(int(rng.poisson(0.8))):
            value = round(float(rng.lognormal(4, 1)), 2)
            if rng.random() < 0.05:
                value = 5000.0  # one buyer of fifty kilts
            events.append({"visitor_id": visitor, "event": "purchase", "value": value})
        if rng.random() < 0.1:
            events.append({"visitor_id": visitor, "event": "refund"})
    response = client.post("/v1/track/batch", json={"events": events}, headers=AUTH)
    assert response.status_code == 200, response.text


def _export(client: TestClient) -> pd.DataFrame:
    response = client.get(
        f"/v1/experiments/{KEY}/events", params={"format": "parquet"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return pd.read_parquet(io.BytesIO(response.content))


def _metrics() -> list[stats.Metric]:
    return stats.definition_metrics(DEFINITION["metrics"])


def _check_rows(block: dict[str, Any], table: pd.DataFrame) -> int:
    """The read-out's rows of one metric against a recomputed comparison table."""
    checked = 0
    for row in block["variants"]:
        mine = table[(table.metric == block["name"]) & (table.variant == row["variant"])]
        assert len(mine) == 1, (block["name"], row["variant"])
        assert int(mine.visitors.iloc[0]) == row["visitors"]
        if row["value"] is not None:
            assert float(mine.value.iloc[0]) == pytest.approx(row["value"], rel=1e-9, abs=1e-12)
        if row["variant"] == "control" or row["pvalue"] is None:
            continue
        for name in ("pvalue", "relative_lift", "absolute_lift"):
            assert float(mine[name].iloc[0]) == pytest.approx(row[name], rel=1e-9, abs=1e-12)
        low, high = row["relative_ci"]
        assert float(mine.relative_ci_low.iloc[0]) == pytest.approx(low, rel=1e-9, abs=1e-12)
        assert float(mine.relative_ci_high.iloc[0]) == pytest.approx(high, rel=1e-9, abs=1e-12)
        checked += 1
    return checked


def test_capped_results_equal_a_recomputation_from_the_export(client: TestClient) -> None:
    _traffic(client)
    results = client.get(f"/v1/experiments/{KEY}/results", headers=AUTH).json()
    frame = _export(client)
    rows = stats.visitor_rows(frame, metrics=_metrics())
    raw_revenue = rows["revenue"].copy()
    caps = stats.definition_caps(DEFINITION["metrics"])
    assert caps == {"revenue": 400.0, "orders": 2.0}
    for name, cap in caps.items():
        rows[name] = rows[name].clip(upper=cap)
    assert (raw_revenue > 400).any(), "the traffic must have visitors above the cap"
    table = stats.compare_frame(rows, metrics=_metrics(), control="control", adjust=None)
    checked = sum(_check_rows(block, table) for block in results["metrics"])
    assert checked == len(DEFINITION["metrics"])
    by_name = {m["name"]: m for m in results["metrics"]}
    assert by_name["revenue"]["cap"] == 400 and by_name["orders"]["cap"] == 2
    assert by_name["aov"]["numerator"] == "revenue" and by_name["aov"]["denominator"] == "orders"
    # the uncapped log would give another revenue: the cap is really applied
    uncapped = raw_revenue.groupby(rows["variant"]).mean()
    control = by_name["revenue"]["variants"][0]
    assert control["value"] != pytest.approx(float(uncapped["control"]), rel=1e-6)


def test_the_breakdown_equals_the_stats_helper_on_the_export(client: TestClient) -> None:
    _traffic(client)
    response = client.get(
        f"/v1/experiments/{KEY}/results", params={"dimension": "device"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    results = response.json()
    breakdown = results["breakdown"]
    assert breakdown["dimension"] == "device" and breakdown["correction"] == "holm"
    assert "not for picking winners" in breakdown["caveat"]
    slices = {s["value"]: s for s in breakdown["slices"]}
    assert sorted(slices) == sorted(DEVICES)
    assert sum(s["visitors"] for s in slices.values()) == sum(results["srm"]["visitors"].values())
    table = stats.breakdown(
        _export(client),
        metrics=_metrics(),
        dimension="device",
        control="control",
        weights={"control": 0.5, "filters": 0.5},
        caps=stats.definition_caps(DEFINITION["metrics"]),
    )
    for value, part in slices.items():
        mine = table[table.slice == value]
        assert int(mine.slice_visitors.iloc[0]) == part["visitors"]
        assert float(mine.srm_pvalue.iloc[0]) == pytest.approx(part["srm"]["pvalue"], rel=1e-9)
        for block in part["metrics"]:
            _check_rows(block, mine)
            for row in block["variants"][1:]:
                theirs = mine[(mine.metric == block["name"]) & (mine.variant == row["variant"])]
                if row["adjusted_pvalue"] is not None:
                    adjusted = float(theirs.pvalue_adjusted.iloc[0])
                    assert adjusted == pytest.approx(row["adjusted_pvalue"], rel=1e-9)
                assert block["family_size"] == len(slices)
    # the client's tidy frame holds the same numbers as the helper's, row for row
    tidy = breakdown_frame(ExperimentResults.model_validate(results))
    keys = ["slice", "metric", "variant"]
    merged = tidy.merge(table, on=keys, suffixes=("", "_log"), validate="one_to_one")
    assert len(merged) == len(tidy) == len(table)
    assert (merged.visitors == merged.visitors_log).all()
    for column in ("value", "relative_lift", "pvalue", "pvalue_adjusted", "srm_pvalue"):
        pd.testing.assert_series_equal(
            merged[column], merged[f"{column}_log"], check_names=False, rtol=1e-9, atol=1e-12
        )


def test_values_after_max_values_share_the_other_slice(client: TestClient) -> None:
    _traffic(client)
    response = client.get(
        f"/v1/experiments/{KEY}/results", params={"dimension": "returning"}, headers=AUTH
    )
    slices = {s["value"]: s for s in response.json()["breakdown"]["slices"]}
    # visitors without the attribute come first (i = 0), so "(none)" takes the only named slice
    assert set(slices) == {"(none)", "other"}
    assert slices["other"]["other"] is True
    assert slices["(none)"]["visitors"] == VISITORS // 4
    assert slices["other"]["visitors"] == VISITORS - VISITORS // 4


def test_an_unknown_dimension_gets_a_422_naming_it(client: TestClient) -> None:
    create_running(client, DEFINITION)
    response = client.get(
        f"/v1/experiments/{KEY}/results", params={"dimension": "colour"}, headers=AUTH
    )
    assert response.status_code == 422
    message = response.json()["message"]
    assert "'colour'" in message and "device" in message and "returning" in message


@pytest.mark.parametrize(
    ("metric", "needle"),
    [
        ({"name": "c", "kind": "conversion", "event": "x", "cap": 3}, "cap applies to mean"),
        ({"name": "m", "kind": "mean", "event": "x", "cap": -1}, "greater than 0"),
        ({"name": "m", "kind": "mean", "event": "x", "direction": "up"}, "'higher' or 'lower'"),
        ({"name": "m", "kind": "mean", "event": "x", "non_inferiority_margin": 0.02}, "guardrail"),
    ],
)
def test_bad_metric_fields_get_a_422_naming_them(
    client: TestClient, metric: dict[str, Any], needle: str
) -> None:
    definition = {
        **DEFINITION,
        "key": "bad-metric",
        "metrics": [DEFINITION["metrics"][0], metric],
    }
    response = client.post("/v1/experiments", json=definition, headers=AUTH)
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_more_than_five_dimensions_are_refused(client: TestClient) -> None:
    definition = {**DEFINITION, "key": "many-dims", "dimensions": [f"d{i}" for i in range(6)]}
    response = client.post("/v1/experiments", json=definition, headers=AUTH)
    assert response.status_code == 422
    assert "dimensions" in response.text
