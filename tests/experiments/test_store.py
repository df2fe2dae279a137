"""The store against the real embedded Redis: its rules, its layout and its encodings."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from experiments.definitions import Experiment, Status, transition
from experiments.errors import ConflictError, StoreUnavailableError
from experiments.keys import CLUSTER_SLOTS, Keyspace, key_slot, place_of
from experiments.store import Store, TrackEvent, TrackOutcome, codec, day_of
from experiments.store.scripts import SCRIPTS, TrackKeys
from tests.conftest import RedisTarget
from tests.support.store import StoreRunner

T = TypeVar("T")
DAY_MS = 86_400_000
NOW_MS = 1_767_268_800_000  # 2026-01-01T12:00:00Z
DEFINITION: dict[str, Any] = {
    "key": "checkout",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
        {"name": "orders", "kind": "count", "event": "purchase"},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
    ],
    "shards": 4,
    "slices": 8,
}


def _run(
    redis: RedisTarget, key_prefix: str, work: Callable[[Store], Awaitable[T]], **options: Any
) -> T:
    return StoreRunner(redis.url, key_prefix, cluster=redis.cluster)(work, **options)


def _running(**changes: Any) -> Experiment:
    draft = Experiment.model_validate({**DEFINITION, "created_at": NOW_MS / 1000 - 3600, **changes})
    return transition(draft, Status.RUNNING, now=NOW_MS / 1000 - 3600)


def _event(visitor: str, value: float, ms: int, event_id: str | None = None) -> TrackEvent:
    return TrackEvent(visitor, "purchase", value, repr(value), ms, event_id)


def test_the_first_exposure_wins(redis_server: RedisTarget, key_prefix: str) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        first = await store.record_exposure(experiment, "ann", 1, now_ms=NOW_MS)
        again = await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS + 5)
        assert (first.variant_index, first.recorded_now) == (1, True)
        assert (again.variant_index, again.recorded_now) == (1, False)
        assert await store.assignment_of(experiment, "ann") == 1
        control, treatment = await store.totals(experiment)
        assert (control.n, treatment.n) == (0, 1)

    _run(redis_server, key_prefix, work)


def test_a_hash_that_enrols_nobody_only_looks_up(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS)
        known = await store.record_exposure(experiment, "ann", None, now_ms=NOW_MS + 1)
        unknown = await store.record_exposure(experiment, "bob", None, now_ms=NOW_MS + 1)
        assert (known.variant_index, known.recorded_now) == (0, False)
        assert (unknown.variant_index, unknown.recorded_now) == (None, False)
        assert await store.assignment_of(experiment, "bob") is None
        assert [t.n for t in await store.totals(experiment)] == [1, 0]

    _run(redis_server, key_prefix, work)


def test_an_event_id_counts_once_per_experiment_and_visitor_within_the_window(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    window_ms = 400 * 1000

    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        for visitor in ("ann", "bob"):
            await store.record_exposure(experiment, visitor, 0, now_ms=NOW_MS)

        # arrival times near the server's clock: the windows expire by it
        arrived = int(time.time() * 1000)

        async def track(visitor: str, now_ms: int) -> TrackOutcome:
            event = _event(visitor, 10.0, NOW_MS + 10, "order-1")
            return (await store.track([experiment], [event], now_ms=now_ms))[0][experiment.key]

        assert await track("ann", arrived) is TrackOutcome.CREDITED
        assert await track("ann", arrived + window_ms - 1) is TrackOutcome.DUPLICATE
        # the same id from another visitor is another event (the rule is per visitor)
        assert await track("bob", arrived + 30) is TrackOutcome.CREDITED
        # past the window (and its last part) the id is forgotten
        assert await track("ann", arrived + 2 * window_ms) is TrackOutcome.CREDITED
        control, _ = await store.totals(experiment)
        assert control.sums["orders"] == 3 and control.sums["revenue"] == 30.0

    _run(redis_server, key_prefix, work, dedup_seconds=window_ms // 1000)


def test_remembered_event_ids_expire(redis_server: RedisTarget, key_prefix: str) -> None:
    async def work(store: Store) -> list[int]:
        experiment = await store.create_experiment(_running(shards=1, slices=1))
        await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS)
        now = int(time.time() * 1000)
        await store.track([experiment], [_event("ann", 1.0, NOW_MS + 5, "e-1")], now_ms=now)
        keys = store.keys.shard(experiment.key, experiment.generation, 0, 1)
        parts, _ = store._dedup_parts(now)
        return [int(await store.client.pttl(keys.event_ids(0, w))) for w in parts]

    ttls = _run(redis_server, key_prefix, work)
    assert ttls[0] > 0 and set(ttls[1:]) == {-2}  # the newest part holds it and will go


def test_daily_totals_split_the_totals_by_utc_day(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS - DAY_MS)
        await store.record_exposure(experiment, "bob", 1, now_ms=NOW_MS)
        await store.track(
            [experiment],
            [_event("ann", 2.5, NOW_MS - DAY_MS + 10), _event("ann", 4.0, NOW_MS + 10)],
            now_ms=NOW_MS + 20,
        )
        daily = await store.daily_totals(experiment)
        assert [day for day, _ in daily] == [day_of(NOW_MS - DAY_MS), day_of(NOW_MS)]
        (_, first), (_, second) = daily
        assert [t.n for t in first] == [1, 0] and [t.n for t in second] == [0, 1]
        assert first[0].sums["revenue"] == 2.5 and second[0].sums["revenue"] == 4.0
        assert first[0].sums["orders"] == 1 and second[0].sums["orders"] == 1
        total, _ = await store.totals(experiment)
        assert total.sums["revenue"] == 6.5 and total.sum_squares["revenue"] == 6.5**2
        assert total.cross["aov"] == 6.5 * 2

    _run(redis_server, key_prefix, work)


def _generation_keys(redis: RedisTarget, key_prefix: str, generation: int) -> list[str]:
    keys = []
    for node in redis.masters():
        with node:
            found = node.scan_iter(f"{key_prefix}:{{checkout:*")
            keys += [k for k in found if f"}}:{generation}:" in k]
    return keys


def test_delete_and_re_create_start_from_nothing(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        await store.record_exposure(experiment, "ann", 1, now_ms=NOW_MS)
        await store.track([experiment], [_event("ann", 3.0, NOW_MS + 1, "x")], now_ms=NOW_MS)
        await store.delete_experiment(experiment)
        assert _generation_keys(redis_server, key_prefix, experiment.generation) == []
        again = await store.create_experiment(_running())
        assert again.generation == experiment.generation + 1
        assert [t.n for t in await store.totals(again)] == [0, 0]
        assert await store.assignment_of(again, "ann") is None
        outcome = await store.track([again], [_event("ann", 3.0, NOW_MS + 1, "x")])
        assert outcome[0][again.key] is TrackOutcome.NOT_EXPOSED

    _run(redis_server, key_prefix, work)


def test_an_interrupted_delete_leaves_nothing_a_new_experiment_sees(
    redis_server: RedisTarget, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        for i in range(50):
            await store.record_exposure(experiment, f"v{i}", i % 2, now_ms=NOW_MS)

        async def crash(_: Experiment) -> None:
            raise StoreUnavailableError("redis: connection lost mid-delete")

        with monkeypatch.context() as patch:
            patch.setattr(store, "_reclaim", crash)
            with pytest.raises(StoreUnavailableError):
                await store.delete_experiment(experiment)
        assert _generation_keys(redis_server, key_prefix, experiment.generation)  # left behind
        again = await store.create_experiment(_running())
        assert [t.n for t in await store.totals(again)] == [0, 0]
        assert await store.record_exposure(again, "v1", 0, now_ms=NOW_MS + 1) is not None
        assert await store.assignment_of(again, "v1") == 0  # v1 was 1 in the old generation
        assert await store.reclaim_deleted() == 1
        assert _generation_keys(redis_server, key_prefix, experiment.generation) == []
        assert await store.reclaim_deleted() == 0
        assert [t.n for t in await store.totals(again)] == [1, 0]

    _run(redis_server, key_prefix, work)


def test_a_stale_definition_cannot_replace_or_delete(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        with pytest.raises(ConflictError, match="already exists"):
            await store.create_experiment(_running())
        await store.delete_experiment(experiment)
        again = await store.create_experiment(_running())
        with pytest.raises(ConflictError, match="changed concurrently"):
            await store.delete_experiment(experiment)  # the old generation
        assert (await store.get_experiment("checkout")).generation == again.generation
        _, listed = await store.definitions()
        assert list(listed) == ["checkout"]

    _run(redis_server, key_prefix, work)


def test_the_log_decodes_to_what_was_recorded(redis_server: RedisTarget, key_prefix: str) -> None:
    visitors = [str(uuid.uuid4()), "visitor,|1 ünï", str(uuid.uuid4()).upper()]

    async def work(store: Store) -> list[tuple[Any, ...]]:
        experiment = await store.create_experiment(_running(shards=1))
        for i, visitor in enumerate(visitors):
            attributes = "{}" if i == 0 else '{"device":"mobile","note":"a,b|c"}'
            await store.record_exposure(
                experiment, visitor, i % 2, now_ms=NOW_MS + i, attributes_json=attributes
            )
            event = TrackEvent(visitor, "purchase", 49.9, "49.90", NOW_MS + 100 + i)
            await store.track([experiment], [event], now_ms=NOW_MS + 200)
        snapshot = await store.log_snapshot(experiment)
        assert snapshot.log_entries == 6 and snapshot.exposures == 3
        tail = snapshot.log_tails[0]
        assert tail is not None
        page = await store.log_page(experiment, 0, after=None, until=tail, count=100)
        activity = [
            row for a in range(store.activity_shards) for _, row in await store.activity_entries(a)
        ]
        assert sorted(activity) == sorted(
            (v, NOW_MS + 100 + i, "purchase", "49.90") for i, v in enumerate(visitors)
        )
        return list(page.rows())

    rows = _run(redis_server, key_prefix, work)
    expected: list[tuple[str, str, str, int, str | None, str | None, str | None]] = []
    for i, visitor in enumerate(visitors):
        variant = ["control", "treatment"][i % 2]
        attributes = "{}" if i == 0 else '{"device":"mobile","note":"a,b|c"}'
        expected.append(("exposure", visitor, variant, NOW_MS + i, None, None, attributes))
        expected.append(("event", visitor, variant, NOW_MS + 100 + i, "purchase", "49.90", None))
    assert rows == expected


def test_packed_values_round_trip() -> None:
    some = str(uuid.uuid4())
    assert (
        len(codec.pack_visitor(some)) == 23
        and codec.unpack_visitor(codec.pack_visitor(some)) == some
    )
    for plain in ("v1", some.upper(), some + "x", "ünïcode"):
        assert codec.pack_visitor(plain) == plain == codec.unpack_visitor(plain)
    with pytest.raises(ValueError, match="control character"):
        codec.pack_visitor("\x01" + "a" * 22)
    assert codec.assignment_of(codec.pack_assignment(NOW_MS, 19)) == (19, NOW_MS)
    assert codec.event_id_digest("a", "b") != codec.event_id_digest("b", "a")


def test_one_failed_experiment_write_does_not_hide_the_others(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    """A write that fails is reported for its experiment; the credited ones stay credited, and
    a failed activity-log write is counted, not turned into an error."""
    failures: list[int] = []

    async def work(store: Store) -> None:
        good = await store.create_experiment(_running(key="good", shards=1))
        bad = await store.create_experiment(_running(key="bad", shards=1))
        for experiment in (good, bad):
            await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS)
        # a key of the wrong type makes the real server refuse those scripts
        await store.client.set(store.keys.shard("bad", bad.generation, 0, 1).agg, "x")
        place = place_of("ann", store.activity_shards, store.activity_slices)
        await store.client.set(store.keys.activity(place.shard, store.activity_shards).log, "x")
        outcome = await store.track([good, bad], [_event("ann", 5.0, NOW_MS + 1, "o-1")])
        assert outcome == [{"good": TrackOutcome.CREDITED, "bad": TrackOutcome.UNAVAILABLE}]
        assert failures == [1]
        assert (await store.totals(good))[0].sums["revenue"] == 5.0
        with pytest.raises(StoreUnavailableError):
            await store.track([bad], [_event("ann", 5.0, NOW_MS + 2, "o-2")])

    _run(redis_server, key_prefix, work, on_activity_failure=failures.append)


def test_slices_stay_in_the_compact_encoding(redis_server: RedisTarget, key_prefix: str) -> None:
    async def work(store: Store) -> set[str]:
        experiment = await store.create_experiment(_running(shards=2, slices=8))
        rng = random.Random(7)
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(1000)]
        rows = [(visitor, i % 2, NOW_MS, "{}") for i, visitor in enumerate(ids)]
        await store.record_exposure_batch(experiment, rows)
        keys = store.keys.shard(experiment.key, experiment.generation, 0, 2)
        sizes = [int(await store.client.hlen(keys.assign(s))) for s in range(8)]
        assert sum(sizes) > 400 and max(sizes) <= 128
        return {str(await store.client.object("encoding", keys.assign(s))) for s in range(8)}

    assert _run(redis_server, key_prefix, work) <= {"ziplist", "listpack"}


@pytest.mark.parametrize("shards", [3, 16, 64, 256])
def test_an_experiments_shards_tile_the_slots(shards: int) -> None:
    keyspace = Keyspace()
    slots = [key_slot(keyspace.shard("buyakilt-filters", 1, s, shards).agg) for s in range(shards)]
    assert all(
        s * CLUSTER_SLOTS // shards <= slot < (s + 1) * CLUSTER_SLOTS // shards
        for s, slot in enumerate(slots)
    )
    masters = [
        sum(low <= slot <= high for slot in slots)
        for low, high in ((0, 5460), (5461, 10922), (10923, 16383))
    ]
    assert max(masters) <= 1.25 * min(masters) or shards < 16


def test_key_slot_matches_the_server() -> None:
    from redis.crc import key_slot as redis_key_slot

    keyspace = Keyspace("p")
    for key in (
        keyspace.definitions,
        keyspace.shard("e", 3, 5, 64).log,
        keyspace.activity(1, 64).log,
    ):
        assert key_slot(key) == redis_key_slot(key.encode())


def test_every_script_header_declares_the_layout_python_uses() -> None:
    for spec in SCRIPTS:
        header = {
            m.group(1): m.group(2).split()
            for m in re.finditer(r"^-- (KEYS|ARGV): (.+)$", spec.source, re.MULTILINE)
        }
        keys, args = spec.layout()
        assert (header["KEYS"], header["ARGV"]) == (keys, args), spec.file


def test_a_shard_head_is_the_track_keys_then_the_dimension_aggregates() -> None:
    shard = Keyspace("p").shard("checkout", 3, 1, 4)
    head = shard.head(2)
    assert head == (
        *TrackKeys(agg=shard.agg, days=shard.days, log=shard.log),
        shard.dimension(0),
        shard.dimension(1),
    )
    assert shard.head(2) is head  # built once
    assert shard.head(0) == tuple(TrackKeys(shard.agg, shard.days, shard.log))
    assert len({shard.agg, shard.days, shard.log, *head[3:]}) == 5


def test_a_definition_of_the_first_layout_is_adopted_and_counts_from_zero(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = _running()
        # the first layout stored the definition JSON alone, with no generation counter
        await store.client.hset(
            store.keys.definitions, experiment.key, experiment.model_dump_json()
        )
        assert (await store.get_experiment(experiment.key)).generation == 0
        assert await store.adopt_unversioned() == [experiment.key]
        assert await store.adopt_unversioned() == []
        adopted = await store.get_experiment(experiment.key)
        assert adopted.generation == 1
        exposure = await store.record_exposure(adopted, "ann", 0, now_ms=NOW_MS)
        assert exposure.recorded_now
        assert [t.n for t in await store.totals(adopted)] == [1, 0]

    _run(redis_server, key_prefix, work)
