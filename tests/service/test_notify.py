"""Webhook notifications against a real receiver on 127.0.0.1 and the session's real Redis.

Traffic is written through the store (exposures and events as the API records them), the
notifier reads the experiments out as ``GET .../results`` does, and a threaded HTTP server
(``tests/support/webhook_receiver.py``) plays the receiver: accepting, failing, refusing,
redirecting. Every test runs on the embedded Redis and on the cluster.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats

from experiments.store import Store, TrackEvent
from experiments.webhooks import SIGNATURE_HEADER, RetryPolicy
from service.api.app import create_app
from service.notify import Notifier
from service.settings import Settings
from tests.service.conftest import AUTH, create_running
from tests.service.test_bad_input import _assert_error
from tests.support.store import StoreRunner
from tests.support.webhook_receiver import Answer, Receiver

FAST = RetryPolicy(max_attempts=3, base_seconds=0.05, cap_seconds=1.0, timeout_seconds=5.0)
SECRET = "a-webhook-secret-0123456789"
ROUTES = [
    ("PUT", "/v1/workspace/webhook"),
    ("GET", "/v1/workspace/webhook"),
    ("DELETE", "/v1/workspace/webhook"),
    ("POST", "/v1/workspace/webhook/test"),
    ("GET", "/v1/workspace/webhook/deliveries"),
]


def _definition(key: str, *, guardrail: bool = False) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True}
    ]
    if guardrail:
        metrics.append(
            {
                "name": "refunds",
                "kind": "conversion",
                "event": "refund",
                "direction": "lower",
                "guardrail": True,
            }
        )
    return {
        "key": key,
        "name": f"Experiment {key}",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "metrics": metrics,
    }


def _drive(
    store: StoreRunner,
    key: str,
    visitors: Sequence[int],
    converted: dict[str, Sequence[int]],
) -> None:
    """Expose ``visitors[i]`` visitors to variant ``i``; the first ``converted[event][i]`` of
    them then send ``event``."""

    async def work(s: Store) -> None:
        experiment = await s.get_experiment(key)
        now_ms = int(time.time() * 1000)
        ids = [[f"{key}-{i}-{j}" for j in range(n)] for i, n in enumerate(visitors)]
        await s.record_exposure_batch(
            experiment,
            [(v, i, now_ms - 60_000, "{}") for i, group in enumerate(ids) for v in group],
        )
        events = [
            TrackEvent(visitor_id=v, event=event, value=1.0, value_text="1.0", timestamp_ms=now_ms)
            for event, counts in converted.items()
            for i, count in enumerate(counts)
            for v in ids[i][:count]
        ]
        await s.track([experiment], events, now_ms=now_ms)

    store(work)


def _notify(store: StoreRunner, *, rounds: int = 1, policy: RetryPolicy = FAST) -> list[str]:
    """Run ``rounds`` notifier passes and wait for their deliveries; the delivery ids started."""

    async def work(s: Store) -> list[str]:
        notifier = Notifier(s, policy=policy)
        try:
            started = [d for _ in range(rounds) for d in await notifier.check()]
            await notifier.idle()
        finally:
            await notifier.aclose()
        return started

    return store(work)


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    """The app without its notifier loop: the tests run the passes themselves."""
    return replace(settings, notify_interval_seconds=0)


@pytest.fixture
def app_client(quiet_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(quiet_settings)) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _set_webhook(client: TestClient, url: str, secret: str | None = None) -> None:
    body = {"url": url} if secret is None else {"url": url, "secret": secret}
    response = client.put("/v1/workspace/webhook", json=body, headers=AUTH)
    assert response.status_code == 200, response.text


def _scenario(client: TestClient, store: StoreRunner) -> None:
    """Four running experiments: one with a sample-ratio mismatch, one harming its guardrail,
    one whose primary metric wins, one where nothing happens."""
    for key in ("srm-exp", "guard-exp", "win-exp", "quiet-exp"):
        create_running(client, _definition(key, guardrail=key == "guard-exp"))
    _drive(store, "srm-exp", [600, 400], {"purchase": [60, 40]})
    _drive(store, "guard-exp", [1000, 1000], {"purchase": [100, 100], "refund": [40, 120]})
    _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
    _drive(store, "quiet-exp", [1000, 1000], {"purchase": [100, 102]})


def _row(results: dict[str, Any], metric: str, variant: str) -> dict[str, Any]:
    rows = next(m for m in results["metrics"] if m["name"] == metric)["variants"]
    row: dict[str, Any] = next(r for r in rows if r["variant"] == variant)
    return row


def test_each_event_arrives_once_with_the_read_outs_figures(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    _set_webhook(app_client, receiver.url)
    _scenario(app_client, store)

    started = _notify(store, rounds=3)

    assert len(started) == 3
    events = {(e["event"], e["experiment"]["key"]): e for e in receiver.events()}
    assert len(receiver.events()) == 3
    assert set(events) == {
        ("srm", "srm-exp"),
        ("guardrail_harmed", "guard-exp"),
        ("primary_significant", "win-exp"),
    }
    assert {e["delivery_id"] for e in events.values()} == set(started)

    srm = events["srm", "srm-exp"]
    expected_p = scipy_stats.chisquare([600, 400], [500, 500]).pvalue
    assert srm["figures"]["srm_pvalue"] == pytest.approx(expected_p, rel=1e-9)
    assert srm["figures"]["visitors"] == {"control": 600, "treatment": 400}
    assert srm["metric"] is None
    assert srm["experiment"] == {"key": "srm-exp", "name": "Experiment srm-exp"}
    assert srm["report_path"] == "/experiments/srm-exp"

    for (kind, key), metric in [
        (("guardrail_harmed", "guard-exp"), "refunds"),
        (("primary_significant", "win-exp"), "conversion"),
    ]:
        event = events[kind, key]
        results = app_client.get(f"/v1/experiments/{key}/results", headers=AUTH).json()
        row = _row(results, metric, "treatment")
        figures = event["figures"]
        assert event["metric"] == metric
        assert figures["variant"] == "treatment"
        for name in ("relative_lift", "absolute_lift", "sequential_pvalue"):
            assert figures[name] == pytest.approx(row[name], rel=1e-12), name
        assert figures["pvalue"] == pytest.approx(row["adjusted_pvalue"], rel=1e-12)
        assert figures["relative_ci"] == pytest.approx(row["relative_ci"], rel=1e-12)
        assert figures["absolute_ci"] == pytest.approx(row["absolute_ci"], rel=1e-12)
        assert figures["srm_pvalue"] == pytest.approx(results["srm"]["pvalue"], rel=1e-12)
        assert event["report_path"] == f"/experiments/{key}"
        assert event["timestamp"].endswith("Z")

    # a 10% -> 20% conversion rate: the relative lift is +100%, and better
    win = events["primary_significant", "win-exp"]
    assert win["figures"]["relative_lift"] == pytest.approx(1.0)
    assert win["outcome"] == "better"
    assert win["figures"]["sequential_pvalue"] < 0.05
    # 4% -> 12% refunds, where lower is better: worse
    guard = events["guardrail_harmed", "guard-exp"]
    assert guard["outcome"] == "worse"
    assert guard["figures"]["absolute_lift"] == pytest.approx(0.08)

    # later passes send nothing again, whatever the conditions still say
    assert _notify(store, rounds=2) == []
    assert len(receiver.received) == 3


def test_nothing_is_sent_when_no_condition_holds(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    _set_webhook(app_client, receiver.url)
    create_running(app_client, _definition("quiet-exp", guardrail=True))
    _drive(store, "quiet-exp", [1000, 1000], {"purchase": [100, 103], "refund": [20, 21]})
    create_running(app_client, _definition("empty-exp"))

    assert _notify(store, rounds=2) == []
    assert receiver.received == []


def test_nothing_is_claimed_without_a_webhook(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    create_running(app_client, _definition("win-exp"))
    _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})

    assert _notify(store) == []
    assert store(lambda s: s.claimed_notifications()) == {}
    # set later, the event is sent then
    _set_webhook(app_client, receiver.url)
    assert len(_notify(store)) == 1
    assert [e["event"] for e in receiver.events()] == ["primary_significant"]


def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt_with_growing_waits(
    app_client: TestClient, store: StoreRunner
) -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=0.3, cap_seconds=10.0, timeout_seconds=5.0)
    with Receiver(lambda body, count: Answer(500 if count < 2 else 200)) as receiver:
        _set_webhook(app_client, receiver.url)
        create_running(app_client, _definition("win-exp"))
        _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})

        (delivery_id,) = _notify(store, policy=policy)

        received = receiver.received
    assert len(received) == 3
    assert {r.json()["delivery_id"] for r in received} == {delivery_id}
    assert {r.headers["X-Abacus-Delivery"] for r in received} == {delivery_id}
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert gaps[1] > gaps[0] > 0

    log = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
    attempts = sorted(log, key=lambda a: a["attempt"])
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]
    waits = [a["retry_in_seconds"] for a in attempts]
    assert waits[2] is None
    assert waits[1] > waits[0] > 0
    assert all(a["delivery_id"] == delivery_id and a["max_attempts"] == 5 for a in attempts)
    assert [a["attempt"] for a in log] == [3, 2, 1]  # newest first


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_a_4xx_is_not_retried(app_client: TestClient, store: StoreRunner, status: int) -> None:
    with Receiver(lambda body, count: Answer(status)) as receiver:
        _set_webhook(app_client, receiver.url)
        create_running(app_client, _definition("win-exp"))
        _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
        _notify(store)
        assert len(receiver.received) == 1
    (attempt,) = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
    assert attempt["outcome"] == "failed"
    assert attempt["status_code"] == status
    assert "not retried" in attempt["error"]
    assert attempt["retry_in_seconds"] is None


def test_429_is_retried_and_a_receiver_that_never_accepts_is_given_up(
    app_client: TestClient, store: StoreRunner
) -> None:
    with Receiver(lambda body, count: Answer(429 if count == 0 else 503)) as receiver:
        _set_webhook(app_client, receiver.url)
        create_running(app_client, _definition("win-exp"))
        _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
        _notify(store)
        assert len(receiver.received) == FAST.max_attempts
    log = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
    assert [a["status_code"] for a in reversed(log)] == [429, 503, 503]
    assert log[0]["outcome"] == "failed"
    assert "gave up after 3 attempts" in log[0]["error"]


def test_connection_errors_are_retried(app_client: TestClient, store: StoreRunner) -> None:
    with Receiver() as closed:
        url = closed.url  # nothing listens there once the receiver is closed
    _set_webhook(app_client, url)
    create_running(app_client, _definition("win-exp"))
    _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
    _notify(store)
    log = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
    assert [(a["attempt"], a["status_code"]) for a in reversed(log)] == [
        (1, None),
        (2, None),
        (3, None),
    ]
    assert "could not connect" in log[-1]["error"]
    assert log[0]["outcome"] == "failed"


def test_a_redirect_is_not_followed(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    with Receiver(lambda body, count: Answer(307, (("Location", receiver.url),))) as redirecting:
        _set_webhook(app_client, redirecting.url)
        create_running(app_client, _definition("win-exp"))
        _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
        _notify(store)
        assert len(redirecting.received) == 1
    assert receiver.received == []
    (attempt,) = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
    assert attempt["outcome"] == "failed"
    assert "not followed" in attempt["error"]


def test_the_signature_verifies_with_the_secret(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    _set_webhook(app_client, receiver.url, SECRET)
    create_running(app_client, _definition("win-exp"))
    _drive(store, "win-exp", [1000, 1000], {"purchase": [100, 200]})
    _notify(store)
    (request,) = receiver.received
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    wrong = hmac.new(b"another-secret-0123456789", request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] != f"sha256={wrong}"
    assert request.headers["X-Abacus-Event"] == "primary_significant"
    assert request.headers["Content-Type"] == "application/json"

    # without a secret, no signature
    _set_webhook(app_client, receiver.url)
    assert app_client.post("/v1/workspace/webhook/test", headers=AUTH).status_code == 200
    assert SIGNATURE_HEADER not in receiver.received[-1].headers


def test_two_notifiers_at_once_send_each_event_once(
    app_client: TestClient, store: StoreRunner, receiver: Receiver
) -> None:
    _set_webhook(app_client, receiver.url)
    _scenario(app_client, store)
    start = threading.Barrier(2)

    def one_instance() -> list[str]:
        # each on its own thread, event loop and Redis client, as two processes would be
        async def work(s: Store) -> list[str]:
            notifier = Notifier(s, policy=FAST)
            try:
                start.wait()
                started = [d for _ in range(3) for d in await notifier.check()]
                await notifier.idle()
            finally:
                await notifier.aclose()
            return started

        return store(work)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: one_instance(), range(2))

    assert len(first) + len(second) == 3
    assert not set(first) & set(second)
    kinds = sorted((e["event"], e["experiment"]["key"]) for e in receiver.events())
    assert kinds == [
        ("guardrail_harmed", "guard-exp"),
        ("primary_significant", "win-exp"),
        ("srm", "srm-exp"),
    ]


def test_a_failing_receiver_blocks_neither_other_events_nor_the_service(
    app_client: TestClient, store: StoreRunner
) -> None:
    def answer(body: Any, count: int) -> Answer:
        return Answer(500 if body["experiment"]["key"] == "srm-exp" else 200)

    with Receiver(answer) as receiver:
        _set_webhook(app_client, receiver.url)
        _scenario(app_client, store)
        notifier: Notifier = app_client.app.state.notifier  # type: ignore[attr-defined]
        notifier.policy = RetryPolicy(max_attempts=4, base_seconds=0.4, timeout_seconds=5.0)
        portal = app_client.portal
        assert portal is not None

        started = portal.call(notifier.check)
        # the pass is over while the failing receiver's retries go on, and the service answers
        assert len(started) == 3
        assert app_client.get("/healthz").status_code == 200
        receiver.wait_for(4)  # the failing one's second attempt: its first is logged
        log = app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json()
        assert any(a["outcome"] == "retrying" for a in log)
        portal.call(notifier.idle)

        keys = [r.json()["experiment"]["key"] for r in receiver.received]
    assert keys.count("srm-exp") == 4
    assert keys.count("guard-exp") == keys.count("win-exp") == 1
    last_failing = max(i for i, k in enumerate(keys) if k == "srm-exp")
    assert keys.index("win-exp") < last_failing
    assert keys.index("guard-exp") < last_failing


def test_ping_sends_now_and_shows_the_answer(app_client: TestClient) -> None:
    with Receiver(lambda body, count: Answer(200 if count == 0 else 500)) as receiver:
        _set_webhook(app_client, receiver.url, SECRET)
        first = app_client.post("/v1/workspace/webhook/test", headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "delivered"
        assert first.json()["status_code"] == 200
        (request,) = receiver.received
        body = request.json()
        assert body["event"] == "ping"
        assert body["delivery_id"] == first.json()["delivery_id"]
        assert body["experiment"] is None

        second = app_client.post("/v1/workspace/webhook/test", headers=AUTH).json()
        assert second["outcome"] == "failed"  # one attempt only: the answer is the receiver's
        assert second["status_code"] == 500
        assert len(receiver.received) == 2


def test_webhook_settings_put_get_delete_never_show_the_secret(
    app_client: TestClient, receiver: Receiver
) -> None:
    missing = app_client.get("/v1/workspace/webhook", headers=AUTH)
    _assert_error(missing, 404, "PUT /v1/workspace/webhook")
    _assert_error(app_client.post("/v1/workspace/webhook/test", headers=AUTH), 404, "no webhook")

    put = app_client.put(
        "/v1/workspace/webhook", json={"url": receiver.url, "secret": SECRET}, headers=AUTH
    )
    assert put.status_code == 200
    got = app_client.get("/v1/workspace/webhook", headers=AUTH)
    for response in (put, got):
        assert SECRET not in response.text
        assert response.json()["url"] == receiver.url
        assert response.json()["secret_set"] is True
    replaced = app_client.put("/v1/workspace/webhook", json={"url": receiver.url}, headers=AUTH)
    assert replaced.json()["secret_set"] is False

    assert app_client.delete("/v1/workspace/webhook", headers=AUTH).status_code == 204
    _assert_error(app_client.get("/v1/workspace/webhook", headers=AUTH), 404, "no webhook")
    _assert_error(app_client.delete("/v1/workspace/webhook", headers=AUTH), 404, "no webhook")
    assert app_client.get("/v1/workspace/webhook/deliveries", headers=AUTH).json() == []


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "url", "http:// or https://"),
        ({"url": "hooks.example.com/x"}, "url", "http:// or https://"),
        ({"url": "https://"}, "url", "no host"),
        ({"url": "https://hooks.example.com:99999/x"}, "url", "not a valid URL"),
        ({"url": "https://hooks.example.com/a b"}, "url", "without spaces"),
        ({"url": "https://user:pw@hooks.example.com/"}, "url", "user name or password"),
        ({"url": "https://hooks.example.com/#x"}, "url", "fragment"),
        ({"url": "https://h.example/" + "x" * 2048}, "url", "at most 2048"),
        ({"url": 12}, "url", "string"),
        ({}, "url", "Field required"),
        ({"url": "https://hooks.example.com/", "secret": "short"}, "secret", "16-256"),
        ({"url": "https://hooks.example.com/", "secret": "x" * 15 + " y"}, "secret", "16-256"),
        ({"url": "https://hooks.example.com/", "retries": 3}, "retries", "Extra inputs"),
    ],
)
def test_bad_webhook_settings_get_a_422_naming_the_field(
    app_client: TestClient, body: dict[str, Any], field: str, needle: str
) -> None:
    response = app_client.put("/v1/workspace/webhook", json=body, headers=AUTH)
    _assert_error(response, 422, needle)
    (detail,) = response.json()["details"]
    assert detail["field"] == field
    if field in body and isinstance(body[field], str) and len(body[field]) < 200:
        assert detail["value"] == body[field]
    assert app_client.get("/v1/workspace/webhook", headers=AUTH).status_code == 404


@pytest.mark.parametrize("limit", ["0", "201", "x"])
def test_bad_delivery_log_limits_get_a_422(app_client: TestClient, limit: str) -> None:
    response = app_client.get(f"/v1/workspace/webhook/deliveries?limit={limit}", headers=AUTH)
    _assert_error(response, 422, "limit")


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-admin-key-at-all"}])
def test_the_workspace_routes_need_the_admin_key(
    app_client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    body = {"url": "https://hooks.example.com/"} if method == "PUT" else None
    response = app_client.request(method, path, json=body, headers=headers)
    _assert_error(response, 401, "Authorization")
    assert app_client.get("/v1/workspace/webhook", headers=AUTH).status_code == 404


def test_the_delivery_log_is_bounded(app_client: TestClient, receiver: Receiver) -> None:
    from experiments.webhooks import DELIVERY_LOG_LENGTH

    _set_webhook(app_client, receiver.url)
    for _ in range(DELIVERY_LOG_LENGTH + 5):
        assert app_client.post("/v1/workspace/webhook/test", headers=AUTH).status_code == 200
    log = app_client.get(
        f"/v1/workspace/webhook/deliveries?limit={DELIVERY_LOG_LENGTH}", headers=AUTH
    ).json()
    assert len(log) == DELIVERY_LOG_LENGTH
    newest = receiver.received[-1].json()["delivery_id"]
    assert log[0]["delivery_id"] == newest


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_a_viewer_or_editor_key_gets_403(app_client: TestClient, role: str) -> None:
    created = app_client.post("/v1/keys", json={"name": f"a {role}", "role": role}, headers=AUTH)
    if created.status_code == 404:
        pytest.skip("keys with roles (POST /v1/keys) do not exist in this build")
    assert created.status_code in {200, 201}, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    for method, path in ROUTES:
        body = {"url": "https://hooks.example.com/"} if method == "PUT" else None
        _assert_error(app_client.request(method, path, json=body, headers=headers), 403, "admin")
    assert app_client.get("/v1/workspace/webhook", headers=AUTH).status_code == 404
