"""Every way Redis can fail reaches callers as StoreUnavailableError, and nothing waits long."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    MaxConnectionsError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from experiments.connection import connect, guard
from experiments.errors import StoreUnavailableError


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        TimeoutError("Timeout reading from 127.0.0.1:6379"),
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        MasterDownError("MASTERDOWN Link with MASTER is down"),
        MovedError("3999 127.0.0.1:6381"),
        AskError("3999 127.0.0.1:6381"),
        TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        SlotNotCoveredError('Slot "3999" is not covered by the cluster.'),
        RedisClusterException("Redis Cluster cannot be connected."),
        MaxConnectionsError("Too many connections"),
        ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
        RuntimeError(
            "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_redis_failure_becomes_store_unavailable(failure: Exception) -> None:
    async def failing() -> None:
        raise failure

    with pytest.raises(StoreUnavailableError, match="redis: "):
        asyncio.run(guard(failing()))


def test_other_errors_are_not_disguised() -> None:
    async def buggy() -> None:
        raise RuntimeError("a bug of ours")

    with pytest.raises(RuntimeError, match="a bug of ours"):
        asyncio.run(guard(buggy()))


def test_a_whole_call_is_bounded_even_if_it_would_wait_longer() -> None:
    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"no answer within 0\.2 s"):
            await guard(asyncio.sleep(30), timeout_seconds=0.2)
        return time.monotonic() - started

    assert asyncio.run(main()) < 15  # not the 30 s the call wanted


@pytest.mark.parametrize("cluster", [False, True])
def test_nothing_listening_fails_fast_on_one_server_and_on_a_cluster(cluster: bool) -> None:
    async def main() -> None:
        client = connect("redis://127.0.0.1:1/0", cluster=cluster, timeout_seconds=0.5)
        try:
            await guard(client.ping())
        finally:
            await client.aclose()

    with pytest.raises(StoreUnavailableError):
        asyncio.run(main())


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_seconds must be > 0, got 0"):
        connect("redis://127.0.0.1:1/0", timeout_seconds=0)


def test_a_torn_down_redis_connection_is_a_store_failure_and_other_bugs_are_not() -> None:
    import redis.asyncio.connection as redis_connection

    async def torn_down() -> None:
        # what redis-py raises when a connection another command tore down is written to
        exec("writer = None\nwriter.writelines([b''])", redis_connection.__dict__.copy())

    async def our_bug() -> None:
        writer = None
        writer.writelines([b""])  # type: ignore[attr-defined]

    async def main() -> None:
        with pytest.raises(StoreUnavailableError, match="connection closed"):
            await guard(torn_down())
        with pytest.raises(AttributeError):
            await guard(our_bug())

    asyncio.run(main())
