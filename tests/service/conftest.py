"""Service fixtures: the real app on the session's real Redis, through Starlette's TestClient.

Every test here that uses Redis runs twice: on the embedded single server and on the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY, BOTH_REDIS, RedisTarget, redis_target

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

BUYAKILT: dict[str, Any] = {
    "key": "buyakilt-filters",
    "name": "Product filters on category pages",
    "hypothesis": "Filters by kilt type and pattern help shoppers find what they want",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "filters", "weight": 0.5}],
    "coverage": 1.0,
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
        {"name": "orders", "kind": "count", "event": "purchase"},
        {"name": "cart_visits", "kind": "count", "event": "cart_view"},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
    ],
}


@pytest.fixture(scope="session", params=BOTH_REDIS)
def redis_server(request: pytest.FixtureRequest) -> RedisTarget:
    return redis_target(request, request.param)


@pytest.fixture
def settings(redis_server: RedisTarget, key_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        redis_cluster=redis_server.cluster,
        key_prefix=key_prefix,
        admin_key=ADMIN_KEY,
        definitions_ttl_seconds=0.0,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def create_running(client: TestClient, definition: dict[str, Any]) -> None:
    response = client.post("/v1/experiments", json=definition, headers=AUTH)
    assert response.status_code == 201, response.text
    response = client.patch(
        f"/v1/experiments/{definition['key']}", json={"status": "running"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
