"""A throwaway Redis Cluster on loopback: 3 masters + 3 replicas of Debian's ``redis-server``.

Each node runs in its own directory under ``base_dir``, with no persistence. A node's cluster bus
listens on its port + 10000, so ports are drawn from [20000, 45535] and both ports of every node
are checked free before starting; another process may still take one in between, so a start
that fails is retried on other ports. ``start`` returns once every node reports
``cluster_state:ok`` and agrees on the slot owners; ``stop`` kills every node it started, also
after a failed start.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

__all__ = ["ClusterNode", "RedisCluster", "redis_server_path"]

BUS_OFFSET = 10000
LOWEST_PORT = 20000
HIGHEST_PORT = 55535 - BUS_OFFSET


def redis_server_path() -> str | None:
    """Debian's redis-server (7.x) and redis-cli, or None when either is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        return None
    return server


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, rng: random.Random) -> list[int]:
    """``count`` ports whose bus ports (port + 10000) are free too."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randint(LOWEST_PORT, HIGHEST_PORT)
        if port in chosen or port + BUS_OFFSET in chosen:
            continue
        if _is_free(port) and _is_free(port + BUS_OFFSET):
            chosen.append(port)
    return chosen


@dataclass
class ClusterNode:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def alive(self) -> bool:
        return self.process.poll() is None


class RedisCluster:
    """Six ``redis-server`` processes joined by ``redis-cli --cluster create``.

    ``node_timeout_ms`` is the cluster's ``cluster-node-timeout``: how long a master may be
    silent before its replica takes over.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = 5000,
    ) -> None:
        self.base_dir = base_dir
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []
        server = redis_server_path()
        if server is None:
            raise RuntimeError("redis-server and redis-cli are not installed")
        self.server = server

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas_per_master)

    @property
    def url(self) -> str:
        """A URL for cluster clients: any node will do, the client discovers the others."""
        return self.nodes[0].url

    def start(self, attempts: int = 5, timeout_seconds: float = 60.0) -> RedisCluster:
        rng = random.Random()
        error: Exception | None = None
        for _ in range(attempts):
            try:
                self._start_once(_free_ports(self.size, rng), timeout_seconds)
                return self
            except (RuntimeError, redis.RedisError, subprocess.SubprocessError) as exc:
                error = exc
                self.stop()
        raise RuntimeError(f"no Redis Cluster after {attempts} attempts: {error}")

    def _start_once(self, ports: list[int], timeout_seconds: float) -> None:
        for port in ports:
            directory = self.base_dir / str(port)
            directory.mkdir(parents=True, exist_ok=True)
            command = [
                self.server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--appendonly", "no",
                "--save", "",
                "--protected-mode", "no",
                "--logfile", "redis.log",
            ]  # fmt: skip
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.nodes.append(ClusterNode(port, directory, process))
        deadline = time.monotonic() + timeout_seconds
        for node in self.nodes:
            self._wait_for_ping(node, deadline)
        create = subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout[-2000:]}")
        self.wait_until_ok(deadline - time.monotonic())

    def _wait_for_ping(self, node: ClusterNode, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not node.alive():
                log = (node.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {node.port} exited: {log}")
            try:
                with node.client() as client:
                    if client.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {node.port} did not answer")

    def wait_until_ok(self, timeout_seconds: float = 30.0, *, without: int | None = None) -> None:
        """Until every live node says ``cluster_state:ok`` and all agree on the masters.

        ``without``: the port of a master that was stopped or killed; also wait until no node
        counts it among the masters (right after a kill the cluster still says ok: the failure
        is noticed only after the node timeout).
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            views: set[tuple[int, ...]] = set()
            ok = True
            for node in self.nodes:
                if not node.alive():
                    continue
                try:
                    with node.client() as client:
                        info = str(client.execute_command("CLUSTER", "INFO"))
                        ok = ok and "cluster_state:ok" in info
                        views.add(tuple(sorted(self._masters_seen(client))))
                except redis.RedisError:
                    ok = False
            if ok and len(views) == 1 and not any(without in view for view in views):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _masters_seen(client: redis.Redis) -> list[int]:
        ports: list[int] = []
        for line in str(client.execute_command("CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2] and fields[8:]:
                ports.append(int(fields[1].split(":")[1].split("@")[0]))
        return ports

    def master_ports(self) -> list[int]:
        """The ports of the live masters that own slots, as the first live node sees them."""
        for node in self.nodes:
            if node.alive():
                with node.client() as client:
                    return sorted(self._masters_seen(client))
        return []

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def client(self) -> redis.RedisCluster:
        """A synchronous cluster client (for fixtures and checks)."""
        return redis.RedisCluster(
            host="127.0.0.1", port=self.nodes[0].port, decode_responses=True, socket_timeout=10
        )

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                node.process.send_signal(signal.SIGCONT)  # a stopped process cannot exit
                node.process.kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
        self.nodes = []

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
