"""Bad input gets a 4xx JSON error naming the problem, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.conftest import RedisTarget
from tests.service.conftest import AUTH, BUYAKILT, create_running


def _snapshot(redis_server: RedisTarget, prefix: str) -> dict[str, Any]:
    """Every key of this test's keyspace with its content (streams by length), on every master."""
    out: dict[str, Any] = {}
    for client in redis_server.masters():
        with client:
            out.update(_keys_of(client, prefix))
    return out


def _keys_of(client: redis.Redis, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*"):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        elif kind == "stream":
            out[key] = client.xlen(key)
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        else:
            out[key] = client.get(key)
    return out


@pytest.fixture
def running(client: TestClient) -> TestClient:
    create_running(client, BUYAKILT)
    client.get("/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": "known"})
    return client


def _assert_error(response: Any, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    text = response.text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        ({"experiment": "buyakilt-filters"}, ["visitor_id"]),
        ({"experiment": "buyakilt-filters", "visitor_id": ""}, ["visitor_id", "1-200"]),
        ({"experiment": "buyakilt-filters", "visitor_id": "x" * 201}, ["visitor_id"]),
        ({"experiment": "buyakilt-filters", "visitor_id": "a\nb"}, ["visitor_id", "control"]),
        ({"experiment": "Not A Key", "visitor_id": "v"}, ["experiment", "Not A Key"]),
    ],
)
def test_assign_rejects_malformed_parameters(
    running: TestClient,
    redis_server: RedisTarget,
    key_prefix: str,
    params: dict[str, str],
    needles: list[str],
) -> None:
    before = _snapshot(redis_server, key_prefix)
    _assert_error(running.get("/v1/assign", params=params), 422, *needles)
    assert _snapshot(redis_server, key_prefix) == before


def test_unknown_experiment_is_404(running: TestClient) -> None:
    response = running.get("/v1/assign", params={"experiment": "nope", "visitor_id": "v"})
    _assert_error(response, 404, "nope", "does not exist")
    response = running.post("/v1/assign", json={"visitor_id": "v", "experiments": ["nope"]})
    _assert_error(response, 404, "nope")
    _assert_error(running.get("/v1/experiments/nope/results", headers=AUTH), 404, "nope")


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('{"visitor_id": "known", "event": "purchase", "value": NaN}', ["value"]),
        ('{"visitor_id": "known", "event": "purchase", "value": Infinity}', ["value"]),
        ('{"visitor_id": "known", "event": "purchase", "value": 1e13}', ["value", "1000000000000"]),
        ('{"visitor_id": "known", "event": "purchase", "value": "ten"}', ["value", "ten"]),
        ('{"visitor_id": 17, "event": "purchase"}', ["visitor_id"]),
        ('{"visitor_id": "known"}', ["event", "Field required"]),
        ('{"visitor_id": "known", "event": "bad event!"}', ["event", "bad event!"]),
        ('{"visitor_id": "known", "event": "purchase", "event_id": "a b"}', ["event_id"]),
        ('{"visitor_id": "known", "event": "purchase", "extra": 1}', ["extra"]),
        (
            '{"visitor_id": "known", "event": "purchase", "timestamp": "2001-01-01T00:00:00Z"}',
            ["timestamp", "7 days"],
        ),
        ('{"visitor_id": "known", "event": "purchase"', ["body", "not valid JSON"]),
        ("[]", ["body"]),
    ],
)
def test_track_rejects_bad_events_and_writes_nothing(
    running: TestClient, redis_server: RedisTarget, key_prefix: str, body: str, needles: list[str]
) -> None:
    before = _snapshot(redis_server, key_prefix)
    response = running.post("/v1/track", content=body, headers={"Content-Type": "application/json"})
    _assert_error(response, 422, *needles)
    assert _snapshot(redis_server, key_prefix) == before


@pytest.mark.parametrize(
    ("attributes", "needles"),
    [
        (
            {f"a{i}": i for i in range(51)},
            ["attributes", "at most 50 keys", "got 51", "a0, a1"],
        ),
        (
            {"device": "mobile", "referrer": "r" * 257},
            ["attributes.referrer", "at most 256 characters", "'rrrr", "(257 characters)"],
        ),
        (
            {"tags": ["ok", "t" * 300]},
            ["attributes.tags", "at most 256 characters", "(300 characters)"],
        ),
        (
            {f"k{i}": "v" * 250 for i in range(17)},
            ["attributes", "at most 4096 bytes", "got 4394 bytes"],
        ),
    ],
)
def test_assign_refuses_attributes_over_the_limits_and_writes_nothing(
    running: TestClient,
    redis_server: RedisTarget,
    key_prefix: str,
    attributes: dict[str, Any],
    needles: list[str],
) -> None:
    before = _snapshot(redis_server, key_prefix)
    body = {"visitor_id": "big", "attributes": attributes}
    response = running.post("/v1/assign", json=body)
    _assert_error(response, 422, *needles)
    assert len(response.json()["message"]) < 600  # the value is shown truncated
    assert _snapshot(redis_server, key_prefix) == before


def test_attributes_at_the_limits_are_accepted(running: TestClient) -> None:
    attributes: dict[str, Any] = {f"k{i:02}": "v" * 60 for i in range(50)}  # 50 keys, 3.7 KB
    attributes["k00"] = "x" * 256
    response = running.post("/v1/assign", json={"visitor_id": "max", "attributes": attributes})
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] is True


def test_batch_with_one_bad_event_writes_none(
    running: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    good = {"visitor_id": "known", "event": "purchase", "value": 10}
    before = _snapshot(redis_server, key_prefix)
    response = running.post(
        "/v1/track/batch",
        content='{"events": [{"visitor_id": "known", "event": "purchase", "value": 10}, '
        '{"visitor_id": "known", "event": "purchase", "value": NaN}]}',
        headers={"Content-Type": "application/json"},
    )
    _assert_error(response, 422, "events.1.value")
    assert _snapshot(redis_server, key_prefix) == before
    response = running.post("/v1/track/batch", json={"events": [good] * 1001})
    _assert_error(response, 422, "events", "1000")
    assert _snapshot(redis_server, key_prefix) == before


def test_oversized_payload_is_413_and_writes_nothing(
    running: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    before = _snapshot(redis_server, key_prefix)
    huge = '{"visitor_id": "known", "event": "purchase", "pad": "' + "x" * 2_000_000 + '"}'
    response = running.post("/v1/track", content=huge, headers={"Content-Type": "application/json"})
    _assert_error(response, 413, "at most 1048576 bytes")

    def chunks() -> Any:  # no Content-Length: the limit still applies while reading
        yield b'{"visitor_id": "known", "event": "purchase", "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = running.post(
        "/v1/track", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _assert_error(response, 413, "at most")
    assert _snapshot(redis_server, key_prefix) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/experiments", None),
        ("POST", "/v1/experiments", BUYAKILT),
        ("GET", "/v1/experiments/buyakilt-filters/results", None),
        ("PATCH", "/v1/experiments/buyakilt-filters", {"status": "paused"}),
        ("DELETE", "/v1/experiments/buyakilt-filters", None),
    ],
)
def test_admin_endpoints_need_the_key(
    running: TestClient,
    redis_server: RedisTarget,
    key_prefix: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = _snapshot(redis_server, key_prefix)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-admin-key"}):
        response = running.request(method, path, json=body, headers=headers)
        _assert_error(response, 401, "Authorization: Bearer")
    assert _snapshot(redis_server, key_prefix) == before


@pytest.mark.parametrize(
    ("definition", "needles"),
    [
        ({**BUYAKILT, "coverage": 1.2}, ["coverage", "1.2", "less than or equal to 1"]),
        (
            {**BUYAKILT, "variants": [{"key": "a", "weight": 0.7}, {"key": "b", "weight": 0.7}]},
            ["weights must sum to 1, got 1.4"],
        ),
        (
            {
                **BUYAKILT,
                "metrics": [
                    *BUYAKILT["metrics"][:4],
                    {
                        "name": "aov",
                        "kind": "ratio",
                        "numerator": "revenue",
                        "denominator": "refunds",
                    },
                ],
            },
            ["unknown metric 'refunds'"],
        ),
        ({**BUYAKILT, "key": "Buy Kilt"}, ["key", "Buy Kilt"]),
        ({**BUYAKILT, "status": "running"}, ["status", "Extra inputs are not permitted"]),
    ],
)
def test_invalid_definitions_are_refused(
    client: TestClient,
    redis_server: RedisTarget,
    key_prefix: str,
    definition: dict[str, Any],
    needles: list[str],
) -> None:
    before = _snapshot(redis_server, key_prefix)
    _assert_error(client.post("/v1/experiments", json=definition, headers=AUTH), 422, *needles)
    assert _snapshot(redis_server, key_prefix) == before


def test_lifecycle_conflicts(running: TestClient) -> None:
    _assert_error(
        running.post("/v1/experiments", json=BUYAKILT, headers=AUTH), 409, "already exists"
    )
    path = "/v1/experiments/buyakilt-filters"
    _assert_error(
        running.patch(path, json={"status": "draft"}, headers=AUTH), 409, "'running' to 'draft'"
    )
    _assert_error(
        running.patch(path, json={"winner": "filters"}, headers=AUTH),
        422,
        "winner is set only together with status 'stopped'",
    )
    _assert_error(
        running.patch(path, json={"status": "stopped", "winner": "nobody"}, headers=AUTH),
        422,
        "winner must be one of",
    )
    _assert_error(running.patch(path, json={"status": "finished"}, headers=AUTH), 422, "status")
