"""Coalescing of concurrent Lua script calls into one pipelined round trip (per cluster node).

Under load many assignment requests are in flight at once, each wanting one script call. A
redis-py call costs about 110 µs of Python on its own (pool checkout, retry wrapper, one write
and one read per call); the same calls sent as one pipeline cost about 45 µs each, and
redis-server reads them in one go. :class:`ScriptBatcher` gathers the calls of one script
made during one event-loop iteration and sends them together; :class:`CallBatcher` does the
same for callers that each need several script calls (a tracking request: one per experiment
plus the activity log). Each script still runs atomically on its own;
batching only shares the network round trip. With one request at a time it adds nothing but a
loop iteration. On a single server the round trip is the client's
:class:`~experiments.lane.Lane` (a few µs of Python per call instead of redis-py's pipeline),
and a batcher given ``timeout_seconds`` answers every caller by then with one timer per round
trip.

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
from typing import Any, cast

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

from experiments.connection import REDIS_FAILURES, Client, LanedRedis, is_closed_transport

__all__ = ["CallBatcher", "ScriptBatcher", "ScriptCall", "run_pipelined"]

Settle = Callable[[int, Any], None]
"""Where the cluster path hands each call's result as its node answers: ``settle(i, result)``."""
ScriptCall = tuple[AsyncScript, Sequence[str], Sequence[str | int]]
"""One script run: the registered script, its KEYS and its ARGV."""

SEND_AT = 32
"""Calls gathered in one event-loop iteration are sent as soon as this many wait, not at its
end: under load the requests of one iteration would otherwise all reach Redis together, which
then works while the process waits, and the other way round; sent in parts, the two overlap."""

# MOVED is a subclass of ASK: both mean "not here, the call did not run".
_REDIRECTS = (AskError, TryAgainError)
_NODE_TROUBLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError)


class CallBatcher:
    """Runs groups of script calls, pipelining the groups that arrive in the same tick.

    ``run(calls)`` answers as :func:`run_pipelined` does (results in order, errors in place),
    but the calls of every caller in one event-loop iteration share the round trip: under load
    a hundred concurrent tracking requests make one pipeline (one per node on a cluster), not a
    hundred, and need one pooled connection, not a hundred. A caller's calls are never split
    across two pipelines; a pipeline holds about ``max_batch`` calls.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_batch: int = 256,
        send_at: int = SEND_AT,
        timeout_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.max_batch = max_batch
        self.send_at = send_at
        self.timeout_seconds = timeout_seconds
        self._pending: list[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]] = []
        self._pending_calls = 0
        self._scheduled = False

    def run(self, calls: Sequence[ScriptCall]) -> asyncio.Future[list[Any]]:
        """The results of ``calls``, to await (a future, not a coroutine: one frame less on
        the hot path)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not calls:
            future.set_result([])
            return future
        self._pending.append((calls, future))
        self._pending_calls += len(calls)
        if self._pending_calls >= self.send_at:
            self._send_pending(loop)  # now: Redis works on these while this tick goes on
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush, loop)
        return future

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        self._send_pending(loop)

    def _send_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        pending, self._pending = self._pending, []
        self._pending_calls = 0
        if not pending:
            return
        group: list[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]] = []
        size = 0
        for item in pending:
            if group and size + len(item[0]) > self.max_batch:
                self._start_group(loop, group)
                group, size = [], 0
            group.append(item)
            size += len(item[0])
        self._start_group(loop, group)

    def _start_group(
        self,
        loop: asyncio.AbstractEventLoop,
        group: list[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]],
    ) -> None:
        """Send ``group``; with a timeout, its callers are answered by then whatever happens.

        One timer per round trip, not per caller: past it, every caller still waiting gets a
        ``TimeoutError`` and the round trip is cancelled but not waited for (a cancellation can
        be absorbed inside a connection pool's wait, and the call then runs on to its own
        socket timeout). A call that timed out may have run; it is never resent.
        """
        lane = self.client.lane if isinstance(self.client, LanedRedis) else None
        sent = None
        if lane is not None:
            calls = [call for calls, _ in group for call in calls]
            sent = lane.send_now(
                [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]
            )
        if sent is not None:
            settle = _Settlement(group)
            sent.add_done_callback(lambda done: self._sent(loop, calls, settle, done))
            waiting: asyncio.Future[Any] = sent
        else:
            waiting = loop.create_task(self._flush(group))
        if self.timeout_seconds is None:
            return
        timer = loop.call_later(self.timeout_seconds, _expire, group, waiting, self.timeout_seconds)
        waiting.add_done_callback(lambda _: timer.cancel())

    def _sent(
        self,
        loop: asyncio.AbstractEventLoop,
        calls: Sequence[ScriptCall],
        settle: _Settlement,
        sent: asyncio.Future[list[Any]],
    ) -> None:
        """Hand out the replies of a batch the lane wrote at once; calls refused with
        NOSCRIPT did not run and are resent once their scripts are loaded."""
        if sent.cancelled():
            settle.rest(RedisTimeoutError(f"no answer within {self.timeout_seconds:g} s"))
            return
        failure = sent.exception()
        if failure is not None:
            settle.rest(cast(Exception, failure))
            return
        results = sent.result()
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        for index, result in enumerate(results):
            if not isinstance(result, NoScriptError):
                settle(index, result)
        if missing:
            loop.create_task(self._resend(calls, missing, settle))

    async def _resend(
        self, calls: Sequence[ScriptCall], missing: list[int], settle: _Settlement
    ) -> None:
        assert isinstance(self.client, aioredis.Redis)
        try:
            for index, result in zip(
                missing, await _resend_missing(self.client, calls, missing), strict=True
            ):
                settle(index, result)
        except Exception as exc:
            settle.rest(exc)

    async def _flush(
        self, group: list[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]]
    ) -> None:
        calls = [call for calls, _ in group for call in calls]
        settle = _Settlement(group)
        try:
            if len(calls) == 1 and not isinstance(self.client, LanedRedis):
                script, keys, args = calls[0]
                try:
                    settle(0, await script(keys=keys, args=args))
                except REDIS_FAILURES as exc:
                    settle(0, exc)
            elif isinstance(self.client, aioredis.RedisCluster):
                await _on_cluster(self.client, calls, settle)
            else:
                for index, result in enumerate(await run_pipelined(self.client, calls)):
                    settle(index, result)
        except Exception as exc:  # every waiter learns the failure, typed by the caller
            settle.rest(exc)


def _expire(
    group: Sequence[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]],
    waiting: asyncio.Future[Any],
    seconds: float,
) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(RedisTimeoutError(f"no answer within {seconds:g} s"))
    waiting.cancel()


class _Settlement:
    """Collects results call by call; answers each caller once all of its calls are in."""

    def __init__(self, group: Sequence[tuple[Sequence[ScriptCall], asyncio.Future[list[Any]]]]):
        self.futures = [future for _, future in group]
        self.results: list[list[Any]] = [[None] * len(calls) for calls, _ in group]
        self.missing = [len(calls) for calls, _ in group]
        self.owner = [(g, i) for g, (calls, _) in enumerate(group) for i in range(len(calls))]
        self.settled = [False] * len(self.owner)

    def __call__(self, index: int, result: Any) -> None:
        if self.settled[index]:
            return
        self.settled[index] = True
        caller, position = self.owner[index]
        self.results[caller][position] = result
        self.missing[caller] -= 1
        if self.missing[caller] == 0 and not self.futures[caller].done():
            self.futures[caller].set_result(self.results[caller])

    def rest(self, exc: Exception) -> None:
        for index, done in enumerate(self.settled):
            if not done:
                self(index, exc)


class ScriptBatcher:
    """Runs calls of one registered script, pipelining those that arrive together."""

    def __init__(
        self,
        client: Client,
        script: AsyncScript,
        *,
        max_batch: int = 256,
        send_at: int = SEND_AT,
        timeout_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.script = script
        self._calls = CallBatcher(
            client, max_batch=max_batch, send_at=send_at, timeout_seconds=timeout_seconds
        )

    async def call(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        (result,) = await self._calls.run([(self.script, keys, args)])
        if isinstance(result, Exception):
            raise result
        return result


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
        for i, result in zip(missing, await _resend_missing(client, calls, missing), strict=True):
            results[i] = result
    return results


async def _resend_missing(
    client: aioredis.Redis, calls: Sequence[ScriptCall], missing: Sequence[int]
) -> list[Any]:
    """The results of the calls at ``missing`` (refused with NOSCRIPT: they did not run), sent
    again once their scripts are loaded."""
    for script in _scripts_of(calls, missing):
        await client.script_load(script.script)
    return await _send(client, [calls[i] for i in missing])


async def _send(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    lane = client.lane if isinstance(client, LanedRedis) else None
    if lane is not None:
        return await lane.run(
            [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]
        )
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
    if not client.nodes_manager.slots_cache:
        # Only the first call waits for the slot table. Later, a table known to be stale is
        # still used: a call sent to the wrong node comes back MOVED and is resent through the
        # client, and a refresh runs in the background; waiting for it could mean waiting on
        # the very node that hangs.
        await client.initialize()
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
    except (RedisError, OSError, RuntimeError, AttributeError) as exc:
        # RuntimeError / AttributeError: a write on a transport the node closed (killed), or on
        # a redis-py connection torn down meanwhile (see is_closed_transport)
        if isinstance(exc, RuntimeError | AttributeError) and not is_closed_transport(exc):
            raise
        await _drop_connections(node)
        failure = exc if isinstance(exc, RedisError) else RedisConnectionError(str(exc))
        return [failure] * len(calls)
    results = [command.result for command in commands]
    if any(isinstance(r, RedisConnectionError | RedisTimeoutError) for r in results):
        await _drop_connections(node)
    return results


async def _drop_connections(node: ClusterNode) -> None:
    """Reconnect the node's connections before their next use: one failed, the rest may have."""
    node.update_active_connections_for_reconnect()
    await node.disconnect_free_connections()


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
