"""Coalescing of concurrent Lua script calls into one pipelined round trip (per cluster node).

Under load many assignment requests are in flight at once, each wanting one script call. A
redis-py call costs about 110 µs of Python on its own (pool checkout, retry wrapper, one write
and one read per call); the same calls sent as one pipeline cost about 45 µs each, and
redis-server reads them in one go. :class:`ScriptBatcher` gathers the calls made during one
event-loop iteration and sends them together. Each script still runs atomically on its own;
batching only shares the network round trip. With one request at a time it adds nothing but a
loop iteration.

On a Redis Cluster each call runs on the master owning its keys' slot, and redis-py's cluster
pipeline refuses EVALSHA, so the calls are grouped by that node here and each group is one
pipeline on the node's own connection. The groups are sent in parallel and each caller is
answered as soon as its node answers: a hung node holds up only the calls it owns. A call a
node refuses without running it comes back and is dealt with in place:

- NOSCRIPT (the node lost its script cache, or is a freshly promoted replica): the script is
  loaded on that node and exactly the refused calls are resent;
- MOVED / ASK / TRYAGAIN (a slot is migrating or changed owner): the call is resent alone
  through the cluster client, which follows the redirect and refreshes its slot table.

Every other failure (connection lost, timeout, CLUSTERDOWN) is returned as it is, never resent
(the call may have run), and schedules one background refresh of the slot table so a failover
is picked up without any request waiting on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Client", "ScriptBatcher", "ScriptCall", "run_pipelined"]

Client: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"
"""The asyncio client the store runs on: one server or a cluster."""

Call = tuple[Sequence[str], Sequence[str | int]]
Settle = Callable[[int, Any], None]
"""Where the cluster path hands each call's result as its node answers: ``settle(i, result)``."""
ScriptCall = tuple[AsyncScript, Sequence[str], Sequence[str | int]]
"""One script run: the registered script, its KEYS and its ARGV."""

# MOVED is a subclass of ASK: both mean "not here, the call did not run".
_REDIRECTS = (AskError, TryAgainError)
_NODE_TROUBLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError)


class ScriptBatcher:
    """Runs calls of one registered script, pipelining those that arrive together."""

    def __init__(self, client: Client, script: AsyncScript, *, max_batch: int = 256) -> None:
        self.client = client
        self.script = script
        self.max_batch = max_batch
        self._pending: list[tuple[Call, asyncio.Future[Any]]] = []
        self._scheduled = False

    async def call(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(((keys, args), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush, loop)
        return await future

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_batch):
            loop.create_task(self._flush(pending[start : start + self.max_batch]))

    async def _flush(self, batch: list[tuple[Call, asyncio.Future[Any]]]) -> None:
        try:
            calls = [(self.script, keys, args) for (keys, args), _ in batch]
            if len(batch) == 1:
                results: list[Any] = [await self.script(keys=calls[0][1], args=calls[0][2])]
            elif isinstance(self.client, aioredis.RedisCluster):
                await _on_cluster(self.client, calls, _Answer(batch))
                return
            else:
                results = await run_pipelined(self.client, calls)
        except Exception as exc:  # every waiter learns the failure, typed by the caller
            results = [exc] * len(batch)
        _Answer(batch).all(results)


class _Answer:
    """Settles the futures of a batch, one call at a time or all at once."""

    def __init__(self, batch: Sequence[tuple[Call, asyncio.Future[Any]]]) -> None:
        self.futures = [future for _, future in batch]

    def __call__(self, index: int, result: Any) -> None:
        future = self.futures[index]
        if future.done():
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    def all(self, results: Sequence[Any]) -> None:
        for index, result in enumerate(results):
            self(index, result)


async def run_pipelined(client: Client, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``(script, keys, args)`` calls in one round trip; errors come back in place.

    A call refused with NOSCRIPT (the server lost its script cache: restart, SCRIPT FLUSH) did
    not run, so exactly those calls are resent once their scripts are loaded again; the others
    ran and are not repeated. Each call stays atomic on its own. On a cluster the calls are
    grouped by the node owning their slot, one pipeline per node (see the module docstring).
    """
    if isinstance(client, aioredis.RedisCluster):
        results: list[Any] = [None] * len(calls)

        def collect(index: int, result: Any) -> None:
            results[index] = result

        await _on_cluster(client, calls, collect)
        return results
    results = await _send(client, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        for script in _scripts_of(calls, missing):
            await client.script_load(script.script)
        resent = await _send(client, [calls[i] for i in missing])
        for i, result in zip(missing, resent, strict=True):
            results[i] = result
    return results


async def _send(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return list(await pipe.execute(raise_on_error=False))


def _scripts_of(calls: Sequence[ScriptCall], indexes: Sequence[int]) -> list[AsyncScript]:
    return list({id(calls[i][0]): calls[i][0] for i in indexes}.values())


# -- Redis Cluster ---------------------------------------------------------------------------


async def _on_cluster(
    client: aioredis.RedisCluster, calls: Sequence[ScriptCall], settle: Settle
) -> None:
    """Run ``calls`` grouped by owning node; ``settle(i, result)`` as each node answers."""
    await client.initialize()  # a no-op once the slot table is known
    groups: dict[str, tuple[ClusterNode, list[int]]] = {}
    for index, (_, keys, _) in enumerate(calls):
        try:
            node = client.get_node_from_key(keys[0])
        except Exception as exc:  # the slot has no owner right now
            settle(index, exc)
            _refresh_slots(client, None)
            continue
        assert node is not None  # only replica=True can answer None
        groups.setdefault(node.name, (node, []))[1].append(index)
    await asyncio.gather(
        *(_on_node(client, node, calls, indexes, settle) for node, indexes in groups.values())
    )


async def _on_node(
    client: aioredis.RedisCluster,
    node: ClusterNode,
    calls: Sequence[ScriptCall],
    indexes: list[int],
    settle: Settle,
) -> None:
    results = await _node_pipeline(node, [calls[i] for i in indexes])
    missing = [i for i, r in zip(indexes, results, strict=True) if isinstance(r, NoScriptError)]
    if missing:
        try:
            for script in _scripts_of(calls, missing):
                await node.execute_command("SCRIPT", "LOAD", script.script)
            resent = await _node_pipeline(node, [calls[i] for i in missing])
        except RedisError as exc:
            resent = [exc] * len(missing)
        by_index = dict(zip(indexes, results, strict=True))
        by_index.update(zip(missing, resent, strict=True))
        results = [by_index[i] for i in indexes]
    redirected: list[int] = []
    for index, result in zip(indexes, results, strict=True):
        if isinstance(result, _REDIRECTS):
            redirected.append(index)
            continue
        if isinstance(result, _NODE_TROUBLE):
            _refresh_slots(client, node.name)
        settle(index, result)
    for index in redirected:
        script, keys, args = calls[index]
        try:
            settle(index, await script(keys=keys, args=args, client=client))
        except Exception as exc:
            settle(index, exc)


async def _node_pipeline(node: ClusterNode, calls: Sequence[ScriptCall]) -> list[Any]:
    """One pipeline of EVALSHAs on ``node``'s connection; errors in place."""
    commands = [
        PipelineCommand(i, "EVALSHA", script.sha, len(keys), *keys, *args)
        for i, (script, keys, args) in enumerate(calls)
    ]
    try:
        await node.execute_pipeline(commands)
    except (RedisError, OSError) as exc:
        return [exc] * len(calls)
    return [command.result for command in commands]


_refreshing: dict[int, asyncio.Task[None]] = {}
"""The slot-table refresh running per cluster client (tasks are kept so none is collected)."""


def _refresh_slots(client: aioredis.RedisCluster, failed_node: str | None) -> None:
    """Re-read the slot table in the background, once at a time per client."""
    manager = client.nodes_manager
    if id(manager) in _refreshing:
        return

    async def refresh() -> None:
        try:
            await manager.initialize(last_failed_node_name=failed_node)
        except Exception:  # the next failure schedules another try
            pass
        finally:
            _refreshing.pop(id(manager), None)

    _refreshing[id(manager)] = asyncio.get_running_loop().create_task(refresh())
