"""The embedded redis-server: persistence across restarts and one server per data directory."""

from __future__ import annotations

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
    with (
        EmbeddedRedis(tmp_path),
        pytest.raises(StoreUnavailableError, match="is in use by another embedded Redis"),
    ):
        EmbeddedRedis(tmp_path).start()
    # released on stop
    with EmbeddedRedis(tmp_path) as server:
        assert redis.Redis.from_url(server.url).ping()
