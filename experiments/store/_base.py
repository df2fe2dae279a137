"""What every part of the store shares: the client, the keyspace, the registered scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from experiments.batching import CallBatcher, ScriptBatcher
from experiments.bounded import BoundedDict
from experiments.connection import Client
from experiments.definitions import Experiment
from experiments.keys import Keyspace, ShardKeys, VisitorPlace, place_of
from experiments.limits import DEDUP_WINDOW_SECONDS
from experiments.store.scripts import (
    ACCESS,
    ACTIVITY,
    ASSIGN,
    ATTEMPT,
    BANDIT_PERIOD,
    DEDUP_PARTS,
    DIMENSION,
    EXPOSED,
    PUT_DEFINITION,
    SECRET,
    SESSION,
    TRACK,
)

__all__ = ["Client", "ScriptCall", "StoreBase"]

ScriptCall = tuple[AsyncScript, list[str], list[str | int]]


class StoreBase:
    """Abacus's state in one Redis (or Redis Cluster): the parts every method needs."""

    def __init__(
        self,
        client: Client,
        keyspace: Keyspace | None = None,
        *,
        log_max_length: int = 100_000,
        dedup_seconds: int = DEDUP_WINDOW_SECONDS,
        activity_shards: int = 64,
        activity_slices: int = 256,
        on_activity_failure: Callable[[int], None] | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        if activity_shards < 1 or activity_slices < 1:
            raise ValueError(
                f"activity_shards and activity_slices must be >= 1, "
                f"got {activity_shards} and {activity_slices}"
            )
        if dedup_seconds < DEDUP_PARTS:
            raise ValueError(f"dedup_seconds must be >= {DEDUP_PARTS}, got {dedup_seconds}")
        self.client = client
        self.one_server = not isinstance(client, aioredis.RedisCluster)
        """Every key on one server: a script may read keys of any slot."""
        self.keys = keyspace or Keyspace()
        self.log_max_length = log_max_length
        self.dedup_seconds = dedup_seconds
        self.activity_shards = activity_shards
        self.activity_slices = activity_slices
        self.on_activity_failure = on_activity_failure
        self.timeout_seconds = timeout_seconds
        self._activity_keys = [
            self.keys.activity(a, activity_shards) for a in range(activity_shards)
        ]
        self._assign = client.register_script(ASSIGN.source)
        self._track = client.register_script(TRACK.source)
        self._exposed = client.register_script(EXPOSED.source)
        self._activity = client.register_script(ACTIVITY.source)
        self._put = client.register_script(PUT_DEFINITION.source)
        self._dimension = client.register_script(DIMENSION.source)
        # (registry key, dimension position) -> value -> slice; and the registries found full
        self._dimension_slices: dict[tuple[str, int], dict[str, int]] = {}
        self._full_dimensions: set[tuple[str, int]] = set()
        # (shard base, slice, window part) -> event-id keys: a batch of events builds thousands
        self._slice_keys: BoundedDict[tuple[str, int, int], list[str]] = BoundedDict(65_536)
        # the experiments tracking was last given (a tuple), and the readers of each event name
        self._readers_for: Sequence[Experiment] | None = None
        self._readers_by_name: BoundedDict[str, Any] = BoundedDict(1_024)
        self._session = client.register_script(SESSION.source)
        self._attempt = client.register_script(ATTEMPT.source)
        self._bandit_period = client.register_script(BANDIT_PERIOD.source)
        self._access_script = client.register_script(ACCESS.source)
        self._secret = client.register_script(SECRET.source)
        # concurrent assignment requests share round trips (see experiments/batching.py)
        # and are answered within timeout_seconds (one timer per round trip)
        self._assign_batcher = ScriptBatcher(client, self._assign, timeout_seconds=timeout_seconds)
        # the script calls of every caller in one tick share a round trip too
        self._calls = CallBatcher(client, timeout_seconds=timeout_seconds)

    # -- where things live ---------------------------------------------------------------------

    def _shard_keys(self, experiment: Experiment, shard: int) -> ShardKeys:
        if experiment.generation < 1:
            raise ValueError(
                f"experiment {experiment.key!r} has generation 0: use the definition returned "
                "by create_experiment or read from the store"
            )
        return self.keys.shard(experiment.key, experiment.generation, shard, experiment.shards)

    def _shards(self, experiment: Experiment) -> list[ShardKeys]:
        return [self._shard_keys(experiment, s) for s in range(experiment.shards)]

    def _place(self, experiment: Experiment, visitor_id: str) -> tuple[ShardKeys, VisitorPlace]:
        place = place_of(visitor_id, experiment.shards, experiment.slices)
        return self._shard_keys(experiment, place.shard), place

    def _dedup_part_ms(self) -> int:
        return -(-self.dedup_seconds * 1000 // DEDUP_PARTS)

    def _dedup_parts(self, now_ms: int) -> tuple[list[int], int]:
        """The window parts a script reads at ``now_ms`` (newest first) and when the newest
        expires: once no later part's reads include it."""
        part_ms = self._dedup_part_ms()
        current = now_ms // part_ms
        return [current - i for i in range(DEDUP_PARTS + 1)], (current + DEDUP_PARTS + 1) * part_ms

    def _run_pipelined_in_place(self, calls: Sequence[ScriptCall]) -> asyncio.Future[list[Any]]:
        """Run scripts in one round trip shared with the other callers of the same tick (see
        :class:`CallBatcher`); errors come back in place. A future to await (no coroutine
        frame on the hot path)."""
        return self._calls.run(calls)

    async def _run_pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """:meth:`_run_pipelined_in_place`, raising the first error."""
        results = await self._calls.run(calls)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
