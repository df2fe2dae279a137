"""Store fixtures: every test here that uses Redis runs on the embedded server and the cluster."""

from __future__ import annotations

import pytest

from tests.conftest import BOTH_REDIS, RedisTarget, redis_target


@pytest.fixture(scope="session", params=BOTH_REDIS)
def redis_server(request: pytest.FixtureRequest) -> RedisTarget:
    return redis_target(request, request.param)
