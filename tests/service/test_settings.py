"""Settings read from the environment: the Redis timeout and cluster switch."""

from __future__ import annotations

import pytest

from experiments.connection import DEFAULT_TIMEOUT_SECONDS
from service.settings import Settings


def test_the_redis_timeout_and_cluster_mode_come_from_the_environment() -> None:
    default = Settings.from_env({})
    assert default.redis_timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert default.redis_cluster is False
    chosen = Settings.from_env(
        {"ABACUS_REDIS_TIMEOUT_SECONDS": "0.25", "ABACUS_REDIS_CLUSTER": "1"}
    )
    assert chosen.redis_timeout_seconds == 0.25
    assert chosen.redis_cluster is True


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "601"])
def test_a_bad_redis_timeout_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match=f"ABACUS_REDIS_TIMEOUT_SECONDS .* got '{value}'"):
        Settings.from_env({"ABACUS_REDIS_TIMEOUT_SECONDS": value})


def test_the_bandit_loop_interval_comes_from_the_environment() -> None:
    assert Settings.from_env({}).bandit_interval_seconds == 60.0
    assert Settings.from_env({"ABACUS_BANDIT_INTERVAL_SECONDS": "0"}).bandit_interval_seconds == 0
    for value in ("-1", "often", "nan", "86401"):
        with pytest.raises(ValueError, match=f"ABACUS_BANDIT_INTERVAL_SECONDS .* got '{value}'"):
            Settings.from_env({"ABACUS_BANDIT_INTERVAL_SECONDS": value})


def test_the_notifier_loop_interval_comes_from_the_environment() -> None:
    assert Settings.from_env({}).notify_interval_seconds == 60.0
    assert Settings.from_env({"ABACUS_NOTIFY_INTERVAL_SECONDS": "0"}).notify_interval_seconds == 0
    assert (
        Settings.from_env({"ABACUS_NOTIFY_INTERVAL_SECONDS": "0.5"}).notify_interval_seconds == 0.5
    )
    for value in ("-1", "often", "nan", "86401"):
        with pytest.raises(ValueError, match=f"ABACUS_NOTIFY_INTERVAL_SECONDS .* got '{value}'"):
            Settings.from_env({"ABACUS_NOTIFY_INTERVAL_SECONDS": value})
