"""A real :class:`Store` on a test's own keyspace, for synchronous test code.

``store(work)`` opens a client on the session's Redis, runs ``await work(Store(...))`` on a loop
of its own (:func:`service.loops.run_sync`) and closes the client, so tests need not care which
loop the calling thread runs (Playwright's sync API keeps one running on the main thread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from experiments.keys import Keyspace
from experiments.store import Store
from service.loops import run_sync

__all__ = ["StoreRunner"]

T = TypeVar("T")


class StoreRunner:
    """Runs coroutines against a store on the Redis at ``url`` under key ``prefix``."""

    def __init__(self, url: str, prefix: str, *, cluster: bool = False) -> None:
        self.url = url
        self.prefix = prefix
        self.cluster = cluster

    def __call__(self, work: Callable[[Store], Awaitable[T]], **options: Any) -> T:
        """The result of ``work(store)``; ``options`` go to :class:`Store` (``log_max_length``,
        ``dedup_seconds``, ...)."""

        async def main() -> T:
            # Not experiments.connection.connect: its health-check option leaves a socket for
            # the garbage collector after aclose(), which the warnings filter turns into a failure.
            client: aioredis.Redis | aioredis.RedisCluster
            if self.cluster:
                client = aioredis.RedisCluster.from_url(self.url, decode_responses=True)
            else:
                client = aioredis.from_url(self.url, decode_responses=True)
            try:
                return await work(Store(client, Keyspace(self.prefix), **options))
            finally:
                await client.aclose()

        return run_sync(main)
