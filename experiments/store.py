"""The Redis adapter: definitions, exposures, events and the aggregates read back from them.

Every write that touches more than one key is one Lua script (see ``experiments/lua``), so
concurrent requests can neither double count, lose an event, nor give one visitor two variants.
Per-variant aggregates hold exactly the sufficient statistics the stats need (``n``, sum, sum of
squares of per-visitor totals, cross products for ratios), so a read-out costs
O(variants x metrics x shards) reads however many visitors there are.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache
from importlib.resources import files
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from experiments.definitions import Experiment, Metric, MetricKind
from experiments.errors import (
    ConflictError,
    ExperimentNotFoundError,
    StoreUnavailableError,
)
from experiments.keys import Keyspace, ShardKeys, shard_of

__all__ = [
    "Exposure",
    "Store",
    "TrackEvent",
    "TrackOutcome",
    "VariantTotals",
    "connect",
    "day_of",
]

P = ParamSpec("P")
T = TypeVar("T")


def _script(name: str) -> str:
    return files("experiments").joinpath("lua", name).read_text()


def day_of(ms: int) -> str:
    """The UTC day ``YYYYMMDD`` of a time in milliseconds since the epoch."""
    return _day_of_epoch_day(ms // 86_400_000)


@lru_cache(maxsize=4096)
def _day_of_epoch_day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, UTC).strftime("%Y%m%d")


class TrackOutcome(IntEnum):
    NOT_EXPOSED = 0
    CREDITED = 1
    BEFORE_EXPOSURE = 2
    DUPLICATE = 3


@dataclass(frozen=True, slots=True)
class Exposure:
    """The recorded variant (-1: not enrolled and never recorded) and whether this call did it."""

    variant_index: int
    recorded_now: bool


@dataclass(frozen=True, slots=True)
class TrackEvent:
    visitor_id: str
    event: str
    value: float
    value_text: str
    timestamp_ms: int
    event_id: str | None = None


@dataclass(slots=True)
class VariantTotals:
    """Sufficient statistics of one variant: ``n`` and, per metric, sum / ss / xy."""

    n: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    sum_squares: dict[str, float] = field(default_factory=dict)
    cross: dict[str, float] = field(default_factory=dict)

    def add_field(self, name: str, raw: str) -> None:
        if name.startswith("n:"):
            self.n += int(raw)
            return
        metric, _, stat = name.rpartition(":")
        metric = metric.rpartition(":")[0]
        target = {"sum": self.sums, "ss": self.sum_squares, "xy": self.cross}[stat]
        target[metric] = target.get(metric, 0.0) + float(raw)


def _variant_of(name: str) -> int:
    if name.startswith("n:"):
        return int(name[2:])
    return int(name.rsplit(":", 2)[1])


def _fold(raw_hashes: Sequence[dict[str, str]], variants: int) -> list[VariantTotals]:
    totals = [VariantTotals() for _ in range(variants)]
    for raw in raw_hashes:
        for name, value in raw.items():
            index = _variant_of(name)
            if 0 <= index < variants:
                totals[index].add_field(name, value)
    return totals


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except RedisError as exc:
        raise StoreUnavailableError(f"redis: {exc}") from exc


def _guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await _guard(fn(*args, **kwargs))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def connect(url: str, *, cluster: bool = False) -> Any:
    """An asyncio client for ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
    if cluster:
        return aioredis.RedisCluster.from_url(url, decode_responses=True)
    return aioredis.from_url(url, decode_responses=True, health_check_interval=30)


@dataclass(frozen=True, slots=True)
class _TrackPlan:
    """The ARGV tail and extra KEYS of track.lua for one experiment and one event."""

    args: tuple[str, ...]
    other_events: tuple[str, ...]


def _track_plan(experiment: Experiment, event: str) -> _TrackPlan | None:
    cache: dict[str, _TrackPlan | None] = experiment.__dict__.setdefault("_track_plans", {})
    if event in cache:
        return cache[event]
    by_name = {m.name: m for m in experiment.metrics}
    direct = [m for m in experiment.metrics if m.event == event]
    ratios = [
        m
        for m in experiment.metrics
        if m.kind is MetricKind.RATIO
        and event in {by_name[m.numerator or ""].event, by_name[m.denominator or ""].event}
    ]
    plan: _TrackPlan | None = None
    if direct or ratios:
        others: list[str] = []

        def key_index(part: Metric) -> str:
            if part.event == event:
                return "7"
            assert part.event is not None  # validated: non-ratio metrics have an event
            if part.event not in others:
                others.append(part.event)
            return str(7 + 1 + others.index(part.event))

        args: list[str] = [str(len(direct) + len(ratios))]
        for m in direct:
            args += [m.name, m.kind.value, "", "0", "", "0"]
        for m in ratios:
            num, den = by_name[m.numerator or ""], by_name[m.denominator or ""]
            args += [
                m.name,
                "ratio",
                num.kind.value,
                key_index(num),
                den.kind.value,
                key_index(den),
            ]
        plan = _TrackPlan(tuple(args), tuple(others))
    cache[event] = plan
    return plan


class Store:
    """Abacus's state in one Redis (or Redis Cluster) behind typed methods."""

    def __init__(
        self,
        client: Any,
        keyspace: Keyspace | None = None,
        *,
        log_max_length: int = 1_000_000,
        dedup_seconds: int = 7 * 86400,
    ) -> None:
        self.client = client
        self.keys = keyspace or Keyspace()
        self.log_max_length = log_max_length
        self.dedup_seconds = dedup_seconds
        self._assign = client.register_script(_script("assign.lua"))
        self._track = client.register_script(_script("track.lua"))
        self._put = client.register_script(_script("put_definition.lua"))

    # -- definitions -------------------------------------------------------------------------

    @_guarded
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    @_guarded
    async def definitions(self) -> tuple[int, dict[str, Experiment]]:
        """The definitions version counter and every experiment, by key."""
        raw: dict[str, str] = await self.client.hgetall(self.keys.definitions)
        version = int(raw.pop("_version", 0))
        return version, {k: Experiment.model_validate_json(v) for k, v in raw.items()}

    @_guarded
    async def definitions_version(self) -> int:
        return int(await self.client.hget(self.keys.definitions, "_version") or 0)

    @_guarded
    async def get_experiment(self, key: str) -> Experiment:
        raw = await self.client.hget(self.keys.definitions, key)
        if raw is None:
            raise ExperimentNotFoundError(key)
        return Experiment.model_validate_json(raw)

    async def create_experiment(self, experiment: Experiment) -> None:
        code = await self._put_definition(experiment.key, "", experiment.model_dump_json())
        if code == -1:
            raise ConflictError(f"experiment {experiment.key!r} already exists")

    async def replace_experiment(self, old: Experiment, new: Experiment) -> None:
        """Write ``new`` if the stored definition is still ``old`` (else ConflictError)."""
        code = await self._put_definition(old.key, old.model_dump_json(), new.model_dump_json())
        if code == -2:
            raise ExperimentNotFoundError(old.key)
        if code == 0:
            raise ConflictError(f"experiment {old.key!r} was changed concurrently; retry")

    async def delete_experiment(self, experiment: Experiment) -> None:
        """Delete the definition and every exposure, event and aggregate of the experiment."""
        code = await self._put_definition(experiment.key, experiment.model_dump_json(), "")
        if code == -2:
            raise ExperimentNotFoundError(experiment.key)
        if code == 0:
            raise ConflictError(f"experiment {experiment.key!r} was changed concurrently; retry")
        for shard in range(experiment.shards):
            base = self.keys.shard(experiment.key, shard).base
            batch: list[str] = []
            async for key in self.client.scan_iter(match=_glob_escape(base) + ":*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await _guard(self.client.delete(*batch))
                    batch = []
            if batch:
                await _guard(self.client.delete(*batch))

    @_guarded
    async def _put_definition(self, key: str, expected: str, new: str) -> int:
        return int(await self._put(keys=[self.keys.definitions], args=[key, expected, new]))

    # -- exposures and events ----------------------------------------------------------------

    def _shard(self, experiment: Experiment, visitor_id: str) -> ShardKeys:
        return self.keys.shard(experiment.key, shard_of(visitor_id, experiment.shards))

    def _assign_call(
        self,
        experiment: Experiment,
        visitor_id: str,
        variant_index: int,
        now_ms: int,
        attributes_json: str,
    ) -> tuple[list[str], list[str | int]]:
        k = self._shard(experiment, visitor_id)
        day = day_of(now_ms)
        keys = [k.assign, k.agg, k.day(day), k.days, k.log]
        args: list[str | int] = [
            visitor_id,
            variant_index,
            now_ms,
            day,
            self.log_max_length,
            experiment.variants[variant_index].key if variant_index >= 0 else "",
            attributes_json,
        ]
        return keys, args

    @_guarded
    async def record_exposure(
        self,
        experiment: Experiment,
        visitor_id: str,
        variant_index: int,
        *,
        now_ms: int,
        attributes_json: str = "{}",
    ) -> Exposure:
        """Record the first exposure; a visitor already exposed keeps the recorded variant."""
        keys, args = self._assign_call(
            experiment, visitor_id, variant_index, now_ms, attributes_json
        )
        index, new = await self._assign(keys=keys, args=args)
        return Exposure(int(index), bool(new))

    async def record_exposures(
        self,
        calls: Sequence[tuple[Experiment, int]],
        visitor_id: str,
        *,
        now_ms: int,
        attributes_json: str = "{}",
    ) -> list[Exposure]:
        """:meth:`record_exposure` for several experiments in one round trip."""
        try:
            if len(calls) == 1:  # the hot path: one script call, no pipeline
                experiment, index = calls[0]
                keys, args = self._assign_call(
                    experiment, visitor_id, index, now_ms, attributes_json
                )
                got, new = await self._assign(keys=keys, args=args)
                return [Exposure(int(got), bool(new))]
            results = await self._run_pipelined(
                self._assign,
                [
                    self._assign_call(experiment, visitor_id, index, now_ms, attributes_json)
                    for experiment, index in calls
                ],
            )
        except RedisError as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        return [Exposure(int(i), bool(n)) for i, n in results]

    def _track_call(
        self, experiment: Experiment, plan: _TrackPlan, event: TrackEvent
    ) -> tuple[list[str], list[str | int]]:
        k = self._shard(experiment, event.visitor_id)
        day = day_of(event.timestamp_ms)
        keys = [
            k.assign,
            k.agg,
            k.day(day),
            k.days,
            k.log,
            k.event_id(event.event_id) if event.event_id else k.no_event_id,
            k.state(event.event),
            *(k.state(other) for other in plan.other_events),
        ]
        args: list[str | int] = [
            event.visitor_id,
            event.value_text,
            event.timestamp_ms,
            day,
            event.event,
            self.log_max_length,
            self.dedup_seconds,
            1 if event.event_id else 0,
            ",".join(experiment.variant_keys),
            *plan.args,
        ]
        return keys, args

    @_guarded
    async def track(
        self, experiments: Sequence[Experiment], events: Sequence[TrackEvent]
    ) -> list[dict[str, TrackOutcome]]:
        """Credit each event to each experiment with a metric on it; outcomes per event."""
        calls: list[tuple[int, str, tuple[list[str], list[str | int]]]] = []
        for position, event in enumerate(events):
            for experiment in experiments:
                plan = _track_plan(experiment, event.event)
                if plan is not None:
                    calls.append(
                        (position, experiment.key, self._track_call(experiment, plan, event))
                    )
        outcomes: list[dict[str, TrackOutcome]] = [{} for _ in events]
        if not calls:
            return outcomes
        results = await self._run_pipelined(self._track, [c[2] for c in calls])
        for (position, key, _), (code, _variant) in zip(calls, results, strict=True):
            outcomes[position][key] = TrackOutcome(int(code))
        return outcomes

    async def _run_pipelined(
        self, script: Any, calls: Sequence[tuple[list[str], list[str | int]]]
    ) -> list[Any]:
        """Run one script many times in one round trip; each call stays atomic on its own."""
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if attempt:
                    raise
                # The server lost its script cache (restart, SCRIPT FLUSH): reload and retry.
                # NOSCRIPT fails before a script runs, so nothing was written by this batch.
                await self.client.script_load(script.script)
        raise AssertionError("unreachable")

    # -- read-outs ---------------------------------------------------------------------------

    @_guarded
    async def totals(self, experiment: Experiment) -> list[VariantTotals]:
        """Per-variant sufficient statistics, summed over the shards."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(experiment.shards):
            pipe.hgetall(self.keys.shard(experiment.key, shard).agg)
        return _fold(await pipe.execute(), len(experiment.variants))

    @_guarded
    async def daily_totals(self, experiment: Experiment) -> list[tuple[str, list[VariantTotals]]]:
        """Per UTC day, that day's increments of the per-variant statistics, oldest first."""
        shards = [self.keys.shard(experiment.key, s) for s in range(experiment.shards)]
        pipe = self.client.pipeline(transaction=False)
        for k in shards:
            pipe.smembers(k.days)
        days = sorted(set().union(*await pipe.execute()))
        if not days:
            return []
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            for k in shards:
                pipe.hgetall(k.day(day))
        raw = await pipe.execute()
        n = len(shards)
        variants = len(experiment.variants)
        return [(day, _fold(raw[i * n : (i + 1) * n], variants)) for i, day in enumerate(days)]

    @_guarded
    async def assignment_of(self, experiment: Experiment, visitor_id: str) -> int | None:
        raw = await self.client.hget(self._shard(experiment, visitor_id).assign, visitor_id)
        return None if raw is None else int(str(raw).split(":", 1)[0])


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def encode_attributes(attributes: Mapping[str, object] | None) -> str:
    return json.dumps(attributes or {}, separators=(",", ":"), sort_keys=True)
