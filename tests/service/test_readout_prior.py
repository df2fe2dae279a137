"""An experiment's Beta prior reaches the Bayesian read-out; a bad prior is a 422 naming it."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

import stats
from experiments.definitions import Experiment, Metric
from experiments.store import Store, VariantTotals
from service.readout.build import build_results, summary_of
from tests.service.conftest import AUTH, BUYAKILT, create_running
from tests.support.store import StoreRunner

JEFFREYS = {**BUYAKILT, "key": "buyakilt-jeffreys", "prior": {"a": 0.5, "b": 0.5}}


def _traffic(client: TestClient) -> None:
    create_running(client, JEFFREYS)
    for i in range(120):
        visitor = f"v{i}"
        params = {"experiment": JEFFREYS["key"], "visitor_id": visitor}
        assert client.get("/v1/assign", params=params).status_code == 200
        if i % 5 == 0:
            body = {"visitor_id": visitor, "event": "purchase", "value": 30}
            assert client.post("/v1/track", json=body).status_code == 200


def test_the_experiments_prior_is_used_for_conversions(
    client: TestClient, store: StoreRunner
) -> None:
    _traffic(client)

    async def work(s: Store) -> tuple[Experiment, list[VariantTotals]]:
        experiment = await s.get_experiment(JEFFREYS["key"])
        return experiment, await s.totals(experiment)

    experiment, totals = store(work)
    assert experiment.prior is not None and (experiment.prior.a, experiment.prior.b) == (0.5, 0.5)
    results = build_results(experiment, totals, _daily(store, experiment), time.time())
    metric: Metric = next(m for m in experiment.metrics if m.primary)
    control, treatment = (summary_of(metric, t) for t in totals)
    assert isinstance(control, stats.Proportion) and isinstance(treatment, stats.Proportion)
    expected = stats.chance_to_beat_control(
        control=control, treatment=treatment, prior=stats.JEFFREYS_PRIOR
    )
    flat = stats.chance_to_beat_control(control=control, treatment=treatment)
    assert results.primary is not None
    shown = results.primary.treatments[0].chance_to_beat_control
    assert shown == pytest.approx(expected.chance_to_beat_control, rel=1e-12)
    assert shown != pytest.approx(flat.chance_to_beat_control, rel=1e-9)


def _daily(store: StoreRunner, experiment: Experiment) -> list[tuple[str, list[VariantTotals]]]:
    async def work(s: Store) -> list[tuple[str, list[VariantTotals]]]:
        return await s.daily_totals(experiment)

    return store(work)


def test_a_bad_prior_is_rejected_naming_the_field(client: TestClient) -> None:
    body = {**BUYAKILT, "key": "bad-prior", "prior": {"a": -1, "b": 2}}
    response = client.post("/v1/experiments", json=body, headers=AUTH)
    assert response.status_code == 422
    text = response.text
    assert "prior" in text and "greater than 0" in text and "-1" in text
