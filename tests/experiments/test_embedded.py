"""The embedded redis-server: persistence across restarts and one server per data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from experiments.embedded import EmbeddedRedis
from experiments.errors import StoreUnavailableError


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        redis.Redis.from_url(server.url).hset("h", "k", "v")
    assert (tmp_path / "abacus.aof").exists()
    with EmbeddedRedis(tmp_path) as server:
        assert redis.Redis.from_url(server.url).hget("h", "k") == b"v"


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        with pytest.raises(StoreUnavailableError, match="is in use by a live embedded Redis") as e:
            EmbeddedRedis(tmp_path).start()
        assert f"pid {os.getpid()}, redis-server pid {first.pid}" in str(e.value)
        assert str(tmp_path.resolve()) in str(e.value)
    # released on stop
    with EmbeddedRedis(tmp_path) as server:
        assert redis.Redis.from_url(server.url).ping()


def test_the_server_itself_holds_the_data_directory_lock(tmp_path: Path) -> None:
    """A redis-server whose starter lost its lock (it died) still keeps a second one out."""
    server = EmbeddedRedis(tmp_path).start()
    try:
        assert server._lock is not None
        server._lock.close()  # as if the starting process were gone
        server._lock = None
        with pytest.raises(StoreUnavailableError, match=f"redis-server pid {server.pid}"):
            EmbeddedRedis(tmp_path).start()
    finally:
        server.stop()
