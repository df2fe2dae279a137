"""The Redis adapter: definitions, exposures, events and the aggregates read back from them.

Every write that touches more than one key is one Lua script (see ``experiments/lua``), so
concurrent requests can neither double count, lose an event, nor give one visitor two variants.
Per-variant aggregates hold exactly the sufficient statistics the stats need (``n``, sum, sum of
squares of per-visitor totals, cross products for ratios), so a read-out costs
O(variants x metrics x shards) reads however many visitors there are.

Two raw logs sit beside the aggregates (both Redis streams, capped at ``log_max_length`` entries
per shard with ``XADD MAXLEN ~``; 0 turns both off). Each experiment shard's log gets every
exposure and every credited event from the same Lua script that updates the aggregates, so up to
the cap the log and the counts cannot disagree. The activity log, sharded by visitor, gets every
tracked event whether or not any experiment credits it: the history a visitor had before being
exposed, which CUPED uses as its covariate. It is written in the same round trip as the
experiment scripts but is not part of their atomic write (it lives in other cluster slots); it
never feeds the aggregates. Reads page through the streams with ``XRANGE``, so an export never
holds more than a page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache
from importlib.resources import files
from typing import Any

from experiments.batching import CallBatcher, ScriptBatcher
from experiments.connection import REDIS_FAILURES, connect, guard, guarded
from experiments.definitions import Experiment, Metric, MetricKind
from experiments.errors import (
    ConflictError,
    ExperimentNotFoundError,
    StoreUnavailableError,
)
from experiments.keys import Keyspace, ShardKeys, shard_of
from experiments.limits import DEDUP_WINDOW_SECONDS

__all__ = [
    "Exposure",
    "LogPage",
    "LogSnapshot",
    "Store",
    "TrackEvent",
    "TrackOutcome",
    "VariantTotals",
    "connect",
    "day_of",
    "encode_attributes",
]


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
    """The recorded variant (None: not enrolled and never recorded) and whether this call did it."""

    variant_index: int | None
    recorded_now: bool

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> Exposure:
        """From assign.lua's ``{index or -1, new}`` (the -1 never leaves this module)."""
        index, new = int(reply[0]), bool(reply[1])
        return cls(None if index < 0 else index, new)


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


@dataclass(frozen=True, slots=True)
class LogPage:
    """Raw log entries as columns, in log order.

    ``kinds`` holds ``"exposure"``, ``"event"`` (credited) or ``"pre_exposure"`` (an event of
    an exposed visitor from before the exposure, read from the activity log). ``values`` are
    the exact texts the service recorded. ``last_id`` is the stream id to resume after (None
    when the stream had nothing more) and ``scanned`` the entries read to build the page.
    """

    last_id: str | None
    scanned: int
    kinds: list[str] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    events: list[str | None] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    attributes: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.kinds)

    def rows(self) -> Iterator[tuple[str, str, str, int, str | None, str | None, str | None]]:
        """``(kind, visitor, variant, timestamp_ms, event, value, attributes)`` per entry."""
        return zip(
            self.kinds,
            self.visitors,
            self.variants,
            self.timestamps_ms,
            self.events,
            self.values,
            self.attributes,
            strict=True,
        )


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """Where each stream ends when an export starts, and what the aggregates counted by then.

    ``log_tails[s]`` is the last id of experiment shard ``s`` (None: empty), ``activity_tails``
    the same for the activity shards; ``exposures`` is the number of exposures the aggregates
    held just before the tails were read, and ``log_entries`` the experiment log's length.
    An export that reads up to these ids is a fixed set of rows however long it takes.
    """

    log_tails: list[str | None]
    activity_tails: list[str | None]
    exposures: int
    log_entries: int


ARRIVAL_SLACK_MS = 3_600_000
"""How far an event's time may lie after its arrival in the log (clients' clocks run ahead)."""


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
        dedup_seconds: int = DEDUP_WINDOW_SECONDS,
        activity_shards: int = 16,
    ) -> None:
        if activity_shards < 1:
            raise ValueError(f"activity_shards must be >= 1, got {activity_shards}")
        self.client = client
        self.keys = keyspace or Keyspace()
        self.log_max_length = log_max_length
        self.dedup_seconds = dedup_seconds
        self.activity_shards = activity_shards
        self._assign = client.register_script(_script("assign.lua"))
        # concurrent assignment requests share round trips (see experiments/batching.py)
        self._assign_batcher = ScriptBatcher(client, self._assign)
        self._calls = CallBatcher(client)
        self._track = client.register_script(_script("track.lua"))
        self._activity = client.register_script(_script("activity.lua"))
        self._put = client.register_script(_script("put_definition.lua"))

    # -- definitions -------------------------------------------------------------------------

    @guarded
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    @guarded
    async def definitions(self) -> tuple[int, dict[str, Experiment]]:
        """The definitions version counter and every experiment, by key."""
        raw: dict[str, str] = await self.client.hgetall(self.keys.definitions)
        version = int(raw.pop("_version", 0))
        return version, {k: Experiment.model_validate_json(v) for k, v in raw.items()}

    @guarded
    async def definitions_version(self) -> int:
        return int(await self.client.hget(self.keys.definitions, "_version") or 0)

    @guarded
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
                    await guard(self.client.delete(*batch))
                    batch = []
            if batch:
                await guard(self.client.delete(*batch))

    @guarded
    async def _put_definition(self, key: str, expected: str, new: str) -> int:
        return int(await self._put(keys=[self.keys.definitions], args=[key, expected, new]))

    # -- exposures and events ----------------------------------------------------------------

    def _shard(self, experiment: Experiment, visitor_id: str) -> ShardKeys:
        return self.keys.shard(experiment.key, shard_of(visitor_id, experiment.shards))

    def _assign_call(
        self,
        experiment: Experiment,
        visitor_id: str,
        variant_index: int | None,
        now_ms: int,
        attributes_json: str,
    ) -> tuple[list[str], list[str | int]]:
        k = self._shard(experiment, visitor_id)
        day = day_of(now_ms)
        keys = [k.assign, k.agg, k.day(day), k.days, k.log]
        args: list[str | int] = [
            visitor_id,
            -1 if variant_index is None else variant_index,
            now_ms,
            day,
            self.log_max_length,
            "" if variant_index is None else experiment.variants[variant_index].key,
            attributes_json,
        ]
        return keys, args

    @guarded
    async def record_exposure(
        self,
        experiment: Experiment,
        visitor_id: str,
        variant_index: int | None,
        *,
        now_ms: int,
        attributes_json: str = "{}",
    ) -> Exposure:
        """Record the first exposure; a visitor already exposed keeps the recorded variant.

        ``variant_index`` is what the hash chose, or None when it enrols the visitor in no
        variant: then the call only looks up a variant recorded earlier.
        """
        keys, args = self._assign_call(
            experiment, visitor_id, variant_index, now_ms, attributes_json
        )
        return Exposure.from_reply(await self._assign(keys=keys, args=args))

    async def record_exposures(
        self,
        calls: Sequence[tuple[Experiment, int | None]],
        visitor_id: str,
        *,
        now_ms: int,
        attributes_json: str = "{}",
    ) -> list[Exposure]:
        """:meth:`record_exposure` for several experiments in one round trip."""
        try:
            if len(calls) == 1:  # the hot path: one script call, coalesced with its neighbours
                experiment, index = calls[0]
                keys, args = self._assign_call(
                    experiment, visitor_id, index, now_ms, attributes_json
                )
                return [Exposure.from_reply(await self._assign_batcher.call(keys, args))]
            results = await self._run_pipelined(
                [
                    (
                        self._assign,
                        *self._assign_call(experiment, visitor_id, index, now_ms, attributes_json),
                    )
                    for experiment, index in calls
                ],
            )
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        return [Exposure.from_reply(r) for r in results]

    @guarded
    async def record_exposure_batch(
        self, experiment: Experiment, exposures: Sequence[tuple[str, int | None, int, str]]
    ) -> list[Exposure]:
        """:meth:`record_exposure` for many visitors in one round trip (imports, simulations).

        ``exposures`` holds ``(visitor_id, variant_index, now_ms, attributes_json)`` per
        visitor; each is recorded atomically on its own, as by :meth:`record_exposure`.
        """
        results = await self._run_pipelined(
            [
                (self._assign, *self._assign_call(experiment, visitor, index, ms, attributes))
                for visitor, index, ms, attributes in exposures
            ]
        )
        return [Exposure.from_reply(r) for r in results]

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

    def _activity_call(self, event: TrackEvent) -> tuple[list[str], list[str | int]]:
        k = self.keys.activity(shard_of(event.visitor_id, self.activity_shards))
        keys = [k.log, k.event_id(event.event_id) if event.event_id else k.no_event_id]
        args: list[str | int] = [
            event.visitor_id,
            event.event,
            event.value_text,
            event.timestamp_ms,
            self.log_max_length,
            self.dedup_seconds,
            1 if event.event_id else 0,
        ]
        return keys, args

    @guarded
    async def track(
        self, experiments: Sequence[Experiment], events: Sequence[TrackEvent]
    ) -> list[dict[str, TrackOutcome]]:
        """Credit each event to each experiment with a metric on it; outcomes per event.

        Every event also goes to the activity log (when the log is on), credited or not.
        """
        calls: list[tuple[int, str, tuple[list[str], list[str | int]]]] = []
        for position, event in enumerate(events):
            for experiment in experiments:
                plan = _track_plan(experiment, event.event)
                if plan is not None:
                    calls.append(
                        (position, experiment.key, self._track_call(experiment, plan, event))
                    )
        outcomes: list[dict[str, TrackOutcome]] = [{} for _ in events]
        script_calls = [(self._track, *call) for _, _, call in calls]
        if self.log_max_length > 0:
            script_calls += [(self._activity, *self._activity_call(e)) for e in events]
        if not script_calls:
            return outcomes
        results = await self._run_pipelined(script_calls)
        for (position, key, _), (code, _variant) in zip(calls, results[: len(calls)], strict=True):
            outcomes[position][key] = TrackOutcome(int(code))
        return outcomes

    async def _run_pipelined(
        self, calls: Sequence[tuple[Any, list[str], list[str | int]]]
    ) -> list[Any]:
        """Run scripts many times in one round trip, shared with the other callers of the same
        tick (see :class:`CallBatcher`); raise the first error."""
        results = await self._calls.run(calls)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    # -- read-outs ---------------------------------------------------------------------------

    @guarded
    async def totals(self, experiment: Experiment) -> list[VariantTotals]:
        """Per-variant sufficient statistics, summed over the shards."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(experiment.shards):
            pipe.hgetall(self.keys.shard(experiment.key, shard).agg)
        return _fold(await pipe.execute(), len(experiment.variants))

    @guarded
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

    @guarded
    async def assignment_of(self, experiment: Experiment, visitor_id: str) -> int | None:
        raw = await self.client.hget(self._shard(experiment, visitor_id).assign, visitor_id)
        return None if raw is None else int(str(raw).split(":", 1)[0])

    # -- raw logs ----------------------------------------------------------------------------

    @guarded
    async def log_snapshot(self, experiment: Experiment) -> LogSnapshot:
        """The last id of every log shard an export of ``experiment`` reads, and the counts.

        The aggregates are read before the tails, so every exposure they count is at or
        before a tail: an export with fewer exposure rows than ``exposures`` lost some to the
        log's cap.
        """
        shards = [self.keys.shard(experiment.key, s) for s in range(experiment.shards)]
        pipe = self.client.pipeline(transaction=False)
        for k in shards:
            pipe.hgetall(k.agg)
        for k in shards:
            pipe.xrevrange(k.log, count=1)
            pipe.xlen(k.log)
        for a in range(self.activity_shards):
            pipe.xrevrange(self.keys.activity(a).log, count=1)
        raw = await pipe.execute()
        n = len(shards)
        exposures = sum(t.n for t in _fold(raw[:n], len(experiment.variants)))
        tails = raw[n : 3 * n : 2]
        lengths = raw[n + 1 : 3 * n : 2]
        return LogSnapshot(
            log_tails=[t[0][0] if t else None for t in tails],
            activity_tails=[t[0][0] if t else None for t in raw[3 * n :]],
            exposures=exposures,
            log_entries=sum(int(x) for x in lengths),
        )

    @guarded
    async def log_page(
        self, experiment: Experiment, shard: int, *, after: str | None, until: str, count: int
    ) -> LogPage:
        """Up to ``count`` entries of one experiment shard's log after ``after``, to ``until``."""
        start = "-" if after is None else f"({after}"
        entries = await self.client.xrange(
            self.keys.shard(experiment.key, shard).log, min=start, max=until, count=count
        )
        fields = [f for _, f in entries]
        return LogPage(
            last_id=entries[-1][0] if entries else None,
            scanned=len(entries),
            kinds=[f.get("type", "") for f in fields],
            visitors=[f.get("visitor", "") for f in fields],
            variants=[f.get("variant", "") for f in fields],
            timestamps_ms=[int(f.get("ts", 0)) for f in fields],
            events=[f.get("event") for f in fields],
            values=[f.get("value") for f in fields],
            attributes=[f.get("attributes") for f in fields],
        )

    @guarded
    async def pre_exposure_page(
        self,
        experiment: Experiment,
        shard: int,
        *,
        after: str | None,
        until: str,
        count: int,
        lookback_ms: int | None = None,
    ) -> LogPage:
        """Events of ``experiment``'s visitors from before their exposure, from the activity log.

        Reads up to ``count`` entries of activity shard ``shard`` after id ``after``, keeps the
        events some metric of the experiment reads, looks their visitors' exposures up (one
        pipelined ``HMGET`` per experiment shard) and returns those that happened strictly
        before the visitor's exposure (and, with ``lookback_ms``, at most that long before),
        with the visitor's variant. With ``lookback_ms`` the first page skips the entries that
        arrived too early to qualify: those older than the experiment's start minus the
        lookback (and :data:`ARRIVAL_SLACK_MS` for clocks running ahead).
        """
        start = "-" if after is None else f"({after}"
        if after is None and lookback_ms is not None:
            began_s = experiment.started_at or experiment.created_at or 0.0
            start = str(max(0, int(began_s * 1000) - lookback_ms - ARRIVAL_SLACK_MS))
        entries = await self.client.xrange(
            self.keys.activity(shard).log, min=start, max=until, count=count
        )
        page = LogPage(last_id=entries[-1][0] if entries else None, scanned=len(entries))
        wanted = experiment.events()
        rows = [f for _, f in entries if f.get("event") in wanted]
        by_shard: dict[int, list[str]] = {}
        for visitor in dict.fromkeys(f["visitor"] for f in rows):
            by_shard.setdefault(shard_of(visitor, experiment.shards), []).append(visitor)
        if not by_shard:
            return page
        pipe = self.client.pipeline(transaction=False)
        for s, visitors in by_shard.items():
            pipe.hmget(self.keys.shard(experiment.key, s).assign, visitors)
        exposed: dict[str, tuple[str, int]] = {}
        keys = experiment.variant_keys
        for visitors, found in zip(by_shard.values(), await pipe.execute(), strict=True):
            for visitor, raw in zip(visitors, found, strict=True):
                if raw is None:
                    continue
                index, _, ms = str(raw).partition(":")
                if int(index) < len(keys):
                    exposed[visitor] = (keys[int(index)], int(ms))
        for f in rows:
            hit = exposed.get(f["visitor"])
            ts = int(f.get("ts", 0))
            if hit is None or ts >= hit[1]:
                continue
            if lookback_ms is not None and ts < hit[1] - lookback_ms:
                continue
            page.kinds.append("pre_exposure")
            page.visitors.append(f["visitor"])
            page.variants.append(hit[0])
            page.timestamps_ms.append(ts)
            page.events.append(f.get("event"))
            page.values.append(f.get("value"))
            page.attributes.append(None)
        return page


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def encode_attributes(attributes: Mapping[str, object] | None) -> str:
    return json.dumps(attributes or {}, separators=(",", ":"), sort_keys=True)
