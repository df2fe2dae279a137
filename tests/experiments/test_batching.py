"""Coalesced script calls: same answers as one call each, atomic per call, failures reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import RedisError

from experiments.batching import CallBatcher, ScriptBatcher, ScriptCall, run_pipelined
from experiments.connection import Client, LanedRedis
from experiments.lane import Command
from experiments.store import connect
from tests.conftest import RedisTarget
from tests.support.redis_cluster import RedisCluster

# first writer wins, like the exposure script
LUA = """
local got = redis.call('HGET', KEYS[1], ARGV[1])
if got then return got end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""


class RoundTrips:
    """Counts round trips: batches on one server's lane (or its client's pipelines), node
    pipelines on a cluster."""

    def __init__(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        if isinstance(client, aioredis.RedisCluster):
            original = ClusterNode.execute_pipeline

            async def on_node(node: ClusterNode, commands: list[PipelineCommand]) -> bool:
                self.sent += 1
                return await original(node, commands)

            monkeypatch.setattr(ClusterNode, "execute_pipeline", on_node)
        elif isinstance(client, LanedRedis) and client.lane is not None:
            lane = client.lane
            run = lane.run

            async def on_lane(commands: Sequence[Command]) -> list[Any]:
                self.sent += 1
                return await run(commands)

            monkeypatch.setattr(lane, "run", on_lane)
            send_now = lane.send_now

            def on_lane_now(commands: Sequence[Command]) -> Any:
                sent = send_now(commands)
                self.sent += sent is not None
                return sent

            monkeypatch.setattr(lane, "send_now", on_lane_now)
        else:
            pipeline = client.pipeline

            def counting(*args: Any, **kwargs: Any) -> Any:
                self.sent += 1
                return pipeline(*args, **kwargs)

            monkeypatch.setattr(client, "pipeline", counting)


def test_concurrent_calls_are_coalesced_and_answer_each_caller(
    redis_server: RedisTarget, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> tuple[list[str], int]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        await client.script_load(LUA)  # a cold cache would add one resend per batch
        batcher = ScriptBatcher(client, script, max_batch=50, send_at=1_000)
        trips = RoundTrips(client, monkeypatch)
        key = f"{key_prefix}:h"
        # 300 callers, 100 distinct fields, three writers racing per field
        answers = await asyncio.gather(
            *(batcher.call([key], [f"f{i % 100}", f"w{i}"]) for i in range(300))
        )
        await client.aclose()
        return [str(a) for a in answers], trips.sent

    answers, pipelines = asyncio.run(main())
    assert pipelines == 6  # 300 calls in batches of at most 50, not 300 round trips
    stored = redis_server.client().hgetall(f"{key_prefix}:h")
    # Batches run in parallel, so which racing writer wins is open; that every caller of a
    # field is told the one stored value, and that it came from one of its writers, is not.
    assert set(stored) == {f"f{i}" for i in range(100)}
    for i in range(300):
        assert answers[i] == stored[f"f{i % 100}"]
        assert stored[f"f{i % 100}"] in {f"w{i % 100}", f"w{i % 100 + 100}", f"w{i % 100 + 200}"}


def test_calls_are_sent_as_soon_as_enough_wait(
    redis_server: RedisTarget, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load one loop iteration starts many callers; their calls go out every
    ``send_at`` of them, each batch written before the next caller runs, not all at the end."""

    async def main() -> tuple[list[int], list[str]]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        await client.script_load(LUA)
        batcher = ScriptBatcher(client, script, send_at=8)
        await batcher.call([f"{key_prefix}:warm"], ["a", "b"])  # the connection is open
        trips = RoundTrips(client, monkeypatch)
        seen: list[int] = []

        async def caller(i: int) -> Any:
            seen.append(trips.sent)  # round trips already started when this caller runs
            return await batcher.call([f"{key_prefix}:n"], [f"f{i}", f"w{i}"])

        answers = await asyncio.gather(*(caller(i) for i in range(20)))
        await client.aclose()
        return seen, [str(a) for a in answers]

    seen, answers = asyncio.run(main())
    assert answers == [f"w{i}" for i in range(20)]
    if redis_server.cluster:  # node pipelines start in tasks: only the count is the same
        assert seen == [0] * 20
    else:
        assert seen == [0] * 8 + [1] * 8 + [2] * 4


def test_script_cache_loss_is_recovered_without_double_writes(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def main() -> list[str]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        await script(keys=[f"{key_prefix}:warm"], args=["a", "b"])
        await client.script_flush()
        batcher = ScriptBatcher(client, script)
        answers = await asyncio.gather(
            *(batcher.call([f"{key_prefix}:s"], [f"f{i}", f"v{i}"]) for i in range(20))
        )
        await client.aclose()
        return [str(a) for a in answers]

    assert asyncio.run(main()) == [f"v{i}" for i in range(20)]


def test_a_connection_failure_reaches_every_caller(key_prefix: str) -> None:
    async def main() -> list[object]:
        client = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
        batcher = ScriptBatcher(client, client.register_script(LUA))
        results = await asyncio.gather(
            *(batcher.call([f"{key_prefix}:x"], ["f", "v"]) for _ in range(5)),
            return_exceptions=True,
        )
        await client.aclose()
        return results

    results = asyncio.run(main())
    assert len(results) == 5
    assert all(isinstance(r, RedisError) for r in results)


@pytest.mark.parametrize("size", [1, 2])
def test_one_or_two_callers_are_answered(
    redis_server: RedisTarget, key_prefix: str, size: int
) -> None:
    async def main() -> list[str]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        batcher = ScriptBatcher(client, client.register_script(LUA))
        answers = await asyncio.gather(
            *(batcher.call([f"{key_prefix}:p"], [f"f{i}", "v"]) for i in range(size))
        )
        await client.aclose()
        return [str(a) for a in answers]

    assert asyncio.run(main()) == ["v"] * size


def test_calls_spread_over_every_master_are_one_pipeline_per_node(
    redis_server: RedisTarget, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster a batch splits by owning node; one server takes it in one pipeline."""
    keys = [f"{key_prefix}:{{k{i}}}" for i in range(60)]  # 60 hash tags: every master

    async def main() -> tuple[list[str], int, list[object]]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        await client.script_load(LUA)
        trips = RoundTrips(client, monkeypatch)
        batcher = ScriptBatcher(client, script, send_at=1_000)  # all in one tick's batch
        answers = await asyncio.gather(*(batcher.call([k], ["f", k]) for k in keys))
        direct = await run_pipelined(client, [(script, [k], ["f", "other"]) for k in keys])
        await client.aclose()
        return [str(a) for a in answers], trips.sent, direct

    answers, sent, direct = asyncio.run(main())
    assert answers == keys and direct == keys  # the first writer of each key won
    masters = len(redis_server.master_urls)
    assert sent == 2 * masters  # one per node for the batcher, one per node for run_pipelined
    with redis_server.client() as check:
        assert [check.hget(k, "f") for k in keys] == keys


def _node_ids(cluster: RedisCluster) -> dict[int, str]:
    with cluster.nodes[0].client() as client:
        lines = str(client.execute_command("CLUSTER", "NODES")).splitlines()
    return {int(f[1].split(":")[1].split("@")[0]): f[0] for f in (x.split() for x in lines)}


def test_moved_and_ask_replies_are_followed(redis_cluster: RedisCluster) -> None:
    """A slot migrating (ASK) and then moved (MOVED) under a client with an old slot table."""
    key = f"moving:{{{time.monotonic_ns()}}}"
    with redis_cluster.client() as sync:
        slot = int(sync.keyslot(key))
        source = int(sync.get_node_from_key(key).port)
    target = next(p for p in redis_cluster.master_ports() if p != source)
    ids = _node_ids(redis_cluster)

    def setslot(port: int, *args: str) -> None:
        with redis_cluster.node(port).client() as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, *args)

    async def batch(client: Client, script: Any, tag: str) -> list[str]:
        batcher = ScriptBatcher(client, script)
        calls = [batcher.call([key], [f"{tag}{i}", f"v{i}"]) for i in range(10)]
        return [str(a) for a in await asyncio.gather(*calls)]

    async def main() -> tuple[list[str], list[str]]:
        client = connect(redis_cluster.url, cluster=True)
        script = client.register_script(LUA)
        await client.script_load(LUA)
        await client.initialize()  # the slot table now says: source owns the slot
        setslot(target, "IMPORTING", ids[source])
        setslot(source, "MIGRATING", ids[target])
        asked = await batch(client, script, "a")  # the key is not on the source: ASK
        for port in (target, source):
            setslot(port, "NODE", ids[target])
        moved = await batch(client, script, "m")  # the source no longer owns it: MOVED
        await client.aclose()
        return asked, moved

    try:
        asked, moved = asyncio.run(main())
    finally:
        redis_cluster.wait_until_ok()
    assert asked == moved == [f"v{i}" for i in range(10)]
    with redis_cluster.node(target).client() as node:
        assert node.hlen(key) == 20
        node.delete(key)


def test_callers_of_several_calls_share_one_round_trip_and_keep_their_own_answers(
    redis_server: RedisTarget, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 callers of 3 calls each (over many slots) in one tick: one pipeline per node."""

    async def main() -> tuple[list[list[object]], int]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        failing = client.register_script("return redis.error_reply('ERR refused by the test')")
        await client.script_load(LUA)
        await client.script_load(failing.script)
        trips = RoundTrips(client, monkeypatch)
        batcher = CallBatcher(client, send_at=1_000)  # all in one tick's batch

        def calls(c: int) -> list[ScriptCall]:
            own: list[ScriptCall] = [
                (script, [f"{key_prefix}:{{c{c}-{j}}}"], ["f", f"c{c}-{j}"]) for j in range(3)
            ]
            if c == 7:
                own[1] = (failing, [f"{key_prefix}:{{c7-1}}"], [])
            return own

        answers = await asyncio.gather(*(batcher.run(calls(c)) for c in range(60)))
        await client.aclose()
        return answers, trips.sent

    answers, sent = asyncio.run(main())
    assert sent == len(redis_server.master_urls)  # 180 calls, one pipeline per master
    for c, answer in enumerate(answers):
        if c == 7:
            assert answer[0] == "c7-0" and answer[2] == "c7-2"
            assert isinstance(answer[1], RedisError) and "refused by the test" in str(answer[1])
        else:
            assert answer == [f"c{c}-{j}" for j in range(3)]
