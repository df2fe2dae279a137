"""The real service in a uvicorn subprocess on 127.0.0.1, started and awaited until healthy.

The end-to-end tests and the benchmark scripts both use :class:`LiveServer`; benchmarks put the
repository root on ``sys.path`` to import it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

__all__ = ["ROOT", "LiveServer", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
APP = "service.api.app:create_app"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The service (uvloop + httptools, one worker) in its own process, on a free port.

    ``env`` is added to this process's environment (a value of ``None`` removes the variable).
    ``via_cli`` starts it as ``abacus serve`` (which starts the embedded Redis itself when
    ``ABACUS_REDIS_URL`` is empty); ``app`` names another application factory to serve.
    """

    def __init__(
        self,
        env: Mapping[str, str | None],
        *,
        via_cli: bool = False,
        app: str = APP,
        startup_seconds: float = 30,
    ) -> None:
        self.via_cli = via_cli
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.startup_seconds = startup_seconds
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        port = str(self.port)
        if self.via_cli:
            return [sys.executable, "-m", "service.cli", "serve", "--port", port]
        return [
            *(sys.executable, "-m", "uvicorn", self.app, "--factory"),
            *("--host", "127.0.0.1", "--port", port, "--loop", "uvloop", "--http", "httptools"),
            *("--no-access-log", "--log-level", "warning"),
        ]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the service is not running")
        return self.process.pid

    def create_running(self, definition: Mapping[str, object], admin_key: str) -> None:
        """Create the experiment ``definition`` through the API and start it."""
        auth = {"Authorization": f"Bearer {admin_key}"}
        created = httpx.post(self.url + "/v1/experiments", json=dict(definition), headers=auth)
        if created.status_code != 201:
            raise RuntimeError(f"creating the experiment failed: {created.text}")
        key = definition["key"]
        started = httpx.patch(
            self.url + f"/v1/experiments/{key}", json={"status": "running"}, headers=auth
        )
        if started.status_code != 200:
            raise RuntimeError(f"starting the experiment failed: {started.text}")

    def start(self) -> Self:
        """Start the process and return once ``/healthz`` answers 200."""
        command = self._command()
        if self.via_cli:
            command += ["--log-level", "warning"]
        self.process = subprocess.Popen(command, env=self._environment(), cwd=ROOT)
        deadline = time.monotonic() + self.startup_seconds
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
        raise RuntimeError(f"service did not become healthy within {self.startup_seconds:g} s")

    def stop(self) -> None:
        """Stop the process (SIGINT, then SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
