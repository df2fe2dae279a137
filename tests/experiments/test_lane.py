"""The lane: the single server's pipelined connection for batched script calls.

Against real redis-servers: the embedded one (unix socket), and Debian's ``redis-server`` for
TCP with a password and a database number, stopped (SIGSTOP) and killed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from experiments import lane as lane_module
from experiments.connection import LanedRedis, connect
from experiments.embedded import EmbeddedRedis
from experiments.lane import Command, Lane
from tests.support.live_server import free_port

COUNT = "return redis.call('INCR', KEYS[1])"
FAIL = "return redis.error_reply('WRONG this call fails')"


def _lane_of(client: object) -> Lane:
    assert isinstance(client, LanedRedis) and client.lane is not None
    return client.lane


def test_batches_from_many_callers_get_their_own_replies_in_order(
    embedded_redis: EmbeddedRedis,
) -> None:
    key_prefix = f"lane-{uuid.uuid4().hex}"  # the embedded server only: a cluster has no lane

    async def main() -> list[list[object]]:
        client = connect(embedded_redis.url)
        lane = _lane_of(client)
        count = await client.script_load(COUNT)
        fail = await client.script_load(FAIL)
        try:
            # 200 concurrent batches of 1 to 5 calls, each counting its own key, some failing
            async def batch(i: int) -> list[object]:
                size = 1 + i % 5
                commands: list[Command] = [
                    ("EVALSHA", count, 1, f"{key_prefix}:{i}") for _ in range(size)
                ]
                if i % 7 == 0:
                    commands.insert(1, ("EVALSHA", fail, 0))
                if i % 11 == 0:
                    commands.append(("EVALSHA", "0" * 40, 0))  # a script Redis never saw
                return await lane.run(commands)

            return await asyncio.gather(*(batch(i) for i in range(200)))
        finally:
            await client.aclose()

    replies = asyncio.run(main())
    for i, got in enumerate(replies):
        size = 1 + i % 5
        counted = [r for r in got if isinstance(r, int)]
        assert counted == list(range(1, size + 1)), (i, got)  # this batch's key, in order
        errors = [r for r in got if isinstance(r, Exception)]
        assert len(errors) == (i % 7 == 0) + (i % 11 == 0)
        if i % 7 == 0:
            assert isinstance(got[1], ResponseError) and "this call fails" in str(got[1])
        if i % 11 == 0:
            assert isinstance(got[-1], NoScriptError)


@contextmanager
def debian_redis(*args: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=_password(args)).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait()


def _password(args: tuple[str, ...]) -> str | None:
    return args[args.index("--requirepass") + 1] if "--requirepass" in args else None


def test_authenticates_and_selects_the_database_of_the_url() -> None:
    with debian_redis("--requirepass", "s3cret-pass") as (port, _):

        async def main() -> tuple[object, object]:
            client = connect(f"redis://:s3cret-pass@127.0.0.1:{port}/3")
            sha = await client.script_load(COUNT)
            try:
                good = await _lane_of(client).run([("EVALSHA", sha, 1, "counted")])
            finally:
                await client.aclose()
            wrong = connect(f"redis://:not-it@127.0.0.1:{port}/3")
            try:
                await _lane_of(wrong).run([("EVALSHA", sha, 1, "counted")])
            except AuthenticationError as exc:
                refused: object = exc
            else:
                refused = None
            finally:
                await wrong.aclose()
            return good, refused

        good, refused = asyncio.run(main())
        assert good == [1]
        assert isinstance(refused, AuthenticationError)
        direct = redis.Redis(port=port, password="s3cret-pass", db=3)
        assert direct.get("counted") == b"1"  # written in database 3, as the URL says
        assert redis.Redis(port=port, password="s3cret-pass", db=0).get("counted") is None


def test_a_stalled_server_times_out_and_the_lane_recovers_on_its_own() -> None:
    with debian_redis() as (port, process):

        async def main() -> tuple[list[object], list[object]]:
            client = connect(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5)
            lane = _lane_of(client)
            sha = await client.script_load(COUNT)
            try:
                assert await lane.run([("EVALSHA", sha, 1, "k")]) == [1]
                os.kill(process.pid, signal.SIGSTOP)
                try:
                    # two batches in flight on the stalled connection: neither waits past its
                    # timeout, the first times out and the second loses its connection
                    stalled = await asyncio.gather(
                        lane.run([("EVALSHA", sha, 1, "k")]),
                        lane.run([("EVALSHA", sha, 1, "k")]),
                        return_exceptions=True,
                    )
                finally:
                    os.kill(process.pid, signal.SIGCONT)
                recovered = await lane.run([("EVALSHA", sha, 1, "k")])
            finally:
                await client.aclose()
            return list(stalled), recovered

        stalled, recovered = asyncio.run(main())
        assert isinstance(stalled[0], RedisTimeoutError)
        assert isinstance(stalled[1], RedisTimeoutError | RedisConnectionError)
        # the stalled calls may have run once Redis resumed; none was sent twice
        assert recovered[0] in {2, 3, 4}
        assert int(redis.Redis(port=port).get("k") or 0) == recovered[0]


def test_a_killed_server_fails_the_waiting_batch_and_a_new_one_reconnects() -> None:
    with debian_redis() as (port, process):

        async def main() -> tuple[object, object]:
            client = connect(f"redis://127.0.0.1:{port}/0", timeout_seconds=5)
            lane = _lane_of(client)
            sha = await client.script_load(COUNT)
            try:
                await lane.run([("EVALSHA", sha, 1, "k")])
                os.kill(process.pid, signal.SIGSTOP)
                pending = asyncio.ensure_future(lane.run([("EVALSHA", sha, 1, "k")]))
                await asyncio.sleep(0.2)
                process.kill()  # the kernel closes its sockets: the lane sees the end at once
                lost = await asyncio.gather(pending, return_exceptions=True)
                try:
                    await lane.run([("EVALSHA", sha, 1, "k")])
                except RedisConnectionError as exc:
                    refused: object = exc
                else:
                    refused = None
            finally:
                await client.aclose()
            return lost[0], refused

        lost, refused = asyncio.run(main())
        assert isinstance(lost, RedisConnectionError)
        assert isinstance(refused, RedisConnectionError)  # nothing listens: refused, not hung


def test_after_a_quiet_spell_a_ping_goes_first_and_replies_stay_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lane_module, "IDLE_CHECK_SECONDS", 0.0)  # every batch counts as late
    with debian_redis() as (port, _):

        async def main() -> list[list[object]]:
            client = connect(f"redis://127.0.0.1:{port}/0")
            lane = _lane_of(client)
            sha = await client.script_load(COUNT)
            try:
                return [await lane.run([("EVALSHA", sha, 1, "k")] * 2) for _ in range(3)]
            finally:
                await client.aclose()

        direct = redis.Redis(port=port)
        pings_before = direct.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
        replies = asyncio.run(main())
        pings = direct.info("commandstats")["cmdstat_ping"]["calls"] - pings_before
        assert replies == [[1, 2], [3, 4], [5, 6]]  # no PING reply handed to a batch
        assert pings >= 3  # one before each batch (the test's own ping() is counted too)
