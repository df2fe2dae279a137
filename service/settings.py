"""Service settings, read once from the environment by ``Settings.from_env()``.

================================  =====================================================  ===========
variable                          meaning                                                default
================================  =====================================================  ===========
``ABACUS_REDIS_URL``              Redis URL (``redis://``, ``rediss://``, ``unix://``)   embedded
``ABACUS_REDIS_CLUSTER``          ``1`` when the URL points at a Redis Cluster           ``0``
``ABACUS_REDIS_TIMEOUT_SECONDS``  how long a Redis connect or reply is awaited; past     ``2.0``
                                  it tracking answers 503, assignment is not recorded
``ABACUS_DATA_DIR``               data directory of the embedded Redis (AOF)             ``.abacus``
``ABACUS_ADMIN_KEY``              bearer key for admin endpoints (at least 16            unset
                                  characters, no spaces); unset = loopback only
``ABACUS_ALLOWED_HOSTS``          comma-separated Host names the service answers; others loopback
                                  get 400 (DNS rebinding); ``*`` = any                   names, or
                                                                                         ``*`` with
                                                                                         a key
``ABACUS_CORS_ORIGINS``           comma-separated origins allowed to call the public     ``*``
                                  API (never the admin API)
``ABACUS_KEY_PREFIX``             prefix of every Redis key                              ``abacus``
``ABACUS_LOG_MAX_LENGTH``         length cap of each log stream (one per experiment      100000
                                  shard and per activity shard; 0 = no log is kept)
================================  =====================================================  ===========

The background loops run every so many seconds, in [0, 86400], 0 turning a loop off (default
60): ``ABACUS_BANDIT_INTERVAL_SECONDS`` steps the bandits that are due,
``ABACUS_NOTIFY_INTERVAL_SECONDS`` checks the running experiments for webhook events
(``docs/notifications.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from experiments.connection import DEFAULT_TIMEOUT_SECONDS

__all__ = ["LOOPBACK_HOSTS", "MIN_ADMIN_KEY_LENGTH", "Settings"]

MIN_ADMIN_KEY_LENGTH = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""The Host names a service without an admin key answers: it listens on loopback only."""


def _check_admin_key(key: str) -> None:
    if len(key) < MIN_ADMIN_KEY_LENGTH or any(c.isspace() or not c.isprintable() for c in key):
        raise ValueError(
            f"ABACUS_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LENGTH} printable characters "
            f"without spaces, got {len(key)} characters; generate one with "
            "'python3 -c \"import secrets; print(secrets.token_urlsafe(32))\"'"
        )


def _interval(env: Mapping[str, str], name: str) -> float:
    """A background loop's period: seconds in [0, 86400], 0 turning the loop off."""
    given = env.get(name, "60")
    try:
        seconds = float(given)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 86_400:
        raise ValueError(
            f"{name} must be a number of seconds in [0, 86400] (0 = no loop), got {given!r}"
        )
    return seconds


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    redis_cluster: bool = False
    data_dir: Path = Path(".abacus")
    admin_key: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    key_prefix: str = "abacus"
    log_max_length: int = 100_000
    redis_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    definitions_ttl_seconds: float = 1.0
    max_body_bytes: int = 1_048_576
    allowed_hosts: tuple[str, ...] | None = None
    """None: :data:`LOOPBACK_HOSTS` without an admin key, any host with one."""
    bandit_interval_seconds: float = 60.0
    """How often the service steps the bandits that are due; 0 turns the loop off."""
    notify_interval_seconds: float = 60.0
    """How often the service checks the running experiments for webhook events; 0: never."""

    def __post_init__(self) -> None:
        if self.admin_key is not None:
            _check_admin_key(self.admin_key)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The Host names answered (``("*",)`` for any)."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        return LOOPBACK_HOSTS if self.admin_key is None else ("*",)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        origins = env.get("ABACUS_CORS_ORIGINS", "*")
        length = env.get("ABACUS_LOG_MAX_LENGTH", "100000")
        if not length.isdigit():
            raise ValueError(f"ABACUS_LOG_MAX_LENGTH must be a whole number >= 0, got {length!r}")
        timeout = env.get("ABACUS_REDIS_TIMEOUT_SECONDS", str(DEFAULT_TIMEOUT_SECONDS))
        try:
            timeout_seconds = float(timeout)
        except ValueError:
            timeout_seconds = float("nan")
        if not 0 < timeout_seconds <= 600:
            raise ValueError(
                f"ABACUS_REDIS_TIMEOUT_SECONDS must be a number of seconds in (0, 600], got "
                f"{timeout!r}"
            )
        bandit_seconds = _interval(env, "ABACUS_BANDIT_INTERVAL_SECONDS")
        notify_seconds = _interval(env, "ABACUS_NOTIFY_INTERVAL_SECONDS")
        hosts = env.get("ABACUS_ALLOWED_HOSTS", "")
        return cls(
            allowed_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()) or None,
            redis_url=env.get("ABACUS_REDIS_URL") or None,
            redis_cluster=env.get("ABACUS_REDIS_CLUSTER", "0") in {"1", "true", "yes"},
            redis_timeout_seconds=timeout_seconds,
            data_dir=Path(env.get("ABACUS_DATA_DIR", ".abacus")),
            admin_key=env.get("ABACUS_ADMIN_KEY") or None,
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            key_prefix=env.get("ABACUS_KEY_PREFIX", "abacus"),
            log_max_length=int(length),
            bandit_interval_seconds=bandit_seconds,
            notify_interval_seconds=notify_seconds,
        )
