"""``abacus serve`` stops the Redis it started, however it is stopped, and guards its data dir.

Each test starts ``abacus serve`` on a data directory of its own and finds its redis-server by
that directory (the server's working directory is its data directory), so only processes this
test started are looked at or signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import ROOT, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")


def _redis_servers_in(data_dir: Path) -> list[int]:
    """Pids of the redis-server processes whose working directory is ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "redis-server" not in (entry / "comm").read_text():
                continue
            if Path(os.readlink(entry / "cwd")) == data_dir.resolve():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABACUS_")}
    env["ABACUS_DATA_DIR"] = str(data_dir)
    return env


def _serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), *extra]
    log = data_dir.parent / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            env=_env(data_dir),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("abacus serve did not become healthy")


def _gone(data_dir: Path, pids: list[int], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _redis_servers_in(data_dir) and not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.1)
    return False


def _cleanup(pids: list[int]) -> None:
    for pid in pids:  # only the servers this test started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2"), (signal.SIGINT, "2")],
    ids=["sigterm", "sigint", "sigterm-2-workers", "sigint-2-workers"],
)
def test_a_stopped_serve_leaves_no_redis_server(tmp_path: Path, signum: int, workers: str) -> None:
    data_dir = tmp_path / "data"
    process, _ = _serve(data_dir, "--workers", workers)
    servers = _redis_servers_in(data_dir)
    assert len(servers) == 1, servers
    try:
        process.send_signal(signum)
        process.wait(timeout=30)
        assert _gone(data_dir, servers), f"redis-server {servers} still runs"
    finally:
        if process.poll() is None:
            process.kill()
        _cleanup(servers)
    # and the directory is free again: a new serve starts on it
    again, _ = _serve(data_dir)
    again.send_signal(signal.SIGTERM)
    again.wait(timeout=30)


def test_a_killed_serve_takes_its_redis_server_with_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, _ = _serve(data_dir)
    servers = _redis_servers_in(data_dir)
    assert len(servers) == 1, servers
    try:
        process.kill()  # SIGKILL: no cleanup code runs in the parent
        process.wait(timeout=10)
        assert _gone(data_dir, servers), f"redis-server {servers} outlived its parent"
    finally:
        _cleanup(servers)


def test_a_second_serve_on_a_live_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, port = _serve(data_dir)
    servers = _redis_servers_in(data_dir)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port())],
            env=_env(data_dir),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stderr
        message = second.stderr
        assert "refusing to start" in message, message
        assert str(data_dir.resolve()) in message, message
        assert f"pid {first.pid}" in message, message
        assert "Traceback" not in message, message
        assert _redis_servers_in(data_dir) == servers  # no second server was started
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        _cleanup(servers)


def test_a_short_admin_key_is_refused_at_start(tmp_path: Path) -> None:
    env = {**_env(tmp_path / "data"), "ABACUS_ADMIN_KEY": " "}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ABACUS_ADMIN_KEY must be at least 16" in result.stderr
    assert not _redis_servers_in(tmp_path / "data")
