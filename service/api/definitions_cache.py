"""An in-process copy of the experiment definitions for the assignment and tracking paths.

Reading every definition from Redis on every request would double the cost of assignment, so
each worker keeps a copy and re-reads it when the ``_version`` counter moves, checking the
counter at most once per ``ttl_seconds``. A change made through this worker is seen at once;
one made through another worker within ``ttl_seconds``. Sticky exposures make that delay
harmless for bucketing: a visitor's variant never changes once recorded.
"""

from __future__ import annotations

import asyncio
import time

from experiments.definitions import Experiment, Status
from experiments.errors import ExperimentNotFoundError, StoreUnavailableError
from experiments.store import Store

__all__ = ["DefinitionCache"]


class DefinitionCache:
    def __init__(self, store: Store, *, ttl_seconds: float = 1.0) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._version = -1
        self._checked = float("-inf")
        self._all: dict[str, Experiment] = {}
        self._running: list[Experiment] = []
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._checked = float("-inf")
        self._version = -1

    async def _refresh(self) -> None:
        if time.monotonic() - self._checked < self.ttl_seconds:
            return
        # Single flight: a burst of requests after a change waits for one read, not one each.
        async with self._lock:
            now = time.monotonic()
            if now - self._checked < self.ttl_seconds:
                return
            await self._read(now)

    async def _read(self, now: float) -> None:
        try:
            version = await self.store.definitions_version()
            if version != self._version:
                version, experiments = await self.store.definitions()
                self._all = experiments
                self._running = [e for e in experiments.values() if e.status is Status.RUNNING]
                self._version = version
        except StoreUnavailableError:
            if self._version < 0:
                raise  # nothing cached yet: there is no honest answer to give
            # Keep answering from the last copy; assignment marks itself as not recorded.
        self._checked = now

    async def get(self, key: str) -> Experiment:
        await self._refresh()
        experiment = self._all.get(key)
        if experiment is None:
            raise ExperimentNotFoundError(key)
        return experiment

    async def all(self) -> dict[str, Experiment]:
        await self._refresh()
        return self._all

    async def running(self) -> list[Experiment]:
        await self._refresh()
        return self._running
