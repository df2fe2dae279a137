"""Input an attacker or a careless client sends: refused with a 4xx naming it, or shown literally.

Each case here was a defect once: a ``$`` in a name broke every page (matplotlib read it as
maths), a lone surrogate answered 500, JSON strings and booleans were read as numbers, NaN was
stored in the raw log, bytes that are not UTF-8 merged visitors, naive timestamps were read in
the server's local time, and CSV cells starting like a formula reached spreadsheets as formulas.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.report.charts import LiftRow, lift_chart
from tests.conftest import RedisTarget
from tests.service.conftest import AUTH, BUYAKILT, create_running
from tests.service.test_bad_input import _assert_error, _snapshot

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def running(client: TestClient) -> TestClient:
    create_running(client, BUYAKILT)
    client.get("/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": "known"})
    return client


@pytest.mark.parametrize("narrow", [False, True], ids=["wide", "narrow"])
def test_chart_labels_are_text_not_mathtext(narrow: bool) -> None:
    svg = lift_chart(
        [
            LiftRow(label="B $x^$", lift=0.1, interval=(0.0, 0.2), tone="winning"),
            LiftRow(label="$5 vs $10", lift=None, interval=None, tone="not_enough_data"),
        ],
        chart_id="dollars",
        title="lifts",
        level="95%",
        narrow=narrow,
    )
    assert "B $x^$" in svg
    assert "$5 vs $10" in svg


def test_a_dollar_in_a_variant_name_keeps_every_page_up(client: TestClient) -> None:
    definition: dict[str, Any] = {
        **BUYAKILT,
        "variants": [
            {"key": "control", "name": "$5 vs $10", "weight": 0.34},
            {"key": "b", "name": "B $x^$", "weight": 0.33},
            {"key": "c", "name": "C $\\frac{1}{0}$", "weight": 0.33},
        ],
    }
    create_running(client, definition)
    for i in range(30):
        client.get("/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": f"v{i}"})
    report = client.get("/experiments/buyakilt-filters", headers=AUTH)
    assert report.status_code == 200, report.text[-2000:]
    assert "B $x^$" in report.text
    assert "C $\\frac{1}{0}$" in report.text
    dashboard = client.get("/", headers=AUTH)
    assert dashboard.status_code == 200, dashboard.text[-2000:]


@pytest.mark.parametrize(
    ("path", "body", "needles"),
    [
        ("/v1/track", '{"visitor_id": "\\ud800", "event": "x"}', ["visitor_id", "surrogate"]),
        (
            "/v1/track/batch",
            '{"events": [{"visitor_id": "a\\udfffb", "event": "x"}]}',
            ["events.0.visitor_id", "surrogate", "\\\\udfff"],
        ),
        ("/v1/assign", '{"visitor_id": "\\ud83d"}', ["visitor_id", "surrogate"]),
        (
            "/v1/assign",
            '{"visitor_id": "v", "attributes": {"ref": "\\ud800"}}',
            ["attributes", "surrogate"],
        ),
        (
            "/v1/assign",
            '{"visitor_id": "v", "attributes": {"\\ud800": "x"}}',
            ["attributes", "surrogate"],
        ),
        ("/v1/assign", '{"visitor_id": "v", "attributes": {"x": NaN}}', ["attributes", "NaN"]),
        (
            "/v1/assign",
            '{"visitor_id": "v", "attributes": {"x": [1, -Infinity]}}',
            ["attributes", "finite"],
        ),
        ("/v1/assign", '{"visitor_id": "v", "attributes": {"x": "1"}}', None),
        ("/v1/track", '{"visitor_id": "known", "event": "purchase", "value": "12.5"}', ["value"]),
        ("/v1/track", '{"visitor_id": "known", "event": "purchase", "value": true}', ["value"]),
        (
            "/v1/track",
            '{"visitor_id": "known", "event": "purchase", "timestamp": "2026-01-01T10:00:00"}',
            ["timestamp", "timezone"],
        ),
    ],
)
def test_hostile_json_is_refused_and_writes_nothing(
    running: TestClient,
    redis_server: RedisTarget,
    key_prefix: str,
    path: str,
    body: str,
    needles: list[str] | None,
) -> None:
    before = _snapshot(redis_server, key_prefix)
    response = running.post(path, content=body.encode(), headers=JSON)
    if needles is None:  # the control case: a string attribute stays a string and is accepted
        assert response.status_code == 200, response.text
        return
    _assert_error(response, 422, *needles)
    assert _snapshot(redis_server, key_prefix) == before


def test_numbers_and_aware_timestamps_are_still_accepted(running: TestClient) -> None:
    for value in (12.5, 3, 0, -2):
        body = {"visitor_id": "known", "event": "purchase", "value": value}
        assert running.post("/v1/track", json=body).status_code == 200
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).replace(microsecond=0)
    for text in (stamp.isoformat(), stamp.isoformat().replace("+00:00", "Z")):
        body = {"visitor_id": "known", "event": "purchase", "timestamp": text}
        assert running.post("/v1/track", json=body).status_code == 200, text
    body = {"visitor_id": "known", "event": "purchase", "timestamp": int(stamp.timestamp())}
    assert running.post("/v1/track", json=body).status_code == 200


def test_a_get_visitor_id_that_is_not_utf8_is_refused_not_merged(
    running: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    before = _snapshot(redis_server, key_prefix)
    for raw in ("%FF", "a%C3", "%ED%A0%80"):
        response = running.get(f"/v1/assign?experiment=buyakilt-filters&visitor_id={raw}")
        _assert_error(response, 422, "visitor_id", "not valid UTF-8")
    assert _snapshot(redis_server, key_prefix) == before
    # a real U+FFFD, sent as its UTF-8 bytes, is an ordinary character
    ok = running.get("/v1/assign?experiment=buyakilt-filters&visitor_id=%EF%BF%BD")
    assert ok.status_code == 200, ok.text


def test_csv_cells_that_look_like_formulas_are_neutralised(running: TestClient) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "plain"]
    for visitor in hostile:
        response = running.post(
            "/v1/assign", json={"visitor_id": visitor, "attributes": {"note": "=1+1"}}
        )
        assert response.status_code == 200, response.text
        track = {"visitor_id": visitor, "event": "purchase", "value": -5}
        assert running.post("/v1/track", json=track).status_code == 200
    response = running.get(
        "/v1/experiments/buyakilt-filters/events", params={"format": "csv"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    visitors = {row["visitor_id"] for row in rows}
    assert {"'" + v for v in hostile[:-1]} | {"plain", "known"} == visitors
    for row in rows:
        assert not row["visitor_id"].startswith(("=", "+", "-", "@", "\t"))
        assert not row["attributes"].startswith(("=", "+", "-", "@"))
    values = {row["value"] for row in rows if row["type"] == "event"}
    assert values == {"-5.0"}  # numbers stay numbers
