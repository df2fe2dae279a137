"""A hung Redis (SIGSTOP: connections open, no answers) never makes the service hang.

Each test stops a Redis of its own (never the session's), fires a bounded burst of concurrent
requests at the live service, and checks every one is answered honestly while Redis is still
stopped: Redis is resumed only after :data:`STALL_SECONDS` (ten times the service's Redis
timeout), or when every answer is in, and no answer may arrive after that. The order of events
is asserted, not a duration, so a busy machine cannot fail the test; the durations are printed.
Then the service must recover by itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import redis

from experiments.embedded import EmbeddedRedis
from experiments.keys import Keyspace, shard_of
from tests.conftest import ADMIN_KEY, LiveServer
from tests.support.redis_cluster import RedisCluster, redis_server_path

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TIMEOUT_SECONDS = 1.0
ACTIVITY_SHARDS = 64  # the store's default
BURST = 200
STALL_SECONDS = 10 * TIMEOUT_SECONDS


class Stopped:
    """A process SIGSTOPped until :data:`STALL_SECONDS` pass or :meth:`resume` is called."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.resumed_at = math.inf
        self._lock = threading.Lock()
        self._timer = threading.Timer(STALL_SECONDS, self.resume)

    def __enter__(self) -> Stopped:
        os.kill(self.pid, signal.SIGSTOP)
        self._timer.start()
        return self

    def resume(self) -> None:
        with self._lock:
            if self.resumed_at == math.inf:
                self.resumed_at = time.monotonic()
                os.kill(self.pid, signal.SIGCONT)

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.resume()


def _definition(key: str, event: str) -> dict[str, Any]:
    return {
        "key": key,
        "shards": 1,
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "metrics": [{"name": "conversion", "kind": "conversion", "event": event, "primary": True}],
    }


def _start(server: LiveServer, key: str, event: str = "purchase") -> None:
    r = httpx.post(server.url + "/v1/experiments", json=_definition(key, event), headers=AUTH)
    assert r.status_code == 201, r.text
    r = httpx.patch(server.url + f"/v1/experiments/{key}", json={"status": "running"}, headers=AUTH)
    assert r.status_code == 200, r.text


def _assign(server: LiveServer, key: str, visitor: str) -> dict[str, Any]:
    r = httpx.get(server.url + "/v1/assign", params={"experiment": key, "visitor_id": visitor})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int
    body: dict[str, Any]
    retry_after: str | None
    seconds: float
    finished: float


async def _burst(url: str, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Answer]:
    """Send every request at once; each answer with its own time from send to answer."""
    connector = aiohttp.TCPConnector(limit=len(requests))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def one(kind: str, path: str, body: dict[str, Any]) -> Answer:
            started = time.monotonic()
            if kind == "track":
                call = session.post(path, json=body)
            else:
                call = session.get(path, params=body)
            async with call as response:
                payload = await response.json()
                return Answer(
                    kind,
                    response.status,
                    payload,
                    response.headers.get("Retry-After"),
                    time.monotonic() - started,
                    time.monotonic(),
                )

        return await asyncio.gather(*(one(*r) for r in requests))


def _assigns(key: str, tag: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("assign", "/v1/assign", {"experiment": key, "visitor_id": f"{tag}-{i}"})
        for i in range(BURST)
    ]


def _tracks(visitors: list[str], event: str = "purchase") -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("track", "/v1/track", {"visitor_id": v, "event": event, "event_id": f"e-{v}"})
        for v in visitors
    ]


def _server(env: dict[str, str], prefix: str) -> LiveServer:
    return LiveServer(
        {
            **env,
            "ABACUS_KEY_PREFIX": prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
            "ABACUS_REDIS_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        }
    ).start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path, tcp=True, persist=False) as server:
        yield server


def test_a_stopped_redis_gets_honest_answers_within_the_timeout_and_recovers(
    own_redis: EmbeddedRedis,
) -> None:
    server = _server({"ABACUS_REDIS_URL": own_redis.url}, "stall")
    try:
        _start(server, "stall")
        known = [f"known-{i}" for i in range(BURST)]
        for visitor in known[:5]:
            assert _assign(server, "stall", visitor)["recorded"] is True
        pid = int(redis.Redis.from_url(own_redis.url).info("server")["process_id"])
        with Stopped(pid) as stall:
            answers = asyncio.run(_burst(server.url, _assigns("stall", "new") + _tracks(known)))
        assigns = [a for a in answers if a.kind == "assign"]
        tracks = [a for a in answers if a.kind == "track"]
        slowest = max(a.seconds for a in answers)
        print(
            f"\nstalled single Redis, {len(assigns)} assigns + {len(tracks)} tracks at once: "
            f"slowest answer {slowest:.2f} s (assign {max(a.seconds for a in assigns):.2f} s, "
            f"track {max(a.seconds for a in tracks):.2f} s), Redis timeout {TIMEOUT_SECONDS} s"
        )
        assert {(a.status, a.body["recorded"]) for a in assigns} == {(200, False)}
        assert all(a.body["variant"] in {"control", "treatment"} for a in assigns)
        assert {(a.status, a.retry_after, a.body["error"]) for a in tracks} == {
            (503, "1", "unavailable")
        }
        assert max(a.finished for a in answers) < stall.resumed_at  # none waited for Redis
        # resumed: the very next calls are recorded again, with no restart
        assert _assign(server, "stall", "after")["recorded"] is True
        r = httpx.post(server.url + "/v1/track", json={"visitor_id": "after", "event": "purchase"})
        assert r.status_code == 200 and r.json()["credited"] == ["stall"], r.text
    finally:
        server.stop()


def _masters(cluster: RedisCluster) -> dict[int, int]:
    """Port of each master -> its redis-server pid."""
    pids = {}
    for port in cluster.master_ports():
        with cluster.node(port).client() as node:
            pids[port] = int(node.info("server")["process_id"])
    return pids


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A cluster of this module's own; a node timeout far above the stall: no failover."""
    if redis_server_path() is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server)")
    with RedisCluster(tmp_path_factory.mktemp("stall-cluster"), node_timeout_ms=30_000) as c:
        yield c


HEALTHY = 50


async def _held_then_fine(
    url: str, on_stopped: str, healthy: str, buyers: list[str]
) -> tuple[list[Answer], list[Answer], list[Answer]]:
    """A burst on the hung node, then, while it waits, requests for healthy nodes."""
    held = asyncio.ensure_future(_burst(url, _assigns(on_stopped, "hung")))
    await asyncio.sleep(0.3)  # the held requests are now waiting on the hung node
    fine = await _burst(url, _assigns(healthy, "fine")[:HEALTHY] + _tracks(buyers, "signup"))
    return await held, fine[:HEALTHY], fine[HEALTHY:]


def test_a_stopped_cluster_node_holds_up_only_the_experiments_it_owns(
    own_cluster: RedisCluster,
) -> None:
    prefix = "hung"
    keys = Keyspace(prefix)
    with own_cluster.client() as client:
        owner = {
            name: int(client.get_node_from_key(key).port)
            for name, key in [("definitions", keys.definitions)]
            # one shard, generation 1: the first experiment ever created with that key
            + [(f"exp{i}", keys.shard(f"exp{i}", 1, 0, 1).agg) for i in range(40)]
        }
        activity = {
            a: int(client.get_node_from_key(keys.activity(a, ACTIVITY_SHARDS).log).port)
            for a in range(ACTIVITY_SHARDS)
        }
    masters = _masters(own_cluster)
    stopped = next(p for p in masters if p != owner["definitions"])
    on_stopped = next(k for k, p in owner.items() if k != "definitions" and p == stopped)
    healthy = next(k for k, p in owner.items() if k != "definitions" and p != stopped)
    # visitors whose activity-log shard is on a healthy node too: their tracks touch no hung node
    buyers = [
        v
        for v in (f"buyer-{i}" for i in range(2000))
        if activity[shard_of(v, ACTIVITY_SHARDS)] != stopped
    ][:BURST]
    server = _server({"ABACUS_REDIS_URL": own_cluster.url, "ABACUS_REDIS_CLUSTER": "1"}, prefix)
    try:
        # tracks credit every running experiment with a metric on the event: the two
        # experiments read different events, so a "signup" touches the healthy nodes only
        _start(server, on_stopped, "purchase")
        _start(server, healthy, "signup")
        for visitor in buyers:
            httpx.get(
                server.url + "/v1/assign", params={"experiment": healthy, "visitor_id": visitor}
            )
        time.sleep(1.5)  # the definitions copy is now older than its 1 s refresh period
        with Stopped(masters[stopped]) as stall:
            held, fine, tracks = asyncio.run(
                _held_then_fine(server.url, on_stopped, healthy, buyers[:HEALTHY])
            )
        first_held = min(a.finished for a in held)
        fine_done = max(a.finished for a in fine + tracks)
        print(
            f"\ncluster, master :{stopped} stopped: {BURST} assigns on it answered after "
            f"{min(a.seconds for a in held):.2f}-{max(a.seconds for a in held):.2f} s "
            f"(recorded: false); meanwhile {HEALTHY} assigns + {HEALTHY} tracks on healthy "
            f"nodes answered in at most {max(a.seconds for a in fine + tracks):.2f} s, the "
            f"last {first_held - fine_done:.2f} s before the first held answer"
        )
        assert {(a.status, a.body["recorded"]) for a in held} == {(200, False)}
        assert max(a.finished for a in held) < stall.resumed_at  # none waited for the node
        assert {(a.status, a.body["recorded"]) for a in fine} == {(200, True)}
        assert {a.status for a in tracks} == {200}
        assert all(a.body["credited"] == [healthy] for a in tracks)
        assert fine_done < first_held  # nobody on a healthy node waited for the hung one
        own_cluster.wait_until_ok()
        assert _assign(server, on_stopped, "after")["recorded"] is True
    finally:
        server.stop()
