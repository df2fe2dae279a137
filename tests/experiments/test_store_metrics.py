"""Caps and dimension slices in the store itself, on both Redis kinds: exact, sticky, reclaimed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from experiments.definitions import Experiment, Status, transition
from experiments.store import Store, TrackEvent, encode_attributes
from tests.conftest import RedisTarget
from tests.support.store import StoreRunner

T = TypeVar("T")
NOW_MS = 1_767_268_800_000  # 2026-01-01T12:00:00Z
DEFINITION: dict[str, Any] = {
    "key": "capped",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase", "cap": 100},
        {"name": "orders", "kind": "count", "event": "purchase", "cap": 2},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
    ],
    "dimensions": [{"name": "device", "max_values": 2}],
    "shards": 4,
    "slices": 8,
}


def _run(redis: RedisTarget, key_prefix: str, work: Callable[[Store], Awaitable[T]]) -> T:
    return StoreRunner(redis.url, key_prefix, cluster=redis.cluster)(work)


def _running() -> Experiment:
    draft = Experiment.model_validate({**DEFINITION, "created_at": NOW_MS / 1000 - 3600})
    return transition(draft, Status.RUNNING, now=NOW_MS / 1000 - 3600)


def _purchase(visitor: str, value: float, at: int) -> TrackEvent:
    return TrackEvent(visitor, "purchase", value, repr(value), NOW_MS + at)


def test_caps_apply_to_each_visitors_running_total(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS)
        await store.record_exposure(experiment, "bob", 0, now_ms=NOW_MS)
        # ann: 60 + 70 + 30 = 160 -> 100, 3 orders -> 2; bob: 40, 1 order
        for at, (visitor, value) in enumerate(
            [("ann", 60.0), ("bob", 40.0), ("ann", 70.0), ("ann", 30.0)]
        ):
            await store.track([experiment], [_purchase(visitor, value, at + 1)])
        control, _ = await store.totals(experiment)
        assert control.n == 2
        assert control.sums["revenue"] == 140.0 and control.sum_squares["revenue"] == 100**2 + 40**2
        assert control.sums["orders"] == 3.0 and control.sum_squares["orders"] == 2**2 + 1
        assert control.sums["conversion"] == 2.0
        assert control.cross["aov"] == 100 * 2 + 40 * 1  # the ratio reads its parts' capped totals

    _run(redis_server, key_prefix, work)


def test_slices_follow_the_visitor_and_close_at_max_values(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        for i, device in enumerate(["mobile", "desktop", "tablet", "mobile", None]):
            attributes = encode_attributes({} if device is None else {"device": device})
            await store.record_exposure(
                experiment, f"v{i}", i % 2, now_ms=NOW_MS, attributes_json=attributes
            )
        # a later exposure call with another device keeps the visitor where it was recorded
        again = encode_attributes({"device": "desktop"})
        await store.record_exposure(experiment, "v0", 0, now_ms=NOW_MS + 5, attributes_json=again)
        await store.track([experiment], [_purchase("v0", 10.0, 10), _purchase("v2", 20.0, 11)])
        slices = {s.value: s for s in await store.dimension_totals(experiment, "device")}
        assert set(slices) == {"mobile", "desktop", "other"}
        assert [t.n for t in slices["mobile"].totals] == [1, 1]  # v0, v3
        assert [t.n for t in slices["desktop"].totals] == [0, 1]  # v1
        assert [t.n for t in slices["other"].totals] == [2, 0]  # v2 (tablet), v4 (none)
        assert slices["other"].other and not slices["mobile"].other
        assert slices["mobile"].totals[0].sums["revenue"] == 10.0
        assert slices["other"].totals[0].sums["revenue"] == 20.0
        total = await store.totals(experiment)
        assert sum(t.n for s in slices.values() for t in s.totals) == sum(t.n for t in total)
        assert await store.assignment_of(experiment, "v0") == 0

    _run(redis_server, key_prefix, work)


def test_a_deleted_experiment_leaves_no_dimension_key(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(_running())
        attributes = encode_attributes({"device": "mobile"})
        await store.record_exposure(experiment, "ann", 0, now_ms=NOW_MS, attributes_json=attributes)
        await store.track([experiment], [_purchase("ann", 5.0, 1)])
        await store.delete_experiment(experiment)
        again = await store.create_experiment(_running())
        assert await store.dimension_totals(again, "device") == []

    _run(redis_server, key_prefix, work)
    found = []
    for node in redis_server.masters():
        with node:
            found += [k for k in node.scan_iter(f"{key_prefix}:*") if ":1:" in k and "capped" in k]
    assert found == []
