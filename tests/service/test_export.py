"""The raw event log and its exports against the real Redis: complete, consistent, streamed.

Traffic is recorded through the store's own Lua scripts with simulated timestamps over several
days (as the demo does), so the log, the aggregates and the daily snapshots all have work to do:
three variants over four shards, purchases with values (some zero), cart views, an event no
metric reads, events from before a visitor's exposure, visitors never exposed, and retried event
ids. The exports are then read back through the HTTP API and checked against the aggregates.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import stats
from experiments.assignment import decide
from experiments.definitions import Experiment, Status, transition
from experiments.store import (
    LogPage,
    LogSnapshot,
    Store,
    TrackEvent,
    TrackOutcome,
    VariantTotals,
    day_of,
    encode_attributes,
)
from service.api.routers import export
from service.client import Client
from service.loops import run_sync
from tests.conftest import ADMIN_KEY, LiveServer, RedisTarget
from tests.service.conftest import AUTH, BUYAKILT
from tests.support.store import StoreRunner

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: a fixed "now", so days are reproducible

THREE_WAY: dict[str, Any] = {
    **BUYAKILT,
    "key": "kilts-three-way",
    "variants": [
        {"key": "control", "weight": 0.34},
        {"key": "filters", "weight": 0.33},
        {"key": "sort", "weight": 0.33},
    ],
    "shards": 4,
}


@dataclass
class Traffic:
    """What was sent, by outcome, to check the log against."""

    experiment: Experiment
    exposures: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    credited: list[tuple[str, str, str, int]] = field(default_factory=list)
    before_exposure: list[tuple[str, str, str, int]] = field(default_factory=list)


def _event(visitor: str, event: str, value: float, ms: int, event_id: str | None = None) -> Any:
    return TrackEvent(visitor, event, value, repr(value), ms, event_id)


async def _record(store: Store, definition: dict[str, Any], *, visitors: int, seed: int) -> Traffic:
    rng = np.random.default_rng(seed)
    start_s = (NOW_MS - 4 * DAY_MS) / 1000
    draft = Experiment.model_validate({**definition, "created_at": start_s})
    experiment = transition(draft, Status.RUNNING, now=start_s)
    experiment = await store.create_experiment(experiment)
    traffic = Traffic(experiment)
    batch = []
    for i in range(visitors):
        visitor = f"visitor,{i}" if i % 7 == 0 else f"v{i}"  # a comma, for the CSV quoting
        index = decide(experiment, visitor).variant_index
        if index is None:
            continue
        ms = int(NOW_MS - 4 * DAY_MS + rng.integers(0, 3 * DAY_MS))
        attributes = encode_attributes({"device": str(rng.choice(["mobile", "desktop"]))})
        traffic.exposures[visitor] = (experiment.variant_keys[index], ms, attributes)
        batch.append((visitor, index, ms, attributes))
    await store.record_exposure_batch(experiment, batch)

    events: list[tuple[Any, TrackOutcome | None]] = []
    for visitor, (_, exposed_ms, _) in traffic.exposures.items():
        for _ in range(int(rng.poisson(1.5))):
            kind = str(rng.choice(["purchase", "cart_view", "page_view"], p=[0.4, 0.4, 0.2]))
            value = round(float(rng.lognormal(3.5, 0.5)), 2) if kind == "purchase" else 0.0
            if kind == "purchase" and rng.random() < 0.1:
                value = 0.0
            ms = exposed_ms + int(rng.integers(1_000, DAY_MS))
            outcome = None if kind == "page_view" else TrackOutcome.CREDITED
            events.append((_event(visitor, kind, value, ms), outcome))
        if rng.random() < 0.3:
            kind = str(rng.choice(["purchase", "cart_view"]))
            ms = exposed_ms - int(rng.integers(60_000, 10 * DAY_MS))
            events.append((_event(visitor, kind, 25.5, ms), TrackOutcome.BEFORE_EXPOSURE))
    for i in range(30):
        events.append((_event(f"stranger{i}", "purchase", 9.99, NOW_MS - DAY_MS), None))
    retried = [e for e, o in events[:40] if o is TrackOutcome.CREDITED][:10]
    for n, event in enumerate(retried):
        ided = _event(event.visitor_id, event.event, event.value, event.timestamp_ms, f"id{n}")
        events.append((ided, TrackOutcome.CREDITED))
        events.append((ided, TrackOutcome.DUPLICATE))

    for lo in range(0, len(events), 500):
        chunk = events[lo : lo + 500]
        outcomes = await store.track([experiment], [e for e, _ in chunk])
        for (event, expected), got in zip(chunk, outcomes, strict=True):
            if expected is None:
                assert got.get(experiment.key, TrackOutcome.NOT_EXPOSED) is (
                    TrackOutcome.NOT_EXPOSED
                )
                continue
            assert got[experiment.key] is expected, (event, got)
            row = (event.visitor_id, event.event, event.value_text, event.timestamp_ms)
            if expected is TrackOutcome.CREDITED:
                traffic.credited.append(row)
            elif expected is TrackOutcome.BEFORE_EXPOSURE:
                traffic.before_exposure.append(row)
    return traffic


def _runner(redis: RedisTarget, prefix: str) -> StoreRunner:
    return StoreRunner(redis.url, prefix, cluster=redis.cluster)


@pytest.fixture
def traffic(redis_server: RedisTarget, key_prefix: str) -> Traffic:
    async def work(store: Store) -> Traffic:
        return await _record(store, THREE_WAY, visitors=600, seed=11)

    result: Traffic = _runner(redis_server, key_prefix)(work)
    return result


def _stored(redis: RedisTarget, prefix: str, experiment: Experiment) -> Any:
    async def work(store: Store) -> Any:
        return await store.totals(experiment), await store.daily_totals(experiment)

    return _runner(redis, prefix)(work)


def _export(client: TestClient, key: str, fmt: str, **params: Any) -> Any:
    response = client.get(
        f"/v1/experiments/{key}/events", params={"format": fmt, **params}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response


def _frame(response: Any, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        frame = pd.read_parquet(io.BytesIO(response.content))
    elif fmt == "csv":
        frame = pd.read_csv(
            io.StringIO(response.text),
            dtype={"visitor_id": str, "value": str},
            keep_default_na=False,
            na_values={"value": [""]},
        )
        frame["value"] = frame["value"].astype(float)
    else:
        frame = pd.DataFrame([json.loads(line) for line in response.text.splitlines()])
        frame["attributes"] = [
            None if a is None else encode_attributes(a) for a in frame.attributes
        ]
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    for column in ("event", "attributes"):
        frame[column] = pd.Series(
            [None if pd.isna(v) or v == "" else v for v in frame[column]], dtype=object
        )
    return frame


# -- the log holds exactly what was recorded --------------------------------------------------


def test_log_holds_every_exposure_and_credited_event_with_their_fields(
    client: TestClient, traffic: Traffic
) -> None:
    frame = _frame(_export(client, THREE_WAY["key"], "parquet", pre_exposure="false"), "parquet")
    assert set(frame.columns) == {
        "experiment",
        "type",
        "visitor_id",
        "variant",
        "timestamp",
        "event",
        "value",
        "attributes",
    }
    assert (frame.experiment == THREE_WAY["key"]).all()
    exposures = frame[frame.type == "exposure"]
    assert {
        row.visitor_id: (row.variant, int(row.timestamp.timestamp() * 1000), row.attributes)
        for row in exposures.itertuples()
    } == traffic.exposures
    events = frame[frame.type == "event"]
    assert sorted(
        (r.visitor_id, r.event, repr(r.value), int(r.timestamp.timestamp() * 1000))
        for r in events.itertuples()
    ) == sorted(traffic.credited)
    variant_of = {v: e[0] for v, e in traffic.exposures.items()}
    assert (events.variant == events.visitor_id.map(variant_of)).all()
    assert set(frame.type) == {"exposure", "event"}


def _replay(frame: pd.DataFrame, experiment: Experiment) -> dict[str, list[VariantTotals]]:
    """Recompute the daily increments from the log in its order, as track.lua applies them."""
    by_name = {m.name: m for m in experiment.metrics}
    variants = experiment.variant_keys
    daily: dict[str, list[VariantTotals]] = defaultdict(lambda: [VariantTotals() for _ in variants])
    state: dict[tuple[str, str], tuple[int, float]] = defaultdict(lambda: (0, 0.0))

    def value(metric: Any, count: int, total: float) -> float:
        kind = metric.kind.value
        return float(count > 0) if kind == "conversion" else total if kind == "mean" else count

    def add(target: dict[str, float], name: str, delta: float) -> None:
        target[name] = target.get(name, 0.0) + delta

    for row in frame.itertuples():
        ms = int(row.timestamp.timestamp() * 1000)
        day = daily[day_of(ms)][variants.index(row.variant)]
        if row.type == "exposure":
            day.n += 1
            continue
        before = {e: state[(row.visitor_id, e)] for e in experiment.events()}
        count, total = before[row.event]
        after = {**before, row.event: (count + 1, total + row.value)}
        state[(row.visitor_id, row.event)] = after[row.event]
        for metric in experiment.metrics:
            if metric.kind.value == "ratio":
                num, den = by_name[metric.numerator or ""], by_name[metric.denominator or ""]
                if row.event not in (num.event, den.event):
                    continue
                x0, y0 = (value(m, *before[m.event or ""]) for m in (num, den))
                x1, y1 = (value(m, *after[m.event or ""]) for m in (num, den))
                add(day.cross, metric.name, x1 * y1 - x0 * y0)
            elif metric.event == row.event:
                m0, m1 = value(metric, *before[row.event]), value(metric, *after[row.event])
                add(day.sums, metric.name, m1 - m0)
                add(day.sum_squares, metric.name, m1 * m1 - m0 * m0)
    return daily


def _assert_same_totals(mine: VariantTotals, stored: VariantTotals, label: str) -> None:
    assert mine.n == stored.n, label
    for name in ("sums", "sum_squares", "cross"):
        got, want = getattr(mine, name), getattr(stored, name)
        for metric in set(got) | set(want):
            a, b = got.get(metric, 0.0), want.get(metric, 0.0)
            assert a == pytest.approx(b, rel=1e-12, abs=1e-9), (label, name, metric, a, b)


def test_counts_recomputed_from_the_log_equal_the_aggregates(
    client: TestClient, traffic: Traffic, redis_server: RedisTarget, key_prefix: str
) -> None:
    experiment = traffic.experiment
    totals, daily = _stored(redis_server, key_prefix, experiment)
    # Every format, read back into per-visitor rows, gives the stored totals.
    definition = client.get(f"/v1/experiments/{experiment.key}", headers=AUTH).json()
    metrics = stats.definition_metrics(definition["metrics"])
    for fmt in ("parquet", "csv", "json"):
        frame = _frame(_export(client, experiment.key, fmt), fmt)
        rows = stats.visitor_rows(frame, metrics=metrics)
        assert len(rows) == sum(t.n for t in totals) == len(traffic.exposures)
        for variant, stored in zip(experiment.variant_keys, totals, strict=True):
            mine = rows[rows.variant == variant]
            assert len(mine) == stored.n
            for metric in experiment.metrics:
                if metric.kind.value == "ratio":
                    x, y = mine[metric.numerator], mine[metric.denominator]
                    assert float((x * y).sum()) == pytest.approx(stored.cross[metric.name])
                    continue
                column = mine[metric.name]
                if metric.kind.value in ("conversion", "count"):  # whole numbers: exactly
                    assert int(column.sum()) == stored.sums[metric.name], (fmt, metric.name)
                    assert int((column**2).sum()) == stored.sum_squares[metric.name]
                else:
                    assert float(column.sum()) == pytest.approx(stored.sums[metric.name], rel=1e-12)
                    assert float((column**2).sum()) == pytest.approx(
                        stored.sum_squares[metric.name], rel=1e-12
                    )
    # Replaying the log in its order gives every day's increments.
    replayed = _replay(
        _frame(_export(client, experiment.key, "csv", pre_exposure="false"), "csv"), experiment
    )
    assert sorted(replayed) == [day for day, _ in daily]
    assert len(daily) >= 4
    for day, stored_day in daily:
        for variant, mine, stored in zip(
            experiment.variant_keys, replayed[day], stored_day, strict=True
        ):
            _assert_same_totals(mine, stored, f"{day} {variant}")


def test_the_three_formats_hold_the_same_rows(client: TestClient, traffic: Traffic) -> None:
    frames = [
        _frame(_export(client, traffic.experiment.key, fmt), fmt)
        .sort_values(["type", "visitor_id", "timestamp", "event"])
        .reset_index(drop=True)
        for fmt in ("parquet", "csv", "json")
    ]
    assert len(frames[0]) > 1000
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other, check_dtype=False)


def test_pre_exposure_rows_are_the_metric_events_exposed_visitors_had_before(
    client: TestClient, traffic: Traffic
) -> None:
    frame = _frame(_export(client, traffic.experiment.key, "parquet"), "parquet")
    before = frame[frame.type == "pre_exposure"]
    assert sorted(
        (r.visitor_id, r.event, repr(r.value), int(r.timestamp.timestamp() * 1000))
        for r in before.itertuples()
    ) == sorted(traffic.before_exposure)
    assert len(before) > 50
    variant_of = {v: e[0] for v, e in traffic.exposures.items()}
    assert (before.variant == before.visitor_id.map(variant_of)).all()
    # The covariate columns hold those events, per visitor and metric.
    definition = client.get(f"/v1/experiments/{traffic.experiment.key}", headers=AUTH).json()
    rows = stats.visitor_rows(frame, metrics=stats.definition_metrics(definition["metrics"]))
    purchases = before[before.event == "purchase"].groupby("visitor_id").size()
    orders_pre = rows.set_index("visitor_id")["orders_pre"]
    assert orders_pre[purchases.index].tolist() == purchases.tolist()
    assert int(orders_pre.sum()) == int(purchases.sum())
    assert rows["revenue_pre"].sum() == pytest.approx(25.5 * purchases.sum())


def test_lookback_days_bounds_the_pre_exposure_window(client: TestClient, traffic: Traffic) -> None:
    frame = _frame(_export(client, traffic.experiment.key, "csv", lookback_days=2), "csv")
    before = frame[frame.type == "pre_exposure"]
    exposed_at = {v: e[1] for v, e in traffic.exposures.items()}
    expected = sorted(
        row for row in traffic.before_exposure if row[3] >= exposed_at[row[0]] - 2 * DAY_MS
    )
    assert 0 < len(expected) < len(traffic.before_exposure)
    assert (
        sorted(
            (r.visitor_id, r.event, repr(r.value), int(r.timestamp.timestamp() * 1000))
            for r in before.itertuples()
        )
        == expected
    )


def test_the_client_passes_lookback_days_on(traffic: Traffic, live_server: LiveServer) -> None:
    # The Python client against the service on the same store: events() must ask for the
    # window it was given, not the default 30 days.
    exposed_at = {v: e[1] for v, e in traffic.exposures.items()}
    within_two_days = [
        row for row in traffic.before_exposure if row[3] >= exposed_at[row[0]] - 2 * DAY_MS
    ]
    assert 0 < len(within_two_days) < len(traffic.before_exposure)
    with Client(live_server.url, api_key=ADMIN_KEY) as python:
        for days, expected in ((2, within_two_days), (30, traffic.before_exposure)):
            frame = python.events(traffic.experiment.key, lookback_days=days)
            assert int((frame["type"] == "pre_exposure").sum()) == len(expected), days


def test_recomputed_comparisons_equal_the_results_read_out(
    client: TestClient, traffic: Traffic
) -> None:
    key = traffic.experiment.key
    definition = client.get(f"/v1/experiments/{key}", headers=AUTH).json()
    results = client.get(f"/v1/experiments/{key}/results", headers=AUTH).json()
    frame = _frame(_export(client, key, "parquet"), "parquet")
    rows = stats.visitor_rows(frame, metrics=stats.definition_metrics(definition["metrics"]))
    from_log = stats.compare_frame(
        rows, metrics=stats.definition_metrics(definition["metrics"]), control="control"
    )
    summary = client.get(f"/v1/experiments/{key}/summary", headers=AUTH).json()
    from_summary = stats.compare_summaries(
        stats.summarise_aggregates(pd.DataFrame(summary["rows"]), metric_column="metric"),
        control="control",
    )
    compared = 0
    for block in results["metrics"]:
        for row in block["variants"]:
            for table in (from_log, from_summary):
                mine = table[(table.metric == block["name"]) & (table.variant == row["variant"])]
                assert int(mine.visitors.iloc[0]) == row["visitors"]
                if row["variant"] == "control":
                    continue
                for theirs, ours in (
                    ("pvalue", "pvalue"),
                    ("absolute_lift", "absolute_lift"),
                    ("relative_lift", "relative_lift"),
                ):
                    assert float(mine[ours].iloc[0]) == pytest.approx(row[theirs], abs=1e-9)
                lo, hi = row["absolute_ci"]
                assert float(mine.absolute_ci_low.iloc[0]) == pytest.approx(lo, abs=1e-9)
                assert float(mine.absolute_ci_high.iloc[0]) == pytest.approx(hi, abs=1e-9)
                compared += 1
    assert compared == 2 * 2 * len(definition["metrics"])


# -- summary -----------------------------------------------------------------------------------


def test_summary_holds_the_stored_statistics_and_its_days_add_up(
    client: TestClient, traffic: Traffic, redis_server: RedisTarget, key_prefix: str
) -> None:
    key = traffic.experiment.key
    totals, daily = _stored(redis_server, key_prefix, traffic.experiment)
    body = client.get(f"/v1/experiments/{key}/summary", headers=AUTH).json()
    assert body["variants"] == ["control", "filters", "sort"]
    frame = pd.DataFrame(body["rows"], columns=body["columns"])
    assert len(frame) == 3 * 5
    for (variant, metric), row in frame.set_index(["variant", "metric"]).iterrows():
        stored = totals[body["variants"].index(variant)]
        assert row.n == stored.n
        if row.kind == "ratio":
            assert row.cross_sum == stored.cross[metric]
            assert row.numerator_sum == stored.sums["revenue"]
            assert row.denominator_sum_squares == stored.sum_squares["orders"]
            assert math.isnan(row["sum"])
        else:
            assert row["sum"] == stored.sums[metric]
            assert row.sum_squares == stored.sum_squares[metric]
    as_csv = client.get(f"/v1/experiments/{key}/summary", params={"format": "csv"}, headers=AUTH)
    assert as_csv.headers["content-type"].startswith("text/csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(as_csv.text)), frame, check_dtype=False)

    days = client.get(
        f"/v1/experiments/{key}/summary", params={"daily": "true"}, headers=AUTH
    ).json()
    by_day = pd.DataFrame(days["rows"], columns=days["columns"])
    expected_days = [
        datetime.strptime(d, "%Y%m%d").replace(tzinfo=UTC).date().isoformat() for d, _ in daily
    ]
    assert sorted(by_day.day.unique()) == expected_days
    numbers = ["n", "sum", "sum_squares", "cross_sum"]
    added = by_day.groupby(["variant", "metric"], sort=False)[numbers].sum(min_count=1)
    overall = frame.set_index(["variant", "metric"])[numbers]
    pd.testing.assert_frame_equal(added.loc[overall.index], overall, check_dtype=False, rtol=1e-12)


# -- the activity log ------------------------------------------------------------------------


def test_activity_log_counts_a_retried_event_once_even_after_a_script_flush(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        start_s = (NOW_MS - DAY_MS) / 1000
        draft = Experiment.model_validate({**BUYAKILT, "created_at": start_s})
        experiment = transition(draft, Status.RUNNING, now=start_s)
        experiment = await store.create_experiment(experiment)
        await store.record_exposure(experiment, "alice", 0, now_ms=NOW_MS - DAY_MS)
        purchase = _event("alice", "purchase", 10.0, NOW_MS - 1000, "order-1")
        await store.track([experiment], [purchase])
        await store.client.script_flush()
        # Both scripts are gone: the retry reloads them and runs each call exactly once.
        outcome = await store.track(
            [experiment], [purchase, _event("alice", "purchase", 5.0, NOW_MS)]
        )
        assert [o[experiment.key] for o in outcome] == [
            TrackOutcome.DUPLICATE,
            TrackOutcome.CREDITED,
        ]
        await store.client.script_flush()
        # Only the activity script is needed (no experiment reads page views) after a flush.
        await store.track([experiment], [_event("alice", "page_view", 0.0, NOW_MS)])
        control, _ = await store.totals(experiment)
        assert control.n == 1 and control.sums["orders"] == 2 and control.sums["revenue"] == 15.0
        activity = []
        for shard in range(store.activity_shards):
            activity += await store.activity_entries(shard)
        assert sorted((event, value) for _, (_, _, event, value) in activity) == [
            ("page_view", "0.0"),
            ("purchase", "10.0"),
            ("purchase", "5.0"),
        ]

    _runner(redis_server, key_prefix)(work)


def test_no_log_when_the_cap_is_zero(redis_server: RedisTarget, key_prefix: str) -> None:
    async def work(store: Store) -> None:
        draft = Experiment.model_validate(BUYAKILT)
        experiment = transition(draft, Status.RUNNING, now=NOW_MS / 1000)
        experiment = await store.create_experiment(experiment)
        await store.record_exposure(experiment, "bob", 1, now_ms=NOW_MS)
        await store.track([experiment], [_event("bob", "purchase", 3.0, NOW_MS + 5)])
        _, filters = await store.totals(experiment)
        assert filters.n == 1 and filters.sums["orders"] == 1
        snapshot = await store.log_snapshot(experiment)
        assert snapshot.exposures == 1 and snapshot.log_entries == 0
        assert set(snapshot.log_tails) == set(snapshot.activity_tails) == {None}

    _runner(redis_server, key_prefix)(work, log_max_length=0)
    kinds = set()
    for plain in redis_server.masters():
        with plain:
            kinds |= {plain.type(k) for k in plain.scan_iter(f"{key_prefix}:*")}
    assert "hash" in kinds and "stream" not in kinds


def test_a_trimmed_log_is_reported(
    client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    """With a cap far below the traffic the oldest entries go, and the export says so."""

    async def work(store: Store) -> Traffic:
        return await _record(store, {**BUYAKILT, "shards": 1}, visitors=400, seed=3)

    _runner(redis_server, key_prefix)(work, log_max_length=50)
    response = _export(client, "buyakilt-filters", "csv", pre_exposure="false")
    frame = _frame(response, "csv")
    counted = int(response.headers["x-abacus-exposures"])
    assert (frame.type == "exposure").sum() < counted
    definition = client.get("/v1/experiments/buyakilt-filters", headers=AUTH).json()
    with pytest.warns(stats.IncompleteLogWarning, match="no exposure row"):
        stats.visitor_rows(frame, metrics=stats.definition_metrics(definition["metrics"]))


# -- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field", "needles"),
    [
        ("events", {"format": "xlsx"}, "format", ["'parquet', 'csv' or 'json'", "xlsx"]),
        ("events", {"format": "PARQUET"}, "format", ["'parquet', 'csv' or 'json'"]),
        ("events", {"pre_exposure": "maybe"}, "pre_exposure", ["boolean"]),
        ("events", {"row_group_size": "10"}, "row_group_size", ["1000"]),
        ("events", {"lookback_days": "0"}, "lookback_days", ["greater than or equal to 1"]),
        ("summary", {"format": "parquet"}, "format", ["'json' or 'csv'", "parquet"]),
        ("summary", {"daily": "often"}, "daily", ["boolean"]),
    ],
)
def test_bad_export_parameters_get_a_clear_422(
    client: TestClient, path: str, params: dict[str, str], field: str, needles: list[str]
) -> None:
    client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    response = client.get(f"/v1/experiments/buyakilt-filters/{path}", params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    (detail,) = body["details"]
    assert detail["field"] == field
    assert detail["value"] == next(iter(params.values()))
    for needle in needles:
        assert needle in response.text


@pytest.mark.parametrize("path", ["events", "summary"])
def test_export_needs_a_known_experiment_and_the_admin_key(client: TestClient, path: str) -> None:
    missing = client.get(f"/v1/experiments/no-such/{path}", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["message"] == "experiment 'no-such' does not exist"
    client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    refused = client.get(f"/v1/experiments/buyakilt-filters/{path}")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"


def test_an_experiment_without_traffic_exports_just_the_header(client: TestClient) -> None:
    client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    csv_text = _export(client, "buyakilt-filters", "csv").text
    assert csv_text == "experiment,type,visitor_id,variant,timestamp,event,value,attributes\n"
    assert _export(client, "buyakilt-filters", "json").text == ""
    empty = _frame(_export(client, "buyakilt-filters", "parquet"), "parquet")
    assert len(empty) == 0 and "timestamp" in empty.columns
    disposition = _export(client, "buyakilt-filters", "parquet").headers["content-disposition"]
    assert disposition == "attachment; filename*=UTF-8''buyakilt-filters-events.parquet"


def test_the_client_imports_neither_fastapi_nor_redis() -> None:
    code = (
        "import sys; from service.client import Client; Client('http://127.0.0.1:9').close(); "
        "import pandas, pyarrow; "
        "bad = [m for m in ('fastapi', 'starlette', 'redis', 'uvicorn', 'experiments') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- bounded memory, deterministically ----------------------------------------------------------


class _GeneratedLog:
    """A store stand-in whose one log shard yields ``pages`` full pages made up on request."""

    def __init__(self, pages: int) -> None:
        self.pages = pages

    async def log_page(
        self, experiment: Experiment, shard: int, *, after: str | None, until: str, count: int
    ) -> LogPage:
        index = 0 if after is None else int(after.split("-")[0]) + 1
        first = index * count
        return LogPage(
            last_id=f"{index}-0",
            scanned=count,
            kinds=["event"] * count,
            visitors=[f"visitor-{first + i:09d}" for i in range(count)],
            variants=["control", "filters"] * (count // 2),
            timestamps_ms=list(range(NOW_MS + first, NOW_MS + first + count)),
            events=["purchase"] * count,
            values=[f"{(first + i) % 9973 / 100}" for i in range(count)],
            attributes=[None] * count,
        )


def _held_while_streaming(fmt: str, pages: int) -> tuple[int, int]:
    """Peak Python memory (tracemalloc) and largest Arrow allocation seen between chunks."""
    experiment = Experiment.model_validate(BUYAKILT)
    snapshot = LogSnapshot(
        log_tails=[f"{pages - 1}-0"], activity_tails=[], exposures=0, log_entries=0
    )
    encoders: dict[str, Callable[[], Any]] = {
        "parquet": lambda: export._ParquetEncoder(experiment.key, 2 * export.PAGE_SIZE),
        "csv": lambda: export._CsvEncoder(experiment.key),
        "json": lambda: export._JsonLinesEncoder(experiment.key),
    }
    store: Any = _GeneratedLog(pages)
    arrow_bytes = 0
    written = 0

    async def run() -> None:
        nonlocal arrow_bytes, written
        stream = export._stream(store, experiment, snapshot, encoders[fmt](), None)
        async for chunk in stream:
            written += len(chunk)
            arrow_bytes = max(arrow_bytes, pa.total_allocated_bytes())

    tracemalloc.start()
    try:
        run_sync(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written > pages * 1000
    return peak, arrow_bytes


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_streaming_holds_a_page_and_a_row_group_whatever_the_log_length(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PAGE_SIZE", 2_000)
    short_python, short_arrow = _held_while_streaming(fmt, pages=4)
    long_python, long_arrow = _held_while_streaming(fmt, pages=20)
    # Five times the rows; holding them would take five times the memory, streaming takes the
    # same: one page being encoded and, for Parquet, one row group (two pages) pending.
    assert long_python < 1.3 * short_python, (short_python, long_python)
    assert long_arrow < 1.3 * short_arrow + 100_000, (short_arrow, long_arrow)
