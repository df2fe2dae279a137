"""The store pieces of targeting on both Redis kinds: the start's compare-and-set on the
definitions' version, client keys, and the condition-changed lookup of enrolled visitors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from experiments.assignment import Reason, decide
from experiments.definitions import Experiment, ExperimentPatch, Status, apply_patch, transition
from experiments.errors import ConflictError
from experiments.exclusion import check_start
from experiments.store import Store
from tests.conftest import RedisTarget
from tests.support.store import StoreRunner

NOW = 1_767_268_800.0


def _draft(key: str, **fields: Any) -> Experiment:
    data = {
        "key": key,
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "shards": 4,
        "slices": 8,
        **fields,
    }
    return Experiment.model_validate(data)


async def _start(
    store: Store, current: Experiment, both_checked: asyncio.Barrier | None = None
) -> None:
    """What the admin route does: check against all others, write only if none changed."""
    version, others = await store.definitions()
    started = transition(current, Status.RUNNING, now=NOW)
    check_start(started, others)
    if both_checked is not None:
        await both_checked.wait()  # both starts have passed the check before either writes
    await store.replace_experiment(current, started, expected_version=version)


def test_two_overlapping_starts_at_once_cannot_both_take_the_range(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        a = await store.create_experiment(
            _draft("a", namespace={"id": "n", "start": 0, "end": 0.6})
        )
        b = await store.create_experiment(
            _draft("b", namespace={"id": "n", "start": 0.5, "end": 1})
        )
        barrier = asyncio.Barrier(2)
        outcomes = await asyncio.gather(
            _start(store, a, barrier), _start(store, b, barrier), return_exceptions=True
        )
        assert sum(o is None for o in outcomes) == 1
        (failure,) = [o for o in outcomes if o is not None]
        assert isinstance(failure, ConflictError) and "changed concurrently" in str(failure)
        _, stored = await store.definitions()
        assert sorted(e.status.value for e in stored.values()) == ["draft", "running"]
        loser = next(e for e in stored.values() if e.status is Status.DRAFT)
        with pytest.raises(ConflictError, match="overlaps"):
            await _start(store, loser)

    StoreRunner(redis_server.url, key_prefix, cluster=redis_server.cluster)(work)


def test_client_keys_are_created_listed_and_revoked(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        first = await store.create_client_key(name="web", now=NOW)
        second = await store.create_client_key(name="ios", now=NOW + 1)
        assert first.client_key != second.client_key
        assert first.client_key.startswith("sdk-") and len(first.client_key) >= 24
        assert [k.name for k in await store.client_keys()] == ["web", "ios"]
        assert await store.client_key_exists(first.client_key)
        assert await store.revoke_client_key(first.client_key)
        assert not await store.client_key_exists(first.client_key)
        assert not await store.revoke_client_key(first.client_key)
        assert [k.client_key for k in await store.client_keys()] == [second.client_key]

    StoreRunner(redis_server.url, key_prefix, cluster=redis_server.cluster)(work)


def test_an_enrolled_visitor_who_stops_matching_keeps_the_recorded_variant(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def work(store: Store) -> None:
        experiment = await store.create_experiment(transition(_draft("c"), Status.RUNNING, now=NOW))
        visitors = [f"v{i}" for i in range(100)]
        recorded = {}
        for visitor in visitors:
            d = decide(experiment, visitor)
            (exposure,) = await store.record_exposures(
                [(experiment, d.variant_index)], visitor, now_ms=int(NOW * 1000)
            )
            recorded[visitor] = exposure.variant_index
        targeted = apply_patch(experiment, ExperimentPatch(condition={"plan": "pro"}))
        for visitor in [*visitors, "new-visitor"]:
            d = decide(targeted, visitor, {"plan": "free"})
            assert (d.reason, d.records) == (Reason.NOT_TARGETED, True)
            (exposure,) = await store.record_exposures(
                [(targeted, d.variant_index)], visitor, now_ms=int(NOW * 1000)
            )
            assert exposure.variant_index == recorded.get(visitor)
            assert not exposure.recorded_now
        totals = await store.totals(targeted)
        assert sum(t.n for t in totals) == 100

    StoreRunner(redis_server.url, key_prefix, cluster=redis_server.cluster)(work)
