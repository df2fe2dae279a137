"""Coalesced script calls: same answers as one call each, atomic per call, failures reported."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import RedisError

from experiments.batching import ScriptBatcher
from experiments.store import connect
from tests.conftest import RedisTarget

# first writer wins, like the exposure script
LUA = """
local got = redis.call('HGET', KEYS[1], ARGV[1])
if got then return got end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""


def test_concurrent_calls_are_coalesced_and_answer_each_caller(
    redis_server: RedisTarget, key_prefix: str
) -> None:
    async def main() -> tuple[list[str], int]:
        client = connect(redis_server.url, cluster=redis_server.cluster)
        script = client.register_script(LUA)
        await client.script_load(LUA)  # a cold cache would add one resend per batch
        batcher = ScriptBatcher(client, script, max_batch=50)
        sent = 0
        original = client.pipeline

        def counting(*args: object, **kwargs: object) -> object:
            nonlocal sent
            sent += 1
            return original(*args, **kwargs)

        client.pipeline = counting
        key = f"{key_prefix}:h"
        # 300 callers, 100 distinct fields, three writers racing per field
        answers = await asyncio.gather(
            *(batcher.call([key], [f"f{i % 100}", f"w{i}"]) for i in range(300))
        )
        await client.aclose()
        return [str(a) for a in answers], sent

    answers, pipelines = asyncio.run(main())
    assert pipelines == 6  # 300 calls in batches of at most 50, not 300 round trips
    stored = redis_server.client().hgetall(f"{key_prefix}:h")
    # Batches run in parallel, so which racing writer wins is open; that every caller of a
    # field is told the one stored value, and that it came from one of its writers, is not.
    assert set(stored) == {f"f{i}" for i in range(100)}
    for i in range(300):
        assert answers[i] == stored[f"f{i % 100}"]
        assert stored[f"f{i % 100}"] in {f"w{i % 100}", f"w{i % 100 + 100}", f"w{i % 100 + 200}"}


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
