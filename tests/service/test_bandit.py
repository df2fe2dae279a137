"""Bandit experiments on the real store (single server and cluster): step, stickiness, loop.

A bandit's step reads the store's totals, gives the better-converting variant most of the next
period's traffic, and writes the new weights and the period history together; visitors exposed
before keep their variant, new visitors follow the new weights, and the read-out compares the
variants period by period. The service's loop steps a bandit whose period is over by itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from experiments.audit import AuditEntry
from experiments.bandit import BanditHistory, close_period
from experiments.definitions import Experiment, Status, transition
from experiments.errors import ConflictError
from experiments.store import Store
from service.api.app import create_app
from service.audit import BANDIT_LOOP
from service.bandit import step_due
from service.settings import Settings
from tests.conftest import RedisTarget
from tests.service.conftest import AUTH, BUYAKILT, create_running
from tests.support.store import StoreRunner

BANDIT: dict[str, Any] = {
    **BUYAKILT,
    "key": "kilt-bandit",
    "allocation": "bandit",
    "bandit_period_seconds": 3600,
    "bandit_floor": 0.02,
}


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    """The service without its bandit loop, so only the test steps."""
    return dataclasses.replace(settings, bandit_interval_seconds=0.0)


@pytest.fixture
def bandit_client(quiet_settings: Settings) -> Any:
    with TestClient(create_app(quiet_settings)) as test_client:
        yield test_client


def _assign(client: TestClient, visitor: str) -> str:
    response = client.get("/v1/assign", params={"experiment": "kilt-bandit", "visitor_id": visitor})
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] is True
    variant: str = response.json()["variant"]
    return variant


def _step(client: TestClient, *, force: bool) -> dict[str, Any]:
    response = client.post(
        "/v1/experiments/kilt-bandit/bandit/step", params={"force": force}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_step_moves_new_visitors_and_keeps_old_ones(bandit_client: TestClient) -> None:
    client = bandit_client
    create_running(client, BANDIT)
    first = {f"v{i}": _assign(client, f"v{i}") for i in range(300)}
    counts = Counter(first.values())
    assert set(counts) == {"control", "filters"}
    events = [
        {"visitor_id": v, "event": "purchase", "value": 10.0}
        for i, (v, variant) in enumerate(first.items())
        if (variant == "filters" and i % 3 == 0) or (variant == "control" and i % 20 == 0)
    ]
    response = client.post("/v1/track/batch", json={"events": events})
    assert response.status_code == 200, response.text

    not_due = _step(client, force=False)
    assert not_due["stepped"] is False and len(not_due["periods"]) == 1
    assert not_due["weights"] == {"control": 0.5, "filters": 0.5}

    stepped = _step(client, force=True)
    assert stepped["stepped"] is True
    closed, opened = stepped["periods"]
    assert closed["visitors"] == [counts["control"], counts["filters"]]
    converted = Counter(first[str(e["visitor_id"])] for e in events)
    assert closed["conversions"] == [converted["control"], converted["filters"]]
    assert opened["visitors"] is None and opened["visitors_at_start"] == closed["visitors"]
    weights = stepped["weights"]
    assert weights["filters"] > 0.95 and weights["control"] >= 0.02
    assert opened["weights"] == [weights["control"], weights["filters"]]
    definition = client.get("/v1/experiments/kilt-bandit", headers=AUTH).json()
    assert [v["weight"] for v in definition["variants"]] == opened["weights"]
    # the re-weighting is in the audit trail, as the step's caller's
    latest = client.get("/v1/experiments/kilt-bandit/audit?limit=1", headers=AUTH).json()[0]
    assert (latest["action"], latest["actor"]["name"]) == ("reweight", "admin")
    assert [v["weight"] for v in latest["before"]["variants"]] == [0.5, 0.5]
    assert [v["weight"] for v in latest["after"]["variants"]] == opened["weights"]

    # conversions of earlier visitors in a period without new ones: it merges with the first
    late = [v for i, v in enumerate(first) if first[v] == "control" and i % 20 != 0][:5]
    response = client.post(
        "/v1/track/batch",
        json={"events": [{"visitor_id": v, "event": "purchase", "value": 1.0} for v in late]},
    )
    assert response.status_code == 200, response.text
    merged = client.get("/v1/experiments/kilt-bandit/bandit", headers=AUTH)
    assert merged.status_code == 200, merged.text
    assert merged.json()["comparisons"][0]["periods"] == 1

    # sticky: everyone exposed before keeps the variant recorded first
    assert {v: _assign(client, v) for v in first} == first
    later = Counter(_assign(client, f"new{i}") for i in range(300))
    assert later["filters"] > 270

    report = client.get("/v1/experiments/kilt-bandit/bandit", headers=AUTH).json()
    (comparison,) = report["comparisons"]
    assert comparison["variant"] == "filters" and comparison["periods"] == 2
    assert comparison["absolute_lift"] > 0 and comparison["pvalue"] < 0.05
    assert report["periods"][-1]["visitors"] is None
    assert report["strata"] == "exposure"


def test_a_trimmed_log_falls_back_on_the_stored_periods(quiet_settings: Settings) -> None:
    capped = dataclasses.replace(quiet_settings, log_max_length=10)
    with TestClient(create_app(capped)) as client:
        create_running(client, {**BANDIT, "shards": 1})
        first = {f"v{i}": _assign(client, f"v{i}") for i in range(400)}
        events = [
            {"visitor_id": v, "event": "purchase", "value": 1.0}
            for i, (v, variant) in enumerate(first.items())
            if i % (4 if variant == "filters" else 10) == 0
        ]
        assert client.post("/v1/track/batch", json={"events": events}).status_code == 200
        _step(client, force=True)
        report = client.get("/v1/experiments/kilt-bandit/bandit", headers=AUTH).json()
        assert report["strata"] == "credit"
        (comparison,) = report["comparisons"]
        assert comparison["periods"] == 1 and comparison["absolute_lift"] > 0


def test_bandit_refusals(bandit_client: TestClient) -> None:
    client = bandit_client
    create_running(client, BUYAKILT)
    response = client.post("/v1/experiments/buyakilt-filters/bandit/step", headers=AUTH)
    assert response.status_code == 422
    assert "allocation 'fixed'" in response.json()["message"]
    assert client.get("/v1/experiments/nope/bandit", headers=AUTH).status_code == 404
    assert client.post("/v1/experiments/kilt-bandit/bandit/step").status_code == 401

    bad = {**BANDIT, "metrics": [{**BUYAKILT["metrics"][1], "primary": True}]}
    response = client.post("/v1/experiments", json=bad, headers=AUTH)
    assert response.status_code == 422
    assert "needs a primary metric of kind 'conversion', got 'revenue' (mean)" in response.text
    response = client.post(
        "/v1/experiments", json={**BANDIT, "bandit_period_seconds": 5}, headers=AUTH
    )
    assert response.status_code == 422 and "bandit_period_seconds" in response.text

    assert client.post("/v1/experiments", json=BANDIT, headers=AUTH).status_code == 201
    response = client.post(
        "/v1/experiments/kilt-bandit/bandit/step", params={"force": True}, headers=AUTH
    )
    assert response.status_code == 409
    assert "re-weights only while running" in response.json()["message"]


def _create_started(store: StoreRunner, hours_ago: float) -> Experiment:
    async def run(s: Store) -> Experiment:
        started = time.time() - hours_ago * 3600
        draft = Experiment.model_validate({**BANDIT, "created_at": started})
        return await s.create_experiment(transition(draft, Status.RUNNING, now=started))

    return store(run)


def test_a_concurrent_step_loses(store: StoreRunner) -> None:
    experiment = _create_started(store, hours_ago=2)

    async def race(s: Store) -> BanditHistory:
        history = await s.bandit_history(experiment)
        now = time.time()
        one = close_period(
            experiment, history, visitors=[0, 0], conversions=[0, 0], weights=[0.3, 0.7], now=now
        )
        two = close_period(
            experiment, history, visitors=[0, 0], conversions=[0, 0], weights=[0.6, 0.4], now=now
        )
        await s.record_bandit_period(experiment, history, *one)
        with pytest.raises(ConflictError, match="concurrently"):
            await s.record_bandit_period(experiment, history, *two)
        stored = await s.get_experiment(experiment.key)
        assert [v.weight for v in stored.variants] == [0.3, 0.7]
        return await s.bandit_history(stored)

    history = store(race)
    assert [p.weights for p in history.periods] == [(0.5, 0.5), (0.3, 0.7)]


def test_due_bandits_step_and_others_wait(store: StoreRunner) -> None:
    experiment = _create_started(store, hours_ago=2)

    async def run(s: Store) -> tuple[list[str], list[str], int]:
        first = await step_due(s, time.time())
        second = await step_due(s, time.time())  # the new period has just begun
        stored = await s.get_experiment(experiment.key)
        return first, second, len((await s.bandit_history(stored)).periods)

    first, second, periods = store(run)
    assert first == ["kilt-bandit"] and second == [] and periods == 2

    async def trail(s: Store) -> list[AuditEntry]:
        return await s.audit_entries(experiment.key, limit=10)

    (entry,) = store(trail)  # the experiment was written straight to the store: one entry
    assert entry.action == "reweight" and entry.actor == BANDIT_LOOP, (entry.before, entry.after)


def test_the_service_loop_steps_a_due_bandit(
    settings: Settings, store: StoreRunner, redis_server: RedisTarget
) -> None:
    _create_started(store, hours_ago=2)
    looping = dataclasses.replace(settings, bandit_interval_seconds=0.05)
    with TestClient(create_app(looping)) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            report = client.get("/v1/experiments/kilt-bandit/bandit", headers=AUTH).json()
            if len(report["periods"]) > 1:
                break
            time.sleep(0.05)
        assert len(report["periods"]) == 2
        assert report["next_step_at"] > time.time() + 3000
