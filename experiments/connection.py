"""Opening the Redis client and turning every Redis failure into :class:`StoreUnavailableError`.

The rest of the package talks to Redis only through a client made here and calls wrapped by
:func:`guard` / :func:`guarded`, so a caller sees one error type for "the store could not
answer", whatever the cause (refused connection, timeout, cluster down).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from experiments.errors import StoreUnavailableError

__all__ = ["connect", "guard", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")


def connect(url: str, *, cluster: bool = False, max_connections: int = 64) -> Any:
    """An asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

    The pool is bounded and blocking: a burst of requests waits (up to 5 s) for one of
    ``max_connections`` connections instead of failing with "too many connections"; Redis runs
    one command at a time, so more connections would not make it faster.
    """
    if cluster:
        return aioredis.RedisCluster.from_url(
            url, decode_responses=True, max_connections=max_connections
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        max_connections=max_connections,
        timeout=5,
    )
    # from_pool: the client owns the pool, so aclose() closes its connections too.
    return aioredis.Redis.from_pool(pool)


async def guard(call: Awaitable[T]) -> T:
    """Await ``call``; a Redis failure becomes :class:`StoreUnavailableError`."""
    try:
        return await call
    except RedisError as exc:
        raise StoreUnavailableError(f"redis: {exc}") from exc


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a coroutine function so its Redis failures are raised as ours."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await guard(fn(*args, **kwargs))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
