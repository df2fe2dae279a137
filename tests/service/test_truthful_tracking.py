"""A track answers what happened: what one experiment's failed write did not credit is named,
the others stay credited, and a retry with the same event id completes it without counting
anything twice. The activity log is best-effort: its failure is counted, not an error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from fastapi.testclient import TestClient

from experiments.keys import Keyspace, place_of
from tests.conftest import RedisTarget
from tests.service.conftest import AUTH, BUYAKILT, create_running


@contextmanager
def _closing(
    client: redis.Redis | redis.RedisCluster,
) -> Iterator[redis.Redis | redis.RedisCluster]:
    """The client, with every connection of every node closed afterwards."""
    try:
        yield client
    finally:
        if isinstance(client, redis.RedisCluster):
            client.disconnect_connection_pools()
        client.close()


def _assign_key(client: TestClient, prefix: str, key: str, visitor: str) -> str:
    definition = client.get(f"/v1/experiments/{key}", headers=AUTH).json()
    place = place_of(visitor, definition["shards"], definition["slices"])
    shard = Keyspace(prefix).shard(key, definition["generation"], place.shard, definition["shards"])
    return shard.assign(place.slice)


def test_a_failed_experiment_write_is_named_and_a_retry_completes_it(
    client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    create_running(client, BUYAKILT)
    create_running(client, {**BUYAKILT, "key": "second"})
    client.post("/v1/assign", json={"visitor_id": "ann"})
    with _closing(redis_server.client()) as plain:
        broken = _assign_key(client, key_prefix, "second", "ann")
        saved = plain.dump(broken)
        # the server now refuses that experiment's script at its first command, as a node that is
        # down refuses all of it
        plain.set(broken, "not a hash")
        event = {"visitor_id": "ann", "event": "purchase", "value": 20.0, "event_id": "order-7"}
        response = client.post("/v1/track", json=event)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        (result,) = response.json()["results"]
        assert result["credited"] == ["buyakilt-filters"] and result["unavailable"] == ["second"]
        plain.delete(broken)
        assert saved is not None
        plain.restore(broken, 0, saved)
        retried = client.post("/v1/track", json=event)
        assert retried.status_code == 200, retried.text
        assert retried.json()["credited"] == ["second"]
        assert retried.json()["duplicate"] == ["buyakilt-filters"]
        for key in ("buyakilt-filters", "second"):
            results = client.get(f"/v1/experiments/{key}/results", headers=AUTH).json()
            orders = next(m for m in results["metrics"] if m["name"] == "orders")
            assert sum(v["total"] for v in orders["variants"]) == 1.0


def test_an_activity_log_failure_is_counted_not_an_error(
    client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    create_running(client, BUYAKILT)
    client.post("/v1/assign", json={"visitor_id": "bob"})
    store = client.app.state.store  # type: ignore[attr-defined]
    place = place_of("bob", store.activity_shards, store.activity_slices)
    with _closing(redis_server.client()) as plain:
        plain.set(store.keys.activity(place.shard, store.activity_shards).log, "not a stream")
    response = client.post("/v1/track", json={"visitor_id": "bob", "event": "purchase"})
    assert response.status_code == 200 and response.json()["credited"] == ["buyakilt-filters"]
    metrics = client.get("/metrics", headers=AUTH).text
    assert "abacus_activity_log_failures_total 1.0" in metrics
    alone = client.post("/v1/track", json={"visitor_id": "bob", "event": "newsletter"})
    assert alone.status_code == 503  # nothing took an event that only the activity log keeps
