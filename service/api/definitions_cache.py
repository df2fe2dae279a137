"""An in-process copy of the experiment definitions for the assignment and tracking paths.

Reading every definition from Redis on every request would double the cost of assignment, so
each worker keeps a copy and re-reads it when the ``_version`` counter moves, checking the
counter at most once per ``ttl_seconds``. Sticky exposures make the delay harmless for
bucketing: a visitor's variant never changes once recorded.

A request never waits on a periodic refresh: it is answered from the last good copy while one
refresh runs in the background, so a slow or hung Redis cannot queue requests behind it. A
request waits (for that same single refresh, bounded by the Redis timeout) only when there is
no honest copy to answer from: before the first load, after a change made through this worker
(:meth:`invalidate`, so the change is seen at once), and for a key the copy does not know (it
may have been created through another worker a moment ago).
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
        self._running: tuple[Experiment, ...] = ()
        self._stale = True
        self._refresh: asyncio.Task[None] | None = None
        self._error: StoreUnavailableError | None = None

    def invalidate(self) -> None:
        """Make the next request wait for a fresh copy (after a change through this worker)."""
        self._stale = True

    async def _current(self, *, wait: bool = False) -> None:
        wait = wait or self._stale or self._version < 0
        if not wait:
            if self._refresh is None and time.monotonic() - self._checked >= self.ttl_seconds:
                self._start()
            return
        # A refresh that began before the latest invalidate() may have read the old copy: then
        # one more is needed.
        for _ in range(2):
            # shield: a request that gives up (client gone) does not cancel the shared refresh
            await asyncio.shield(self._refresh or self._start())
            if not self._stale:
                break
        if self._version < 0 and self._error is not None:
            raise self._error  # nothing cached yet: there is no honest answer to give

    def _start(self) -> asyncio.Task[None]:
        self._refresh = asyncio.get_running_loop().create_task(self._read())
        return self._refresh

    async def _read(self) -> None:
        self._stale = False  # a change made from now on needs another read
        started = time.monotonic()
        try:
            version = await self.store.definitions_version()
            if version != self._version:
                version, experiments = await self.store.definitions()
                self._all = experiments
                self._running = tuple(e for e in experiments.values() if e.status is Status.RUNNING)
                self._version = version
            self._error = None
        except StoreUnavailableError as exc:
            # Keep answering from the last copy; assignment marks itself as not recorded.
            self._error = exc
        finally:
            self._checked = started
            self._refresh = None

    async def aclose(self) -> None:
        """Let a refresh still running finish (the app is shutting down)."""
        if self._refresh is not None:
            await asyncio.gather(self._refresh, return_exceptions=True)

    def peek(self, key: str) -> Experiment | None:
        """``key``'s definition when the copy is current enough to answer without waiting
        (what :meth:`get` would give at once); None otherwise: then ask :meth:`get`."""
        if self._stale or self._version < 0:
            return None
        if self._refresh is None and time.monotonic() - self._checked >= self.ttl_seconds:
            self._start()
        return self._all.get(key)

    async def get(self, key: str) -> Experiment:
        await self._current()
        experiment = self._all.get(key)
        if experiment is None:
            await self._current(wait=True)
            experiment = self._all.get(key)
        if experiment is None:
            raise ExperimentNotFoundError(key)
        return experiment

    async def all(self) -> dict[str, Experiment]:
        await self._current()
        return self._all

    async def running(self) -> tuple[Experiment, ...]:
        """The running experiments: one tuple per version of the copy (the store keeps what
        it derives from it while the same tuple comes back)."""
        await self._current()
        return self._running
