"""The DuckDB views over an events export, on a small log written by hand.

Each view's columns and rows are checked against what the log says: attribute columns typed
from their values, per-visitor metric values computed as the store computes them, pre-exposure
events apart from credited ones, and a file database that another connection can open.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.definitions import Metric
from service.sql import load_log

METRICS = [
    Metric.model_validate(m)
    for m in (
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
        {"name": "cart_visits", "kind": "count", "event": "cart_view"},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "conversion"},
    )
]


def _log(path: Path) -> Path:
    rows = [
        ("exposure", "a", "control", 10, None, None, {"device": "mobile", "age": 31, "vip": True}),
        ("exposure", "b", "filters", 11, None, None, {"device": "desktop", "age": 40.5}),
        ("exposure", "c", "filters", 12, None, None, {"variant": "x", "vip": False}),
        ("exposure", "d", "control", 13, None, None, None),
        ("event", "a", "control", 20, "purchase", 10.5, None),
        ("event", "a", "control", 21, "purchase", 4.5, None),
        ("event", "b", "filters", 22, "cart_view", None, None),
        ("event", "b", "filters", 23, "cart_view", None, None),
        ("event", "c", "filters", 24, "purchase", 99.0, None),
        ("pre_exposure", "d", "control", 5, "purchase", 7.0, None),
    ]
    table = pa.table(
        {
            "experiment": ["e"] * len(rows),
            "type": [r[0] for r in rows],
            "visitor_id": [r[1] for r in rows],
            "variant": [r[2] for r in rows],
            "timestamp": pa.array([r[3] * 1000 for r in rows], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "event": [r[4] for r in rows],
            "value": pa.array([r[5] for r in rows], pa.float64()),
            "attributes": [None if r[6] is None else json.dumps(r[6]) for r in rows],
        }
    )
    out = path / "events.parquet"
    pq.write_table(table, out)
    return out


def test_views_read_the_log(tmp_path: Path) -> None:
    con = load_log(_log(tmp_path), METRICS)
    columns = {
        view: [(c[0], c[1]) for c in con.execute(f"DESCRIBE {view}").fetchall()]
        for view in ("exposures", "events", "visitors")
    }
    assert columns["exposures"] == [
        ("visitor_id", "VARCHAR"),
        ("variant", "VARCHAR"),
        ("ts", "TIMESTAMP WITH TIME ZONE"),
        ("age", "DOUBLE"),
        ("device", "VARCHAR"),
        ("attribute_variant", "VARCHAR"),
        ("vip", "BOOLEAN"),
    ]
    assert [c for c, _ in columns["events"]] == ["visitor_id", "variant", "event", "value", "ts"]
    assert [c for c, _ in columns["visitors"]][-3:] == ["conversion", "revenue", "cart_visits"]
    assert "aov" not in dict(columns["visitors"])

    visitors = con.execute(
        "SELECT visitor_id, variant, age, device, vip, conversion, revenue, cart_visits "
        "FROM visitors ORDER BY visitor_id"
    ).fetchall()
    assert visitors == [
        ("a", "control", 31.0, "mobile", True, 1, 15.0, 0),
        ("b", "filters", 40.5, "desktop", None, 0, 0.0, 2),
        ("c", "filters", None, None, False, 1, 99.0, 0),
        ("d", "control", None, None, None, 0, 0.0, 0),
    ]
    assert con.execute("SELECT count(*) FROM events").fetchone() == (5,)
    assert con.execute("SELECT visitor_id, value FROM pre_exposure_events").fetchall() == [
        ("d", 7.0)
    ]
    by_variant = con.execute(
        "SELECT variant, count(*), sum(conversion), sum(revenue) FROM visitors "
        "GROUP BY variant ORDER BY variant"
    ).fetchall()
    assert by_variant == [("control", 2, 1, 15.0), ("filters", 2, 1, 99.0)]
    con.close()


def test_a_file_database_opens_elsewhere(tmp_path: Path) -> None:
    database = tmp_path / "log.duckdb"
    database.write_text("an older file is replaced")
    load_log(_log(tmp_path), METRICS, database=database).close()
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM visitors").fetchone() == (4,)
        names = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        tables = {r[0] for r in names}
        assert {"log", "exposures", "events", "visitors", "pre_exposure_events"} <= tables


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(duckdb.IOException, match=r"nothing\.parquet"):
        load_log(tmp_path / "nothing.parquet", METRICS)


def test_visitors_caps_each_total_as_the_store_does(tmp_path: Path) -> None:
    capped = [
        Metric.model_validate(m)
        for m in (
            {"name": "revenue", "kind": "mean", "event": "purchase", "cap": 12.0},
            {"name": "cart_visits", "kind": "count", "event": "cart_view", "cap": 1},
        )
    ]
    con = load_log(_log(tmp_path), capped)
    rows = con.execute(
        "SELECT visitor_id, revenue, cart_visits FROM visitors ORDER BY visitor_id"
    ).fetchall()
    # a: 10.5 + 4.5 = 15 -> 12; b: two cart views -> 1; c: 99 -> 12; d: nothing
    assert rows == [("a", 12.0, 0), ("b", 0.0, 1), ("c", 12.0, 0), ("d", 0.0, 0)]
