"""A batch of events tracked in one call counts exactly as the same events tracked one by one.

``Store.track`` groups a batch's events by shard, one script call per experiment shard and per
activity shard (at most ``MAX_EVENTS_PER_CALL`` events each). Here the same events go to two
stores on their own keyspaces, one batch against one call per event, and everything the store
keeps must come out the same: outcomes, totals, daily and per-slice totals, raw logs and the
activity log. Runs on both Redis kinds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, Connection

from experiments.connection import connect
from experiments.definitions import Experiment, Status, transition
from experiments.keys import place_of
from experiments.store import Store, TrackEvent, TrackOutcome, codec, encode_attributes
from experiments.store.tracking import MAX_EVENTS_PER_CALL
from service.loops import run_sync
from tests.conftest import RedisTarget
from tests.experiments.test_store_metrics import DEFINITION as CAPPED
from tests.support.store import StoreRunner

T = TypeVar("T")
DAY_MS = 86_400_000
NOW_MS = (int(time.time() * 1000) // DAY_MS) * DAY_MS + DAY_MS // 2
"""Today noon (UTC): remembered event ids expire by the server's clock, so times are real."""
DEFINITION: dict[str, Any] = {
    **CAPPED,  # conversion, capped revenue and orders, their ratio, a device dimension
    "key": "batched",
    "metrics": [
        *CAPPED["metrics"],
        {"name": "carts", "kind": "count", "event": "cart_view"},
        {"name": "per_cart", "kind": "ratio", "numerator": "revenue", "denominator": "carts"},
        {"name": "spend", "kind": "mean", "event": "purchase"},  # sums the values' own text
        {"name": "carts_per_order", "kind": "ratio", "numerator": "carts", "denominator": "orders"},
    ],
    "shards": 2,
    "slices": 4,
}
VISITORS = [f"v{i}" for i in range(40)]
"""Exposed visitors; ``late-*`` are exposed after their first events, ``never-*`` never."""


def _running(key: str = DEFINITION["key"]) -> Experiment:
    draft = Experiment.model_validate(
        {**DEFINITION, "key": key, "created_at": NOW_MS / 1000 - 7200}
    )
    return transition(draft, Status.RUNNING, now=NOW_MS / 1000 - 7200)


def _events(count: int) -> list[TrackEvent]:
    """Purchases and cart views over two days, with repeated ids (same and other visitor)."""
    rng = random.Random(7)
    people = [*VISITORS, "late-1", "late-2", "never-1", "never-2"]
    events = []
    for i in range(count):
        visitor = rng.choice(people)
        name = rng.choice(["purchase", "purchase", "cart_view"])
        value = round(rng.uniform(0, 80), 2) if name == "purchase" else 0.0
        event_id = rng.choice([None, f"id-{i}", f"id-{i % 25}"])  # id-0..24 repeat
        at = NOW_MS - DAY_MS + i * 60_000  # spans two UTC days
        events.append(TrackEvent(visitor, name, value, repr(value), at, event_id))
    return events + events[:: count // 20]  # resent: with an id a duplicate, else counted again


async def _expose(store: Store) -> Experiment:
    experiment = await store.create_experiment(_running())
    for i, visitor in enumerate(VISITORS):
        device = ["mobile", "desktop", "tablet"][i % 3]
        attributes = encode_attributes({"device": device})
        await store.record_exposure(
            experiment, visitor, i % 2, now_ms=NOW_MS - 2 * DAY_MS, attributes_json=attributes
        )
    for visitor in ("late-1", "late-2"):
        await store.record_exposure(experiment, visitor, 1, now_ms=NOW_MS)
    return experiment


async def _state(store: Store, experiment: Experiment) -> dict[str, Any]:
    """Everything the store keeps for the experiment and the activity log, comparable."""
    logs = []
    for shard in range(experiment.shards):
        key = store.keys.shard(experiment.key, experiment.generation, shard, experiment.shards)
        logs.append([fields for _, fields in await store.client.xrange(key.log) or []])
    activity = [
        [entry for _, entry in await store.activity_entries(a, count=100_000)]
        for a in range(store.activity_shards)
    ]
    return {
        "totals": await store.totals(experiment),
        "daily": await store.daily_totals(experiment),
        "device": await store.dimension_totals(experiment, "device"),
        "logs": logs,
        "activity": activity,
    }


def _run(
    redis: RedisTarget, prefix: str, work: Callable[[Store], Awaitable[T]], **options: Any
) -> T:
    return StoreRunner(redis.url, prefix, cluster=redis.cluster)(work, **options)


async def _stored_text(store: Store, experiment: Experiment) -> list[dict[str, str]]:
    """The aggregate hashes as Redis keeps them: overall, per day and per dimension slice."""
    hashes: list[dict[str, str]] = []
    for shard in range(experiment.shards):
        keys = store.keys.shard(experiment.key, experiment.generation, shard, experiment.shards)
        days = sorted(str(day) for day in await store.client.smembers(keys.days))
        for key in [keys.agg, keys.dimension(0), *(keys.day(day) for day in days)]:
            stored = await store.client.hgetall(key)
            hashes.append({str(field): str(value) for field, value in stored.items()})
    return hashes


State = Callable[[Store, Experiment], Awaitable[T]]


def _batched(events: list[TrackEvent], state: State[T]) -> Callable[[Store], Awaitable[Any]]:
    async def batched(store: Store) -> tuple[list[dict[str, TrackOutcome]], T]:
        experiment = await _expose(store)
        outcomes = await store.track([experiment], events, now_ms=NOW_MS)
        return outcomes, await state(store, experiment)

    return batched


def _one_by_one(events: list[TrackEvent], state: State[T]) -> Callable[[Store], Awaitable[Any]]:
    async def one_by_one(store: Store) -> tuple[list[dict[str, TrackOutcome]], T]:
        experiment = await _expose(store)
        outcomes = []
        for event in events:
            outcomes += await store.track([experiment], [event], now_ms=NOW_MS)
        return outcomes, await state(store, experiment)

    return one_by_one


def test_a_batch_counts_as_its_events_one_by_one(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    events = _events(3 * MAX_EVENTS_PER_CALL)  # more than one call's worth per shard
    options = {"activity_shards": 4, "activity_slices": 4}
    batch = _run(redis_server, f"{key_prefix}:batch", _batched(events, _state), **options)
    single = _run(redis_server, f"{key_prefix}:single", _one_by_one(events, _state), **options)
    assert batch[0] == single[0]
    kinds = {o["batched"] for o in batch[0]}
    assert kinds == {
        TrackOutcome.CREDITED,
        TrackOutcome.DUPLICATE,
        TrackOutcome.NOT_EXPOSED,
        TrackOutcome.BEFORE_EXPOSURE,
    }
    assert batch[1] == single[1]
    assert batch[1]["totals"][0].n + batch[1]["totals"][1].n == len(VISITORS) + 2
    assert sum(len(log) for log in batch[1]["activity"]) < len(events)  # ids seen twice: once


def test_a_batch_stores_the_same_text_as_its_events_one_by_one(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    """Integer statistics are summed over a call and written once; every stored number must
    still be the very text the per-event writes leave, floats rounded step by step included."""
    events = _events(3 * MAX_EVENTS_PER_CALL)
    batch = _run(redis_server, f"{key_prefix}:batch", _batched(events, _stored_text))
    single = _run(redis_server, f"{key_prefix}:single", _one_by_one(events, _stored_text))
    assert batch == single
    fields = {field for stored in batch[1] for field in stored}
    summed = ["conversion:1:ss", "orders:1:ss", "carts:1:ss", "carts_per_order:1:xy"]
    in_order = ["revenue:1:ss", "spend:1:sum", "aov:1:xy", "per_cart:1:xy"]
    for field in summed + in_order:  # each written overall and in a dimension slice
        assert field in fields and any(f.endswith(f":{field}") for f in fields), field
    assert any(not value.isdigit() for stored in batch[1] for value in stored.values())


def test_a_resent_batch_counts_nothing_again(redis_server: RedisTarget, key_prefix: str) -> None:
    events = [e for e in _events(400) if e.event_id is not None]

    async def work(store: Store) -> None:
        experiment = await _expose(store)
        first = await store.track([experiment], events, now_ms=NOW_MS)
        before = await _state(store, experiment)
        again = await store.track([experiment], events, now_ms=NOW_MS + 60_000)
        assert await _state(store, experiment) == before
        credited = [o["batched"] is TrackOutcome.CREDITED for o in first]
        assert any(credited)
        for was_credited, outcome in zip(credited, again, strict=True):
            if was_credited:
                assert outcome["batched"] is TrackOutcome.DUPLICATE

    _run(redis_server, key_prefix, work)


def test_a_batch_over_two_experiments_reports_each(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        first = await _expose(store)
        other = await store.create_experiment(_running("other"))
        await store.record_exposure(other, "v1", 0, now_ms=NOW_MS - DAY_MS)
        events = [
            TrackEvent("v1", "purchase", 5.0, "5.0", NOW_MS, "a"),
            TrackEvent("v2", "cart_view", 0.0, "0.0", NOW_MS, None),
            TrackEvent("v1", "purchase", 5.0, "5.0", NOW_MS, "a"),
        ]
        outcomes = await store.track([first, other], events, now_ms=NOW_MS)
        assert outcomes == [
            {"batched": TrackOutcome.CREDITED, "other": TrackOutcome.CREDITED},
            {"batched": TrackOutcome.CREDITED, "other": TrackOutcome.NOT_EXPOSED},
            {"batched": TrackOutcome.DUPLICATE, "other": TrackOutcome.DUPLICATE},
        ]

    _run(redis_server, key_prefix, work)


def test_every_connection_packs_commands_with_hiredis(redis_server: RedisTarget) -> None:
    """A batch's script calls carry thousands of arguments: redis-py's Python packer is slow."""

    async def work() -> list[str]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        try:
            await client.ping()
            if isinstance(client, aioredis.RedisCluster):
                nodes = client.get_nodes()
                kinds: list[type[AbstractConnection]] = [n.connection_class for n in nodes]
                assert len(nodes) >= 3
            else:
                kinds = [client.connection_pool.connection_class]
            packed = Connection.pack_command(Connection(), "EVALSHA", "abc", 1, "k", "é")
            for kind in kinds:
                assert kind.pack_command(kind(), "EVALSHA", "abc", 1, "k", "é") == [
                    b"".join(packed)
                ]
            return [kind.__name__ for kind in kinds]
        finally:
            await client.aclose()

    assert all("Packed" in name for name in run_sync(work))


async def _expose_other(store: Store) -> Experiment:
    """A second experiment on the same events that exposed only every third visitor."""
    other = await store.create_experiment(_running("other"))
    for visitor in VISITORS[::3]:
        await store.record_exposure(other, visitor, 1, now_ms=NOW_MS - 2 * DAY_MS)
    return other


def test_experiments_tracked_together_count_as_each_tracked_alone(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    """Events read by two experiments are looked up first (exposed.lua), and track.lua runs
    only where the visitor was exposed: the outcome and every stored text must be what each
    experiment tracked on its own (one experiment per call: no lookup) leaves."""
    events = _events(2 * MAX_EVENTS_PER_CALL)

    async def together(store: Store) -> Any:
        first, other = await _expose(store), await _expose_other(store)
        outcomes = await store.track([first, other], events, now_ms=NOW_MS)
        return outcomes, [await _stored_text(store, e) for e in (first, other)]

    async def alone(store: Store) -> Any:
        first, other = await _expose(store), await _expose_other(store)
        outcomes = await store.track([first], events, now_ms=NOW_MS)
        for merged, of_other in zip(
            outcomes, await store.track([other], events, now_ms=NOW_MS), strict=True
        ):
            merged.update(of_other)
        return outcomes, [await _stored_text(store, e) for e in (first, other)]

    both = _run(redis_server, f"{key_prefix}:together", together, log_max_length=0)
    each = _run(redis_server, f"{key_prefix}:alone", alone, log_max_length=0)
    assert both == each
    kinds = {o["other"] for o in both[0]}
    assert {TrackOutcome.CREDITED, TrackOutcome.NOT_EXPOSED} <= kinds


def test_only_the_experiments_that_exposed_the_visitor_get_a_track_call(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        first, other = await _expose(store), await _expose_other(store)
        trips: list[list[tuple[Any, list[str]]]] = []
        run = store._run_pipelined_in_place

        def spy(calls: Any) -> Any:
            trips.append([(script, list(keys)) for script, keys, _ in calls])
            return run(calls)

        store._run_pipelined_in_place = spy  # type: ignore[method-assign]
        event = TrackEvent(VISITORS[1], "purchase", 5.0, "5.0", NOW_MS, "order-1")
        outcome = await store.track([first, other], [event], now_ms=NOW_MS)
        assert outcome == [{"batched": TrackOutcome.CREDITED, "other": TrackOutcome.NOT_EXPOSED}]
        assert {script for script, _ in trips[0]} == {store._exposed, store._activity}
        ((script, keys),) = trips[1]  # the one experiment that showed the visitor anything
        assert script is store._track
        assert all("{batched:" in key for key in keys), keys

    _run(redis_server, key_prefix, work)


def test_a_lookup_answers_per_visitor_and_leaves_an_unreadable_slice_to_the_track_call(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await _expose(store)
        shard = store.keys.shard(experiment.key, experiment.generation, 0, experiment.shards)
        known = next(v for v in VISITORS if place_of(v, 2, 4).shard == 0)
        slice_ = place_of(known, 2, 4).slice
        broken = 3 if slice_ != 3 else 2
        await store.client.set(shard.assign(broken), "not a hash")
        keys = [shard.assign(slice_), shard.assign(slice_), shard.assign(broken)]
        visitors = [codec.pack_visitor(v) for v in (known, "nobody", known)]
        assert await store._exposed(keys=keys, args=visitors) == [1, 0, 1]

    _run(redis_server, key_prefix, work)


def test_readers_are_kept_per_tuple_of_experiments_and_a_list_is_read_afresh(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    """The definitions copy hands tracking one tuple per version: an event's readers are found
    once for it. A new tuple (a new version) is read again, and so is a list every time."""

    async def work(store: Store) -> None:
        first, other = await _expose(store), await _expose_other(store)
        event = TrackEvent(VISITORS[0], "purchase", 5.0, "5.0", NOW_MS)  # exposed in both
        running = (first,)
        assert await store.track(running, [event], now_ms=NOW_MS) == [
            {"batched": TrackOutcome.CREDITED}
        ]
        assert store._readers(running, "purchase") is store._readers(running, "purchase")
        newer = (first, other)
        assert set((await store.track(newer, [event], now_ms=NOW_MS))[0]) == {"batched", "other"}
        assert set((await store.track(running, [event], now_ms=NOW_MS))[0]) == {"batched"}
        listed = [first]
        assert set((await store.track(listed, [event], now_ms=NOW_MS))[0]) == {"batched"}
        listed.append(other)  # changed in place
        assert set((await store.track(listed, [event], now_ms=NOW_MS))[0]) == {"batched", "other"}

    _run(redis_server, key_prefix, work)
