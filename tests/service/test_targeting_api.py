"""Targeting, namespaces, holdouts, QA forcing, client keys and exposures through HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from experiments.assignment import decide
from experiments.definitions import Experiment
from tests.service.conftest import AUTH, create_running

VARIANTS = [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]
METRICS = [{"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True}]


def _definition(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "variants": VARIANTS, "metrics": METRICS, **fields}


def _visitors(client: TestClient, key: str) -> dict[str, int]:
    response = client.get(f"/v1/experiments/{key}/results", headers=AUTH)
    assert response.status_code == 200, response.text
    visitors: dict[str, int] = response.json()["srm"]["visitors"]
    return visitors


def _assign(client: TestClient, visitor: str, key: str) -> str | None:
    response = client.get("/v1/assign", params={"experiment": key, "visitor_id": visitor})
    assert response.status_code == 200, response.text
    variant: str | None = response.json()["variant"]
    return variant


def test_unevaluable_condition_is_refused_with_422_naming_operator_and_path(
    client: TestClient,
) -> None:
    for condition, words in (
        ({"user.plan": {"$regx": "pro"}}, ["condition.user.plan", "$regx"]),
        ({"$or": [{"email": {"$regex": "[a-"}}]}, ["condition.$or.0.email", "$regex"]),
    ):
        response = client.post(
            "/v1/experiments", json=_definition("bad", condition=condition), headers=AUTH
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid_request"
        assert all(w in body["message"] for w in words), body
        assert body["details"][0]["field"] == "condition"
    client.post("/v1/experiments", json=_definition("ok"), headers=AUTH)
    response = client.patch(
        "/v1/experiments/ok", json={"condition": {"a": {"$nope": 1}}}, headers=AUTH
    )
    assert response.status_code == 422 and "$nope" in response.text


def test_visitors_not_matching_get_null_and_are_not_recorded(client: TestClient) -> None:
    create_running(client, _definition("uk-only", condition={"country": {"$in": ["UK", "IE"]}}))
    answers = {}
    for i in range(60):
        country = ["UK", "FR", "IE"][i % 3]
        body = {"visitor_id": f"v{i}", "attributes": {"country": country}}
        response = client.post("/v1/assign", json=body)
        assert response.status_code == 200, response.text
        answers[i] = response.json()["assignments"]["uk-only"]
    assert all((answers[i] is None) == (i % 3 == 1) for i in answers)
    # dotted paths read objects in the attributes
    client.post(
        "/v1/experiments",
        json=_definition("v2", condition={"app.version": {"$vgte": "2.1"}}),
        headers=AUTH,
    )
    client.patch("/v1/experiments/v2", json={"status": "running"}, headers=AUTH)
    for version, enrolled in (("2.10.0", True), ("2.0.9", False)):
        body = {
            "visitor_id": f"app-user-{version}",
            "experiments": ["v2"],
            "attributes": {"app": {"version": version}},
        }
        answer = client.post("/v1/assign", json=body).json()["assignments"]["v2"]
        assert (answer is not None) is enrolled, version
    long = {"visitor_id": "x", "attributes": {"app": {"name": "y" * 300}}}
    refused = client.post("/v1/assign", json=long)
    assert refused.status_code == 422 and "attributes.app.name" in refused.text
    # GET /v1/assign carries no attributes: decided on empty attributes, like GrowthBook
    assert _assign(client, "v-get", "uk-only") is None
    assert sum(_visitors(client, "uk-only").values()) == 40


def test_targeting_turned_on_mid_experiment_moves_no_enrolled_visitor(client: TestClient) -> None:
    create_running(client, _definition("checkout"))
    before = {f"v{i}": _assign(client, f"v{i}", "checkout") for i in range(200)}
    assert _visitors(client, "checkout") == {
        "control": sum(v == "control" for v in before.values()),
        "treatment": sum(v == "treatment" for v in before.values()),
    }
    response = client.patch(
        "/v1/experiments/checkout", json={"condition": {"plan": "pro"}}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    for visitor, variant in before.items():
        # enrolled visitors keep their variant, matching or not, with or without attributes
        assert _assign(client, visitor, "checkout") == variant
        for plan in ("pro", "free"):
            body = {"visitor_id": visitor, "attributes": {"plan": plan}}
            assert client.post("/v1/assign", json=body).json()["assignments"] == {
                "checkout": variant
            }
    # new visitors: only those matching enter
    new = [
        client.post("/v1/assign", json={"visitor_id": f"n{i}", "attributes": {"plan": p}}).json()[
            "assignments"
        ]["checkout"]
        for i, p in enumerate(["pro", "free"] * 20)
    ]
    assert all(v is None for v in new[1::2]) and all(v is not None for v in new[0::2])
    assert sum(_visitors(client, "checkout").values()) == 200 + 20


def test_overlapping_namespace_ranges_are_refused_when_the_second_starts(
    client: TestClient,
) -> None:
    create_running(client, _definition("hero", namespace={"id": "home", "start": 0, "end": 0.5}))
    client.post(
        "/v1/experiments",
        json=_definition("banner", namespace={"id": "home", "start": 0.3, "end": 0.8}),
        headers=AUTH,
    )
    response = client.patch("/v1/experiments/banner", json={"status": "running"}, headers=AUTH)
    assert response.status_code == 409, response.text
    assert "overlaps hero" in response.json()["message"]
    response = client.patch(
        "/v1/experiments/banner",
        json={"namespace": {"id": "home", "start": 0.5, "end": 1}},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    response = client.patch("/v1/experiments/banner", json={"status": "running"}, headers=AUTH)
    assert response.status_code == 200, response.text
    response = client.patch(
        "/v1/experiments/banner",
        json={"namespace": {"id": "home", "start": 0.6, "end": 1}},
        headers=AUTH,
    )
    assert response.status_code == 409 and "only in draft" in response.text
    both = [
        v
        for v in (f"v{i}" for i in range(400))
        if _assign(client, v, "hero") is not None and _assign(client, v, "banner") is not None
    ]
    assert both == []


def test_holdout_keeps_its_visitors_out_and_reports_them_against_everyone_else(
    client: TestClient,
) -> None:
    holdout = {
        "key": "holdout-q1",
        "kind": "holdout",
        "seed": "q1-holdout",
        "variants": [{"key": "holdout", "weight": 0.2}, {"key": "general", "weight": 0.8}],
        "metrics": METRICS,
    }
    response = client.post(
        "/v1/experiments", json=_definition("pricing", holdout="nope"), headers=AUTH
    )
    assert response.status_code == 422 and "kind 'holdout'" in response.text
    create_running(client, holdout)
    create_running(client, _definition("pricing", holdout="holdout-q1"))
    held = Experiment.model_validate({**holdout, "status": "running"})
    members = {"holdout": 0, "general": 0}
    for i in range(300):
        visitor = f"v{i}"
        in_holdout = decide(held, visitor).variant == "holdout"
        members["holdout" if in_holdout else "general"] += 1
        variant = _assign(client, visitor, "pricing")
        assert (variant is None) == in_holdout
        client.post("/v1/track", json={"visitor_id": visitor, "event": "purchase"})
    assert _visitors(client, "holdout-q1") == members
    assert sum(_visitors(client, "pricing").values()) == members["general"]
    results = client.get("/v1/experiments/holdout-q1/results", headers=AUTH).json()
    conversion = results["metrics"][0]["variants"]
    assert [row["total"] for row in conversion] == [members["holdout"], members["general"]]


def test_forced_visitor_sees_the_variant_and_is_never_counted(client: TestClient) -> None:
    create_running(client, _definition("qa", condition={"country": "UK"}))
    response = client.put(
        "/v1/experiments/qa/forced/qa-tester", json={"variant": "treatment"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["forced"] == {"qa-tester": "treatment"}
    assert _assign(client, "qa-tester", "qa") == "treatment"
    body = client.post("/v1/assign", json={"visitor_id": "qa-tester"}).json()
    assert body["assignments"] == {"qa": "treatment"}
    exposure = {"visitor_id": "qa-tester", "experiment": "qa", "variant": "treatment"}
    assert client.post("/v1/exposures", json=exposure).json()["recorded"] is False
    assert sum(_visitors(client, "qa").values()) == 0
    bad = client.put("/v1/experiments/qa/forced/x", json={"variant": "nope"}, headers=AUTH)
    assert bad.status_code == 422 and "nope" in bad.text
    assert client.put("/v1/experiments/qa/forced/x", json={"variant": "control"}).status_code == 401
    response = client.delete("/v1/experiments/qa/forced/qa-tester", headers=AUTH)
    assert response.json()["forced"] == {}
    assert _assign(client, "qa-tester", "qa") is None  # no attributes: the condition fails


def test_exposures_are_idempotent_and_checked_against_the_hash(client: TestClient) -> None:
    create_running(client, _definition("signup", condition={"country": "UK"}))
    experiment = Experiment.model_validate({**_definition("signup"), "status": "running"})
    for i in range(20):
        visitor = f"v{i}"
        variant = decide(experiment, visitor).variant
        body = {"visitor_id": visitor, "experiment": "signup", "variant": variant}
        first = client.post("/v1/exposures", json=body)
        assert first.status_code == 200, first.text
        assert first.json() == {**body, "recorded": True, "recorded_now": True}
        again = client.post("/v1/exposures", json=body).json()
        assert (again["variant"], again["recorded_now"]) == (variant, False)
        other = "control" if variant == "treatment" else "treatment"
        wrong = client.post("/v1/exposures", json={**body, "variant": other})
        assert wrong.status_code == 409 and other in wrong.json()["message"]
    assert sum(_visitors(client, "signup").values()) == 20
    unknown = client.post(
        "/v1/exposures", json={"visitor_id": "v", "experiment": "signup", "variant": "zzz"}
    )
    assert unknown.status_code == 422 and "zzz" in unknown.text


def test_client_keys_grant_the_features_payload_until_revoked(client: TestClient) -> None:
    assert client.post("/v1/client-keys", json={"name": "web"}).status_code == 401
    created = client.post("/v1/client-keys", json={"name": "web"}, headers=AUTH)
    assert created.status_code == 201, created.text
    key = created.json()["client_key"]
    assert [k["client_key"] for k in client.get("/v1/client-keys", headers=AUTH).json()] == [key]
    assert client.get("/api/features/sdk-unknown").status_code == 404
    create_running(
        client,
        _definition(
            "hero",
            seed="hero-seed",
            coverage=0.8,
            condition={"country": "UK"},
            namespace={"id": "home", "start": 0.1, "end": 0.6},
            hash_attribute="device",
            forced={"qa-1": "treatment"},
        ),
    )
    client.post("/v1/experiments", json=_definition("draft-one"), headers=AUTH)
    payload = client.get(f"/api/features/{key}").json()
    assert set(payload["features"]) == {"hero"}
    force, rule = payload["features"]["hero"]["rules"]
    assert force == {
        "id": "hero-forced-treatment",
        "condition": {"id": {"$in": ["qa-1"]}},
        "force": "treatment",
    }
    assert rule == {
        "id": "hero",
        "key": "hero",
        "name": "hero",
        "seed": "hero-seed",
        "hashAttribute": "device",
        "hashVersion": 2,
        "variations": ["control", "treatment"],
        "weights": [0.5, 0.5],
        "coverage": 0.8,
        "condition": {"country": "UK"},
        "namespace": ["home", 0.1, 0.6],
        "meta": [{"key": "control", "name": "control"}, {"key": "treatment", "name": "treatment"}],
    }
    assert client.delete(f"/v1/client-keys/{key}", headers=AUTH).status_code == 204
    assert client.get(f"/api/features/{key}").status_code == 404
    assert client.delete(f"/v1/client-keys/{key}", headers=AUTH).status_code == 404
