"""Assignment and tracking through HTTP against the real Redis."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis
from fastapi.testclient import TestClient

from experiments.assignment import decide
from experiments.definitions import Experiment
from service.api.app import YOUNG_COLLECTION_THRESHOLD, create_app
from service.settings import Settings
from tests.service.conftest import AUTH, BUYAKILT, create_running


def _assign(client: TestClient, visitor: str, key: str = "buyakilt-filters") -> str | None:
    response = client.get("/v1/assign", params={"experiment": key, "visitor_id": visitor})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recorded"] is True
    variant: str | None = body["variant"]
    return variant


def _results(client: TestClient, key: str = "buyakilt-filters") -> dict:  # type: ignore[type-arg]
    response = client.get(f"/v1/experiments/{key}/results", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _metric(results: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(m for m in results["metrics"] if m["name"] == name)


def test_same_visitor_always_gets_the_same_variant(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    for i in range(50):
        first = _assign(client, f"visitor-{i}")
        assert {_assign(client, f"visitor-{i}") for _ in range(3)} == {first}
        post = client.post("/v1/assign", json={"visitor_id": f"visitor-{i}"}).json()
        assert post["assignments"] == {"buyakilt-filters": first}
    results = _results(client)
    assert sum(results["srm"]["visitors"].values()) == 50


def test_variant_equals_the_pure_hash(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    experiment = Experiment.model_validate({**BUYAKILT, "status": "running"})
    for i in range(200):
        index = decide(experiment, f"u{i}").variant_index
        assert index is not None
        assert _assign(client, f"u{i}") == experiment.variant_keys[index]


def test_draft_and_paused_experiments_enrol_nobody(client: TestClient) -> None:
    client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    assert (
        client.get(
            "/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": "a"}
        ).json()["variant"]
        is None
    )
    client.patch("/v1/experiments/buyakilt-filters", json={"status": "running"}, headers=AUTH)
    client.patch("/v1/experiments/buyakilt-filters", json={"status": "paused"}, headers=AUTH)
    body = client.get(
        "/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": "a"}
    ).json()
    assert body["variant"] is None
    assert _results(client)["srm"]["visitors"] == {"control": 0, "filters": 0}


def test_stopped_experiment_serves_the_winner_without_recording(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    response = client.patch(
        "/v1/experiments/buyakilt-filters",
        json={"status": "stopped", "winner": "filters"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["winner"] == "filters"
    for i in range(20):
        body = client.get(
            "/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": f"s{i}"}
        ).json()
        assert body["variant"] == "filters"
    assert _results(client)["srm"]["visitors"] == {"control": 0, "filters": 0}


def test_changing_weights_of_a_running_experiment_is_refused(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    before = {f"w{i}": _assign(client, f"w{i}") for i in range(100)}
    response = client.patch(
        "/v1/experiments/buyakilt-filters",
        json={"variants": [{"key": "control", "weight": 0.2}, {"key": "filters", "weight": 0.8}]},
        headers=AUTH,
    )
    assert response.status_code == 409
    assert "variants" in response.json()["message"]
    assert {v: _assign(client, v) for v in before} == before


def test_ramping_coverage_never_moves_an_enrolled_visitor(client: TestClient) -> None:
    create_running(client, {**BUYAKILT, "coverage": 0.2})
    visitors = [f"r{i}" for i in range(600)]
    at_20 = {v: _assign(client, v) for v in visitors}
    enrolled = {v: x for v, x in at_20.items() if x is not None}
    assert 60 < len(enrolled) < 180
    for coverage in (0.5, 1.0):
        response = client.patch(
            "/v1/experiments/buyakilt-filters", json={"coverage": coverage}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        now = {v: _assign(client, v) for v in visitors}
        assert {v: now[v] for v in enrolled} == enrolled
    assert all(x is not None for x in now.values())
    # Ramping down keeps the recorded visitors where they are too (sticky).
    client.patch("/v1/experiments/buyakilt-filters", json={"coverage": 0.1}, headers=AUTH)
    assert {v: _assign(client, v) for v in visitors} == now


def test_one_request_for_two_experiments_follows_decide_and_counts_exactly(
    client: TestClient,
) -> None:
    # The split's frequencies are the property tests' job (tests/experiments); here each
    # answer of POST /v1/assign for several experiments at once is decide()'s, and what the
    # read-out counts is exactly what was answered.
    skewed = {
        **BUYAKILT,
        "key": "skewed",
        "coverage": 0.8,
        "variants": [{"key": "control", "weight": 0.3}, {"key": "filters", "weight": 0.7}],
    }
    create_running(client, BUYAKILT)
    create_running(client, skewed)
    experiments = [
        Experiment.model_validate({**d, "status": "running"}) for d in (BUYAKILT, skewed)
    ]
    expected: dict[str, Counter[str | None]] = {e.key: Counter() for e in experiments}
    for i in range(600):
        visitor = f"split-{i}"
        body = client.post(
            "/v1/assign",
            json={"visitor_id": visitor, "experiments": [e.key for e in experiments]},
        ).json()
        assert body["recorded"] is True
        answers = {e.key: decide(e, visitor).variant for e in experiments}
        assert body["assignments"] == answers, visitor
        for key, variant in answers.items():
            expected[key][variant] += 1
    assert expected["skewed"][None] > 0  # coverage 0.8 left some visitors out
    for experiment in experiments:
        visitors = _results(client, experiment.key)["srm"]["visitors"]
        assert visitors == {v: expected[experiment.key][v] for v in experiment.variant_keys}


def test_events_are_credited_only_after_exposure(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    # never exposed
    body = client.post(
        "/v1/track", json={"visitor_id": "ghost", "event": "purchase", "value": 10}
    ).json()
    assert body["credited"] == [] and body["not_exposed"] == ["buyakilt-filters"]
    variant = _assign(client, "buyer")
    # an event that happened before the exposure
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = client.post(
        "/v1/track",
        json={"visitor_id": "buyer", "event": "purchase", "value": 10, "timestamp": earlier},
    ).json()
    assert body["before_exposure"] == ["buyakilt-filters"]
    body = client.post(
        "/v1/track", json={"visitor_id": "buyer", "event": "purchase", "value": 25.5}
    ).json()
    assert body["credited"] == ["buyakilt-filters"]
    revenue = _metric(_results(client), "revenue")
    by_variant = {row["variant"]: row for row in revenue["variants"]}
    assert by_variant[variant]["total"] == 25.5
    assert sum(row["total"] for row in revenue["variants"]) == 25.5


def test_duplicate_event_id_counts_once(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    _assign(client, "dup")
    event = {"visitor_id": "dup", "event": "purchase", "value": 49.9, "event_id": "order-1"}
    assert client.post("/v1/track", json=event).json()["credited"] == ["buyakilt-filters"]
    assert client.post("/v1/track", json=event).json()["duplicate"] == ["buyakilt-filters"]
    batch = client.post("/v1/track/batch", json={"events": [event, event]}).json()
    assert [b["duplicate"] for b in batch] == [["buyakilt-filters"], ["buyakilt-filters"]]
    results = _results(client)
    assert sum(r["total"] for r in _metric(results, "orders")["variants"]) == 1
    assert sum(r["total"] for r in _metric(results, "revenue")["variants"]) == 49.9


def test_results_totals_equal_the_traffic_sent_to_the_cent(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    expected: dict[str, Counter[str]] = {}
    sent: list[dict[str, object]] = []
    for i in range(300):
        visitor = f"shopper-{i}"
        variant = _assign(client, visitor)
        assert variant is not None
        e = expected.setdefault(variant, Counter())
        e["visitors"] += 1
        # a deterministic mix of cart views and purchases
        for _ in range(i % 3):
            sent.append({"visitor_id": visitor, "event": "cart_view"})
            e["cart_visits"] += 1
        if i % 4 == 0:
            for k in range(1 + i % 2):
                cents = 1999 + 37 * i + 101 * k
                sent.append({"visitor_id": visitor, "event": "purchase", "value": cents / 100})
                e["revenue_cents"] += cents
                e["orders"] += 1
            e["conversions"] += 1
    for start in range(0, len(sent), 100):
        response = client.post("/v1/track/batch", json={"events": sent[start : start + 100]})
        assert response.status_code == 200, response.text
    results = _results(client)
    for name, field in (
        ("conversion", "conversions"),
        ("orders", "orders"),
        ("cart_visits", "cart_visits"),
    ):
        for row in _metric(results, name)["variants"]:
            assert row["total"] == expected[row["variant"]][field], (name, row)
            assert row["visitors"] == expected[row["variant"]]["visitors"]
    for row in _metric(results, "revenue")["variants"]:
        assert round(row["total"] * 100) == expected[row["variant"]]["revenue_cents"]
        assert abs(row["total"] * 100 - expected[row["variant"]]["revenue_cents"]) < 1e-6
    for row in _metric(results, "aov")["variants"]:
        e = expected[row["variant"]]
        assert abs(row["value"] - e["revenue_cents"] / 100 / e["orders"]) < 1e-9


def test_event_for_metricless_event_name_is_accepted_and_credits_nothing(
    client: TestClient,
) -> None:
    create_running(client, BUYAKILT)
    _assign(client, "x")
    body = client.post("/v1/track", json={"visitor_id": "x", "event": "newsletter"}).json()
    assert body == {
        "credited": [],
        "duplicate": [],
        "not_exposed": [],
        "before_exposure": [],
        "unavailable": [],
    }


def test_redis_down_assignment_answers_from_hash_and_tracking_says_503(
    settings: object, redis_url: str
) -> None:
    import tempfile

    from experiments.embedded import EmbeddedRedis
    from service.api.app import create_app
    from service.settings import Settings

    with EmbeddedRedis(tempfile.mkdtemp(), tcp=True, persist=False) as own:
        app = create_app(Settings(redis_url=own.url, admin_key=None, definitions_ttl_seconds=0.0))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            create_running(client, BUYAKILT)
            expected = _assign(client, "down-visitor")
            redis.Redis.from_url(own.url).shutdown(nosave=True)
            time.sleep(0.2)
            body = client.get(
                "/v1/assign",
                params={"experiment": "buyakilt-filters", "visitor_id": "down-visitor"},
            ).json()
            assert body == {
                "experiment": "buyakilt-filters",
                "visitor_id": "down-visitor",
                "variant": expected,
                "recorded": False,
            }
            response = client.post(
                "/v1/track", json={"visitor_id": "down-visitor", "event": "purchase", "value": 1}
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"] == "unavailable"
            assert client.get("/healthz").status_code == 503


def test_metrics_endpoint_counts_assignments_and_events(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    for i in range(3):
        _assign(client, f"m{i}")
    _assign(client, "m0")
    client.post("/v1/track", json={"visitor_id": "m0", "event": "purchase", "value": 5})
    client.post("/v1/track", json={"visitor_id": "nobody", "event": "purchase", "value": 5})
    text = client.get("/metrics", headers=AUTH).text
    assert 'abacus_assignments_total{recorded="true"} 4.0' in text
    assert "abacus_exposures_recorded_total 3.0" in text
    assert 'abacus_events_total{outcome="credited"} 1.0' in text
    assert 'abacus_events_total{outcome="not_exposed"} 1.0' in text
    assert 'abacus_experiments{status="running"} 1.0' in text
    batch = [
        {"visitor_id": "m1", "event": "purchase", "value": 2},
        {"visitor_id": "m2", "event": "purchase", "value": 3},
        {"visitor_id": "nobody", "event": "purchase"},
    ]
    assert client.post("/v1/track/batch", json={"events": batch}).status_code == 200
    text = client.get("/metrics", headers=AUTH).text
    assert 'abacus_events_total{outcome="credited"} 3.0' in text
    assert 'abacus_events_total{outcome="not_exposed"} 2.0' in text


def test_a_deleted_experiment_is_gone_and_a_new_one_with_its_key_starts_at_zero(
    client: TestClient,
) -> None:
    create_running(client, BUYAKILT)
    for i in range(30):
        _assign(client, f"d{i}")
        client.post("/v1/track", json={"visitor_id": f"d{i}", "event": "purchase", "value": 2})
    assert sum(_results(client)["srm"]["visitors"].values()) == 30
    response = client.delete("/v1/experiments/buyakilt-filters", headers=AUTH)
    assert response.status_code == 204, response.text
    assert client.get("/v1/experiments/buyakilt-filters", headers=AUTH).status_code == 404
    create_running(client, BUYAKILT)
    fresh = _results(client)
    assert fresh["srm"]["visitors"] == {"control": 0, "filters": 0}
    assert all(v["total"] == 0 for m in fresh["metrics"] for v in m["variants"])
    _assign(client, "d0")  # the old exposure is gone too: this one is new
    assert sum(_results(client)["srm"]["visitors"].values()) == 1


def test_an_unreachable_cluster_answers_503_never_500() -> None:
    """No node answers: the cluster client's own errors (not RedisErrors) are 503s too."""
    from service.api.app import create_app
    from service.settings import Settings

    settings = Settings(
        redis_url="redis://127.0.0.1:1/0", redis_cluster=True, redis_timeout_seconds=0.5
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        calls = [
            client.get("/v1/assign", params={"experiment": "any", "visitor_id": "v"}),
            client.post("/v1/assign", json={"visitor_id": "v"}),
            client.post("/v1/track", json={"visitor_id": "v", "event": "purchase"}),
            client.get("/healthz"),
        ]
    for response in calls:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"


def test_a_server_process_tunes_the_collector_while_it_serves_and_restores_it(
    settings: Settings,
) -> None:
    """On the main thread (a server process: uvicorn runs the app there) the collector is
    tuned for the app's lifespan; in a test client's portal thread it is left alone."""

    async def serve() -> tuple[tuple[int, ...], int]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            return gc.get_threshold(), gc.get_freeze_count()

    before = gc.get_threshold()
    during, frozen = asyncio.run(serve())
    assert during == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
    assert frozen > 10_000  # the startup heap
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
