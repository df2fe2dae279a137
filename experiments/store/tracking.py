"""Exposures and events: the writes of the hot path, one Lua script call each.

An exposure goes to the visitor's slice of the assignment hash, the shard's aggregates and its
raw log in one call of ``assign.lua``; an event to every running experiment with a metric on it
(``track.lua``) and to the activity log (``activity.lua``). The events of one request are grouped
by the shard they belong to: one ``track.lua`` call per experiment shard and one ``activity.lua``
call per activity shard, each taking all of that shard's events (at most
:data:`MAX_EVENTS_PER_CALL`) in their order. Each call is atomic on its own, in one slot; calls
of one request share a round trip. A batch of 1,000 events thus costs about 130 script calls
(64 experiment shards and 64 activity shards) instead of 2,000.

What a track reports is what happened. The experiments' writes are the record: a call that
failed is reported as :attr:`TrackOutcome.UNAVAILABLE` for that experiment while the others keep
their outcome, and :class:`StoreUnavailableError` is raised only when nothing was credited. The
activity log is best-effort beside them (another slot, so it cannot share their atomic write):
its failures are counted through ``on_activity_failure`` and never turn a credited event into an
error.

Event ids count once per experiment and visitor. A track script runs in the visitor's shard
slot, so it can check and remember the id there atomically with the credit; an id unique across
all visitors of an experiment would need an index keyed by the id itself, which lives in another
slot, so it would be a second write that a failure can separate from the first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from experiments.bounded import BoundedDict
from experiments.connection import REDIS_FAILURES, guard, guarded
from experiments.definitions import Experiment, Metric, MetricKind
from experiments.errors import StoreUnavailableError
from experiments.keys import ActivityKeys as ActivityKeysOfShard
from experiments.keys import ShardKeys, VisitorPlace, place_of
from experiments.store import codec
from experiments.store._base import ScriptCall, StoreBase
from experiments.store.scripts import (
    TRACK_OTHERS_OFFSET,
    TRACK_STATE_OFFSET,
    ActivityArgs,
    ActivityKeys,
    AssignArgs,
    AssignKeys,
    DimensionArgs,
    DimensionKeys,
    TrackArgs,
    TrackEventArgs,
    TrackEventKeys,
)

__all__ = [
    "MAX_EVENTS_PER_CALL",
    "MAX_LOOKUPS_PER_CALL",
    "NO_VALUE",
    "OUTCOMES",
    "Exposure",
    "TrackEvent",
    "TrackOutcome",
    "TrackingMixin",
    "dimension_text",
    "encode_attributes",
]


class TrackOutcome(IntEnum):
    NOT_EXPOSED = 0
    CREDITED = 1
    BEFORE_EXPOSURE = 2
    DUPLICATE = 3
    UNAVAILABLE = 4
    """The experiment's write failed: nothing was credited to it; retry (with the event id)."""


OUTCOMES = tuple(TrackOutcome)
"""Each outcome at the index of its code (track.lua's replies), without the enum's lookup."""
assert all(outcome == code for code, outcome in enumerate(OUTCOMES))


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


def encode_attributes(attributes: Mapping[str, object] | None) -> str:
    """Attributes as compact, key-sorted JSON (the form the log keeps)."""
    if not attributes:
        return "{}"
    return json.dumps(attributes, separators=(",", ":"), sort_keys=True)


MAX_EVENTS_PER_CALL = 128
"""The most events one script call takes, so that no single call holds Redis for long (about
30 µs of Lua per event)."""

MAX_LOOKUPS_PER_CALL = 512
"""The most visitors one exposed.lua call looks up (about 1 µs of Redis each)."""


@dataclass(frozen=True, slots=True)
class _TrackPlan:
    """What one event name feeds in one experiment: track.lua's plan values, and the other
    events whose state slices its ratio metrics read."""

    args: tuple[str, ...]
    other_events: tuple[str, ...]


def _cap(metric: Metric) -> str:
    """A metric's cap as track.lua reads it: the shortest text of the float, '' for none."""
    return "" if metric.cap is None else repr(float(metric.cap))


def dimension_text(value: object) -> str:
    """An attribute value as a dimension value: strings as they are, anything else as JSON;
    a missing attribute is "(none)"."""
    if value is None:
        return NO_VALUE
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


NO_VALUE = "(none)"


def _track_plan(experiment: Experiment, event: str) -> _TrackPlan | None:
    cache: dict[str, _TrackPlan | None] | None = experiment.__dict__.get("_track_plans")
    if cache is None:
        cache = experiment.__dict__["_track_plans"] = {}
    elif event in cache:
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
                return str(TRACK_STATE_OFFSET)
            assert part.event is not None  # validated: non-ratio metrics have an event
            if part.event not in others:
                others.append(part.event)
            return str(TRACK_OTHERS_OFFSET + others.index(part.event))

        args: list[str] = []
        for m in direct:
            args += [m.name, m.kind.value, _cap(m)]
        for m in ratios:
            num, den = by_name[m.numerator or ""], by_name[m.denominator or ""]
            args += [
                m.name,
                "ratio",
                "",
                num.kind.value,
                key_index(num),
                _cap(num),
                den.kind.value,
                key_index(den),
                _cap(den),
            ]
        plan = _TrackPlan((str(len(direct) + len(ratios)), str(len(others)), *args), tuple(others))
    cache[event] = plan
    return plan


_SliceKeys = BoundedDict[tuple[str, int, int], list[str]]
"""(shard or activity base, slice, newest window part) -> that slice's event-id keys."""


def _event_ids(
    cache: _SliceKeys, keys: ShardKeys | ActivityKeysOfShard, slice_: int, parts: list[int]
) -> list[str]:
    """A slice's five event-id keys, built once per window part (a batch builds thousands)."""
    found = cache.get((keys.base, slice_, parts[0]))
    if found is None:
        found = cache.put((keys.base, slice_, parts[0]), [keys.event_ids(slice_, w) for w in parts])
    return found


class _Prepared:
    """What every call of one event shares, computed once however many experiments read it
    (and only when one does, or the activity log takes it)."""

    __slots__ = ("_day", "_event_id", "_track_args", "_visitor", "event", "places")

    def __init__(self, event: TrackEvent) -> None:
        self.event = event
        self.places: dict[tuple[int, int], VisitorPlace] = {}
        self._day: str | None = None
        self._visitor: str | None = None
        self._event_id: str | None = None
        self._track_args: tuple[str | int, ...] | None = None

    @property
    def day(self) -> str:
        if self._day is None:
            self._day = codec.day_of(self.event.timestamp_ms)
        return self._day

    @property
    def visitor(self) -> str:
        if self._visitor is None:
            self._visitor = codec.pack_visitor(self.event.visitor_id)
        return self._visitor

    @property
    def event_id(self) -> str:
        """The digest the dedup windows keep, '' for an event without an id."""
        if self._event_id is None:
            e = self.event
            self._event_id = codec.event_id_digest(e.visitor_id, e.event_id) if e.event_id else ""
        return self._event_id

    @property
    def track_args(self) -> tuple[str | int, ...]:
        """The event's TrackEventArgs but the plan number, which each call gives its plans."""
        if self._track_args is None:
            e, visitor = self.event, self.visitor
            self._track_args = TrackEventArgs(
                0,
                visitor,
                e.value_text,
                e.timestamp_ms,
                self.day,
                self.event_id,
                codec.event_entry(visitor, e.timestamp_ms, e.event, e.value_text),
            )[1:]
        return self._track_args

    def place(self, shards: int, slices: int) -> VisitorPlace:
        """The visitor's shard and slice in a layout of ``shards`` x ``slices``."""
        found = self.places.get((shards, slices))
        if found is None:
            found = self.places[(shards, slices)] = place_of(self.event.visitor_id, shards, slices)
        return found


class _TrackCall:
    """One track.lua call being built: events of one experiment shard, in their order."""

    def __init__(
        self, experiment: Experiment, shard: ShardKeys, args: TrackArgs, cache: _SliceKeys
    ) -> None:
        self.experiment = experiment
        self.cache = cache
        self.shard = shard
        self.args = args
        self.positions: list[int] = []
        self.plans: dict[str, int] = {}
        self.plan_args: list[str] = []
        # TrackKeys, then the shard's dimension aggregates
        self.keys: list[str] = list(shard.head(len(experiment.dimensions)))
        self.event_args: list[str | int] = []

    def add(
        self, position: int, event: _Prepared, plan: _TrackPlan, slice_: int, parts: list[int]
    ) -> None:
        name = event.event.event
        number = self.plans.get(name)
        if number is None:
            number = self.plans[name] = len(self.plans) + 1
            self.plan_args += plan.args
        k = self.shard
        keys = self.keys
        keys += TrackEventKeys(k.assign(slice_), k.day(event.day), k.state(slice_, name))
        for other in plan.other_events:
            keys.append(k.state(slice_, other))
        if event.event.event_id:
            keys += _event_ids(self.cache, k, slice_, parts)  # EventIdKeys' order
        self.event_args.append(number)
        self.event_args += event.track_args
        self.positions.append(position)

    def call(self) -> tuple[list[str], list[str | int]]:
        return self.keys, [*self.args, len(self.plans), *self.plan_args, *self.event_args]


_Reader = tuple[int, Experiment, _TrackPlan, list[ShardKeys | None]]
"""An experiment reading an event name: its number, the experiment, what the event feeds in
it, and the keys of its shards as they are needed (None: not built yet)."""

_Reading = tuple[int, int, Experiment, _Prepared, _TrackPlan, VisitorPlace, ShardKeys]
"""One experiment reading one event: the event's position, the experiment's number, the
experiment, the event, what the event feeds in it, the visitor's place in its layout and the
keys of that shard."""


class _ExposedCall:
    """One exposed.lua call: visitors to look up, each in its assignment slice."""

    __slots__ = ("keys", "readings", "visitors")

    def __init__(self, readings: Sequence[_Reading]) -> None:
        self.readings = readings
        self.keys = [r[6].assign(r[5].slice) for r in readings]
        self.visitors: list[str | int] = [r[3].visitor for r in readings]


class _ActivityCall:
    """One activity.lua call being built: events of one activity shard, in their order."""

    def __init__(self, keys: ActivityKeysOfShard, args: ActivityArgs, cache: _SliceKeys) -> None:
        self.cache = cache
        self.shard = keys
        self.keys: list[str] = list(ActivityKeys(keys.log))
        self.args: list[str | int] = list(args)
        self.count = 0

    def add(self, event: _Prepared, slice_: int, parts: list[int]) -> None:
        if event.event.event_id:
            self.keys += _event_ids(self.cache, self.shard, slice_, parts)
        e = event.event
        entry = codec.activity_entry(event.visitor, e.timestamp_ms, e.event, e.value_text)
        self.args += (event.event_id, entry)
        self.count += 1


class TrackingMixin(StoreBase):
    def _assign_call(
        self,
        experiment: Experiment,
        visitor_id: str,
        variant_index: int | None,
        now_ms: int,
        attributes_json: str,
        slices: str = "",
    ) -> tuple[list[str], list[str | int]]:
        k, place = self._place(experiment, visitor_id)
        day = codec.day_of(now_ms)
        visitor = codec.pack_visitor(visitor_id)
        keys = [*AssignKeys(k.assign(place.slice), k.agg, k.day(day), k.days, k.log)]
        keys += [k.dimension(d) for d in range(len(slices))]
        index = -1 if variant_index is None else variant_index
        args = AssignArgs(
            visitor,
            index,
            codec.pack_assignment(now_ms, max(index, 0)),
            day,
            self.log_max_length,
            codec.exposure_entry(visitor, max(index, 0), now_ms, attributes_json),
            slices,
        )
        return keys, list(args)

    async def _slices(
        self, experiment: Experiment, variant_index: int | None, attributes_json: str
    ) -> str:
        """One character per dimension of ``experiment``: the visitor's slice of each.

        Nothing (``''``) when the hash enrols the visitor in no variant: that call only looks
        up an earlier exposure, so it must not give a value a slice.

        A value's slice comes from the experiment's registry (``dimension.lua``: the first
        ``max_values`` distinct values each get one, later ones share "other"); slices never
        change, so each process remembers those it has seen, and a full registry, and asks
        Redis only about a value it has not met.
        """
        if not experiment.dimensions or variant_index is None:
            return ""
        attributes = json.loads(attributes_json) if attributes_json != "{}" else {}
        registry = self.keys.dimension_values(experiment.key, experiment.generation)
        out = []
        for position, dimension in enumerate(experiment.dimensions):
            text = dimension_text(attributes.get(dimension.name))
            known = self._dimension_slices.setdefault((registry, position), {})
            index = known.get(text)
            if index is None and (registry, position) in self._full_dimensions:
                index = dimension.max_values
            if index is None:
                args = DimensionArgs(position, text, dimension.max_values)
                index = int(
                    await self._dimension(keys=list(DimensionKeys(registry)), args=list(args))
                )
                if index == dimension.max_values:
                    self._full_dimensions.add((registry, position))
                else:
                    known[text] = index
            out.append(codec.SLICE_DIGITS[index])
        return "".join(out)

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
        slices = await self._slices(experiment, variant_index, attributes_json)
        keys, args = self._assign_call(
            experiment, visitor_id, variant_index, now_ms, attributes_json, slices
        )
        return Exposure.from_reply(await self._assign(keys=keys, args=args))

    @guarded
    async def record_exposures(
        self,
        calls: Sequence[tuple[Experiment, int | None]],
        visitor_id: str,
        *,
        now_ms: int,
        attributes_json: str = "{}",
    ) -> list[Exposure]:
        """:meth:`record_exposure` for several experiments in one round trip.

        Answered within the store's ``timeout_seconds`` (when it has one), however many calls
        it makes: the calls go through the batchers, whose round trips have that deadline, and
        the dimension registrations a first exposure may need are bounded as a whole.
        """
        if len(calls) == 1 and not calls[0][0].dimensions:
            # the hot path: one script call, coalesced with its neighbours
            experiment, index = calls[0]
            keys, args = self._assign_call(experiment, visitor_id, index, now_ms, attributes_json)
            return [Exposure.from_reply(await self._assign_batcher.call(keys, args))]
        if any(e.dimensions and index is not None for e, index in calls):
            return await guard(
                self._record_with_slices(calls, visitor_id, now_ms, attributes_json),
                timeout_seconds=self.timeout_seconds,
            )
        return await self._record_with_slices(calls, visitor_id, now_ms, attributes_json)

    async def _record_with_slices(
        self,
        calls: Sequence[tuple[Experiment, int | None]],
        visitor_id: str,
        now_ms: int,
        attributes_json: str,
    ) -> list[Exposure]:
        slices = [
            await self._slices(e, index, attributes_json) if e.dimensions else ""
            for e, index in calls
        ]
        results = await self._run_pipelined(
            [
                (
                    self._assign,
                    *self._assign_call(experiment, visitor_id, index, now_ms, attributes_json, cut),
                )
                for (experiment, index), cut in zip(calls, slices, strict=True)
            ],
        )
        return [Exposure.from_reply(r) for r in results]

    @guarded
    async def record_exposure_batch(
        self, experiment: Experiment, exposures: Sequence[tuple[str, int | None, int, str]]
    ) -> list[Exposure]:
        """:meth:`record_exposure` for many visitors in one round trip (imports, simulations).

        ``exposures`` holds ``(visitor_id, variant_index, now_ms, attributes_json)`` per
        visitor; each is recorded atomically on its own, as by :meth:`record_exposure`.
        """
        slices = [await self._slices(experiment, index, attrs) for _, index, _, attrs in exposures]
        results = await self._run_pipelined(
            [
                (
                    self._assign,
                    *self._assign_call(experiment, visitor, index, ms, attributes, cut),
                )
                for (visitor, index, ms, attributes), cut in zip(exposures, slices, strict=True)
            ]
        )
        return [Exposure.from_reply(r) for r in results]

    def _readers(self, experiments: Sequence[Experiment], name: str) -> list[_Reader]:
        """The experiments with a metric on event ``name``, with what it feeds in each.

        Kept per event name (up to 1,024 names) while the same tuple of experiments comes
        back: the definitions copy gives one tuple per version, so an event's readers and
        their shard keys are found once per version, not per request. A list is read afresh
        every time (it could have changed in place).
        """
        cache = None
        if isinstance(experiments, tuple):
            if experiments is not self._readers_for:
                self._readers_for = experiments
                self._readers_by_name.clear()
            cache = self._readers_by_name
        found = None if cache is None else cache.get(name)
        if found is None:
            found = [
                (number, experiment, plan, [None] * experiment.shards)
                for number, experiment in enumerate(experiments)
                if (plan := _track_plan(experiment, name)) is not None
            ]
            if cache is not None:
                cache.put(name, found)
        return found

    def _readings(
        self, experiments: Sequence[Experiment], events: Sequence[_Prepared]
    ) -> list[_Reading]:
        """Every (event, experiment) pair where the experiment has a metric on the event, in
        the events' order."""
        readings: list[_Reading] = []
        readers: dict[str, list[_Reader]] = {}
        for position, event in enumerate(events):
            name = event.event.event
            of_name = readers.get(name)
            if of_name is None:
                of_name = readers[name] = self._readers(experiments, name)
            for number, experiment, plan, shard_keys in of_name:
                place = event.place(experiment.shards, experiment.slices)
                shard = shard_keys[place.shard]
                if shard is None:
                    shard = shard_keys[place.shard] = self._shard_keys(experiment, place.shard)
                readings.append((position, number, experiment, event, plan, place, shard))
        return readings

    def _exposed_calls(self, readings: Sequence[_Reading]) -> list[_ExposedCall]:
        """The exposed.lua calls looking up the visitors of ``readings``: on one server a call
        per :data:`MAX_LOOKUPS_PER_CALL` of them, on a cluster one per experiment shard holding
        any (a script's keys must share a slot there)."""
        if self.one_server:
            return [
                _ExposedCall(readings[start : start + MAX_LOOKUPS_PER_CALL])
                for start in range(0, len(readings), MAX_LOOKUPS_PER_CALL)
            ]
        groups: dict[tuple[int, int], list[_Reading]] = {}
        chunks: list[list[_Reading]] = []
        for reading in readings:
            group = groups.get((reading[1], reading[5].shard))
            if group is None or len(group) >= MAX_LOOKUPS_PER_CALL:
                group = groups[(reading[1], reading[5].shard)] = []
                chunks.append(group)
            group.append(reading)
        return [_ExposedCall(chunk) for chunk in chunks]

    def _track_calls(
        self, readings: Sequence[_Reading], parts: list[int], expire_at: int
    ) -> list[_TrackCall]:
        """The track.lua calls for ``readings``: one per experiment shard holding any of them,
        each taking its events in their order."""
        open_calls: dict[tuple[int, int], _TrackCall] = {}
        calls: list[_TrackCall] = []
        for position, number, experiment, event, plan, place, shard in readings:
            call = open_calls.get((number, place.shard))
            if call is None or len(call.positions) >= MAX_EVENTS_PER_CALL:
                args = TrackArgs(self.log_max_length, expire_at, len(experiment.dimensions))
                call = _TrackCall(experiment, shard, args, self._slice_keys)
                open_calls[(number, place.shard)] = call
                calls.append(call)
            call.add(position, event, plan, place.slice, parts)
        return calls

    def _activity_calls(
        self, events: Sequence[_Prepared], parts: list[int], expire_at: int
    ) -> list[_ActivityCall]:
        """The activity.lua calls for ``events``: one per activity shard holding any of them."""
        open_calls: dict[int, _ActivityCall] = {}
        calls: list[_ActivityCall] = []
        for event in events:
            place = event.place(self.activity_shards, self.activity_slices)
            call = open_calls.get(place.shard)
            if call is None or call.count >= MAX_EVENTS_PER_CALL:
                args = ActivityArgs(expire_at, self.log_max_length)
                call = open_calls[place.shard] = _ActivityCall(
                    self._activity_keys[place.shard], args, self._slice_keys
                )
                calls.append(call)
            call.add(event, place.slice, parts)
        return calls

    @guarded
    async def track(
        self,
        experiments: Sequence[Experiment],
        events: Sequence[TrackEvent],
        *,
        now_ms: int | None = None,
    ) -> list[dict[str, TrackOutcome]]:
        """Credit each event to each experiment with a metric on it; outcomes per event.

        Every event also goes to the activity log (when the log is on), credited or not.
        ``now_ms`` (default: the clock) places event ids in the dedup window. Raises
        :class:`StoreUnavailableError` only when nothing was credited: when every experiment
        write failed, or, for events no experiment reads, the activity log refused them all.

        When some event is read by more than one experiment, the visitors are looked up first
        (``exposed.lua``, in the round trip that also writes the activity log), and track.lua
        is called only for the experiments that exposed them: two round trips, each within the
        store's ``timeout_seconds``, instead of one carrying a full call per experiment.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        parts, expire_at = self._dedup_parts(now)
        prepared = [_Prepared(event) for event in events]
        readings = self._readings(experiments, prepared)
        activity = (
            self._activity_calls(prepared, parts, expire_at) if self.log_max_length > 0 else []
        )
        outcomes: list[dict[str, TrackOutcome]] = [{} for _ in events]
        failures: list[Exception] = []
        unavailable = 0
        if len(readings) > len(events):
            lookups = self._exposed_calls(readings)
            first: list[ScriptCall] = [(self._exposed, c.keys, c.visitors) for c in lookups]
            first += [(self._activity, a.keys, a.args) for a in activity]
            results = await self._run_pipelined_in_place(first)
            activity_results = results[len(lookups) :]
            exposed: list[_Reading] = []
            for lookup, result in zip(lookups, results[: len(lookups)], strict=True):
                if isinstance(result, Exception):
                    failures.append(result)
                    unavailable += len(lookup.readings)
                    for reading in lookup.readings:
                        outcomes[reading[0]][reading[2].key] = TrackOutcome.UNAVAILABLE
                    continue
                for reading, code in zip(lookup.readings, result, strict=True):
                    if code:
                        exposed.append(reading)
                    else:
                        outcomes[reading[0]][reading[2].key] = TrackOutcome.NOT_EXPOSED
            calls = self._track_calls(exposed, parts, expire_at)
            track_results = await self._run_pipelined_in_place(
                [(self._track, *call.call()) for call in calls]
            )
        else:
            calls = self._track_calls(readings, parts, expire_at)
            script_calls: list[ScriptCall] = [(self._track, *call.call()) for call in calls]
            script_calls += [(self._activity, a.keys, a.args) for a in activity]
            if not script_calls:
                return outcomes
            results = await self._run_pipelined_in_place(script_calls)
            track_results, activity_results = results[: len(calls)], results[len(calls) :]
        for call, result in zip(calls, track_results, strict=True):
            key = call.experiment.key
            if isinstance(result, Exception):
                failures.append(result)
                unavailable += len(call.positions)
                for position in call.positions:
                    outcomes[position][key] = TrackOutcome.UNAVAILABLE
            else:
                for position, code in zip(call.positions, result, strict=True):
                    outcomes[position][key] = OUTCOMES[code]
        activity_failures = [
            (a, r)
            for a, r in zip(activity, activity_results, strict=True)
            if isinstance(r, Exception)
        ]
        failed_events = sum(a.count for a, _ in activity_failures)
        if failed_events and self.on_activity_failure is not None:
            self.on_activity_failure(failed_events)
        everything_failed = (
            unavailable == len(readings) if readings else failed_events == len(events)
        )
        errors = [*failures, *(r for _, r in activity_failures)]
        if everything_failed and errors:
            first_error = errors[0]
            if not isinstance(first_error, REDIS_FAILURES):
                raise first_error
            raise StoreUnavailableError(f"redis: {first_error}") from first_error
        for failure in errors:
            if not isinstance(failure, REDIS_FAILURES):
                raise failure  # a bug (bad script arguments), not an outage
        return outcomes
