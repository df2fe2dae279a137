"""Opening the Redis client and turning every Redis failure into :class:`StoreUnavailableError`.

The rest of the package talks to Redis only through a client made here and calls wrapped by
:func:`guard` / :func:`guarded`, so a caller sees one error type for "the store could not
answer", whatever the cause (refused connection, timeout, cluster down, a slot with no owner
during a failover).

Nothing waits on Redis for long: connecting, each reply and waiting for a pooled connection are
bounded by ``timeout_seconds``, and a command that timed out or lost its connection is not sent
again by the client (it may have run: resending a script that counts an event would count it
twice). On a cluster the client may retry once after re-reading the slot table, which is how it
follows a failover.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeAlias, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import RedisClusterException, RedisError

from experiments.errors import StoreUnavailableError
from experiments.lane import Lane

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "REDIS_FAILURES",
    "Client",
    "LanedRedis",
    "connect",
    "guard",
    "guarded",
    "is_closed_transport",
]

Client: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"
"""The asyncio client the store runs on: one server or a cluster."""

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 2.0
"""How long a Redis connect, reply or free pooled connection is awaited by default (and an
assignment or tracking call as a whole). Short enough that a hung Redis answers in seconds,
long enough that a burst which saturates a worker is queued, not refused."""

REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What redis-py raises when the store cannot answer (the cluster errors are not RedisErrors)."""
_TRANSLATED: tuple[type[Exception], ...] = (*REDIS_FAILURES, RuntimeError, AttributeError)
"""What :func:`guard` looks at: Redis failures, and the closed transports of
:func:`is_closed_transport`."""

CLUSTER_CONNECTIONS_PER_NODE = 512
"""redis-py's cluster pool does not wait for a free connection (it raises beyond its size), so
a cluster client may open more per node than the single-server pool, which waits."""


class _HiredisPacking(AbstractConnection):
    """redis-py's asyncio connection, packing commands with hiredis (C) instead of in Python.

    The same bytes either way; redis-py's asyncio connection packs argument by argument in
    Python, which a batch of tracked events (about 20,000 script arguments for 1,000 events)
    spent most of its time on.
    """

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " not in args[0]:
            try:  # the common case (EVALSHA and plain commands of str and int arguments)
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # a memoryview or the like: redis-py's serializer converts it
        packed: list[bytes] = self._packer.pack(*args)
        return packed


class _PackedConnection(_HiredisPacking, Connection):
    pass


class _PackedUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


class _PackedSSLConnection(_HiredisPacking, SSLConnection):
    pass


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _PackedConnection,
    UnixDomainSocketConnection: _PackedUnixConnection,
    SSLConnection: _PackedSSLConnection,
}
"""Each connection class redis-py picks for a URL scheme, and its hiredis-packing twin."""


def _packed(kind: type[AbstractConnection]) -> type[AbstractConnection]:
    return _PACKED.get(kind, kind)


def _pack_with_hiredis(client: aioredis.RedisCluster) -> None:
    """Make every node connection of a cluster client pack with hiredis.

    The cluster client takes no connection class; it builds its nodes (now, and when it
    discovers more) from one set of keyword arguments, which carries the class.
    """
    manager = client.nodes_manager
    kind = cast(
        type[Connection], _packed(manager.connection_kwargs.get("connection_class", Connection))
    )
    manager.connection_kwargs["connection_class"] = kind
    for node in (*manager.startup_nodes.values(), *manager.nodes_cache.values()):
        node.connection_class = kind


class LanedRedis(aioredis.Redis):
    """The single-server client, with a :class:`~experiments.lane.Lane` beside its pool for
    the store's batched script calls (None for TLS: those go through the pool)."""

    lane: Lane | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.lane is not None:
            await self.lane.aclose()
        await super().aclose(close_connection_pool)


def connect(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = 64,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Client:
    """An asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

    The single-server pool is bounded and blocking: a burst of requests waits (up to
    ``timeout_seconds``) for one of ``max_connections`` connections instead of failing with "too
    many connections"; Redis runs one command at a time, so more connections would not make it
    faster. With ``cluster`` the URL names any node; the client discovers the others.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
    if cluster:
        client = aioredis.RedisCluster.from_url(
            url,
            decode_responses=True,
            max_connections=max(max_connections, CLUSTER_CONNECTIONS_PER_NODE),
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),
        )
        _pack_with_hiredis(client)
        return client
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        max_connections=max_connections,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )
    pool.connection_class = cast(type[Connection], _packed(pool.connection_class))
    # from_pool: the client owns the pool, so aclose() closes its connections too.
    single = cast(LanedRedis, LanedRedis.from_pool(pool))  # from_pool is typed as Redis
    single.lane = Lane.of_pool(pool, timeout_seconds)
    return single


async def guard(call: Awaitable[T], *, timeout_seconds: float | None = None) -> T:
    """Await ``call``; a Redis failure becomes :class:`StoreUnavailableError`.

    With ``timeout_seconds`` the whole call, however many commands and pool waits it makes,
    gets that long, and the caller is answered then: the call itself is cancelled but not
    waited for (a cancellation can be absorbed inside a connection pool's wait, and the call
    then runs on to its own socket timeout).
    """
    try:
        if timeout_seconds is None:
            return await call
        task = asyncio.ensure_future(call)
        done, _ = await asyncio.wait({task}, timeout=timeout_seconds)
        if not done:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise StoreUnavailableError(f"redis: no answer within {timeout_seconds} s")
        return task.result()
    except _TRANSLATED as exc:
        if (ours := _as_ours(exc)) is None:
            raise
        raise ours from exc


def _as_ours(exc: Exception) -> StoreUnavailableError | None:
    """A Redis failure as :class:`StoreUnavailableError`; None for any other error."""
    if isinstance(exc, REDIS_FAILURES):
        return StoreUnavailableError(f"redis: {exc}")
    if is_closed_transport(exc):
        return StoreUnavailableError(f"redis: connection closed ({exc})")
    return None


def is_closed_transport(exc: BaseException) -> bool:
    """Whether ``exc`` is uvloop refusing a write on a connection the server closed.

    redis-py passes it on as it is (a RuntimeError, not a ConnectionError) when a node dies
    between two commands on a pooled connection.

    Or redis-py's own connection, torn down by a failure on another command while this one was
    being written, failing on its missing stream writer (an AttributeError raised inside
    ``redis.asyncio.connection``; seen when a cluster master is killed under load).
    """
    if isinstance(exc, RuntimeError):
        return "handler is closed" in str(exc)
    if isinstance(exc, AttributeError):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and tb.tb_frame.f_globals.get("__name__") == _REDIS_CONNECTION
    return False


_REDIS_CONNECTION = "redis.asyncio.connection"


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read an abandoned call's outcome so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a coroutine function so its Redis failures are raised as ours."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:  # guard(fn(...)) without its frame: the hot path goes through here
            return await fn(*args, **kwargs)
        except _TRANSLATED as exc:
            if (ours := _as_ours(exc)) is None:
                raise
            raise ours from exc

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
