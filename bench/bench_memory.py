"""Memory per visitor and per event, key sizes, spread over a cluster's masters, delete latency.

Fills a throwaway Redis (the embedded redis-server by default, or ``--url`` for an empty one
you started, e.g. Debian's) through the store's own Lua scripts with ``--visitors`` exposed
visitors (UUID ids) of one experiment, and reads ``used_memory`` from ``INFO memory`` around
each step:

1. exposures with the logs off: the assignment state per exposed visitor;
2. one credited ``purchase`` per visitor, no event id, logs off: per credited event;
3. a second ``purchase`` per visitor with an event id, logs off: per remembered event id (the
   per-visitor state is updated in place, so the growth is the id's memory);
4. exposures of a second experiment with the logs on: minus (1), the raw-log entry per exposure;
5. one ``page_view`` per visitor, read by no experiment: the activity-log entry per event;
6. one credited ``purchase`` per visitor of the second experiment: minus (2) and (5), the
   raw-log entry per credited event.

Then it lists every key of the second experiment (SCAN: a benchmark, not a request) for the
largest key's element count and the encodings of the hashes, and places each key's slot on one
of three masters with the standard split of the 16,384 slots (0-5460, 5461-10922, 10923-16383)
to print keys, elements and bytes (``MEMORY USAGE``) per master. Last it deletes the second
experiment with the slow log recording every command and prints the delete's wall time, the
longest command and ``LATENCY LATEST``, then re-creates it and checks it starts at n = 0.

    python bench/bench_memory.py [--visitors 1000000] [--url redis://127.0.0.1:6390]
    python bench/bench_memory.py --code OTHER_CHECKOUT   # the same run on an older layout

``--code`` puts another checkout's ``experiments`` package first on the import path, so the
same script measures an older store (before/after figures from one script).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

MASTERS = ((0, 5460), (5461, 10922), (10923, 16383))
BATCH = 2_000
CONCURRENCY = 4
DEFINITION: dict[str, Any] = {
    "variants": [{"key": "control", "weight": 0.5}, {"key": "variant", "weight": 0.5}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
    ],
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--url", help="an empty, throwaway Redis (default: embedded)")
    parser.add_argument("--code", type=Path, help="a checkout whose store to measure")
    parser.add_argument(
        "--dimensions",
        type=int,
        default=0,
        help="give the experiments this many dimensions (each exposure carries a value of "
        "each, one of three) to measure what breakdowns cost per visitor",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on a throwaway 3-master + 3-replica cluster of Debian's redis-server",
    )
    return parser.parse_args()


async def _used(nodes: list[Any]) -> int:
    return sum([int((await node.info("memory"))["used_memory"]) for node in nodes])


async def _script_cpu(nodes: list[Any]) -> tuple[int, int]:
    """EVALSHA calls and the server's microseconds in them since the last CONFIG RESETSTAT."""
    calls = usec = 0
    for node in nodes:
        stats = (await node.info("commandstats")).get("cmdstat_evalsha", {})
        calls += int(stats.get("calls", 0))
        usec += int(stats.get("usec", 0))
    return calls, usec


async def _gather_batches(calls: Sequence[Any]) -> None:
    """Run coroutine factories CONCURRENCY at a time."""
    queue = list(calls)

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _attributes(experiment: Any, i: int) -> str:
    """A value of each of the experiment's dimensions (one of three) as attributes JSON."""
    names = [d.name for d in getattr(experiment, "dimensions", [])]
    if not names:
        return "{}"
    return "{" + ",".join(f'"{n}":"v{(i + k) % 3}"' for k, n in enumerate(names)) + "}"


async def _expose(store: Any, experiment: Any, visitors: list[str], now_ms: int) -> None:
    def batch(start: int) -> Any:
        chunk = visitors[start : start + BATCH]
        rows = [(v, i % 2, now_ms, _attributes(experiment, i)) for i, v in enumerate(chunk)]
        return lambda: store.record_exposure_batch(experiment, rows)

    await _gather_batches([batch(s) for s in range(0, len(visitors), BATCH)])


async def _track(
    store: Any, experiments: list[Any], visitors: list[str], event: str, ts_ms: int, ids: bool
) -> None:
    from experiments.store import TrackEvent

    def batch(start: int) -> Any:
        events = [
            TrackEvent(v, event, 12.5, "12.5", ts_ms, str(uuid.uuid4()) if ids else None)
            for v in visitors[start : start + BATCH]
        ]
        return lambda: store.track(experiments, events)

    await _gather_batches([batch(s) for s in range(0, len(visitors), BATCH)])


def _running(key: str, now_s: float, dimensions: int = 0) -> Any:
    from experiments.definitions import Experiment, Status, transition

    extra = {"dimensions": [f"d{k}" for k in range(dimensions)]} if dimensions else {}
    definition = {**DEFINITION, **extra, "key": key, "created_at": now_s - 3600}
    draft = Experiment.model_validate(definition)
    return transition(draft, Status.RUNNING, now=now_s - 3600)


async def _create(store: Any, experiment: Any) -> Any:
    created = await store.create_experiment(experiment)
    return experiment if created is None else created  # older stores return nothing


def _master(slot: int) -> int:
    return next(i for i, (low, high) in enumerate(MASTERS) if low <= slot <= high)


async def _node_keys(node: Any, pattern: str) -> list[tuple[str, str, int, str, int]]:
    """``(key, type, elements, encoding, bytes)`` of every key of ``node`` matching."""
    keys = [k async for k in node.scan_iter(match=pattern, count=5_000)]
    pipe = node.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
    kinds = await pipe.execute()
    pipe = node.pipeline(transaction=False)
    for k, kind in zip(keys, kinds, strict=True):
        size = {"hash": pipe.hlen, "set": pipe.scard, "stream": pipe.xlen, "zset": pipe.zcard}
        size.get(kind, pipe.strlen)(k)
        pipe.object("encoding", k)
        pipe.memory_usage(k, samples=0)
    raw = await pipe.execute()
    return list(zip(keys, kinds, raw[0::3], raw[1::3], [b or 0 for b in raw[2::3]], strict=True))


async def _key_report(nodes: list[Any], pattern: str, cluster: bool) -> None:
    from redis.crc import key_slot

    found = [await _node_keys(node, pattern) for node in nodes]
    rows = [row for node_rows in found for row in node_rows]
    largest = max(rows, key=lambda r: r[2])
    hashes = [r for r in rows if r[1] == "hash"]
    compact = sum(r[3] in {"listpack", "ziplist"} for r in hashes)
    print(f"keys of one experiment: {len(rows):,} ({len(hashes):,} hashes, {compact:,} compact)")
    print(f"largest key: {largest[2]:,} elements ({largest[1]}, {largest[0]})")
    if cluster:
        per = found  # each master's own keys
        how = "3 real masters"
    else:
        per = [[] for _ in MASTERS]
        for row in rows:
            per[_master(key_slot(row[0].encode()))].append(row)
        how = "3 masters by the standard slot split"
    for label, column in (("keys", -1), ("elements", 2), ("bytes", 4)):
        values = [len(p) if column < 0 else sum(int(r[column]) for r in p) for p in per]
        spread = max(values) / max(1, min(values))
        shown = " / ".join(f"{v:,}" for v in values)
        print(f"{label} per master ({how}): {shown}  spread {spread:.2f}x")


async def _delete_latency(nodes: list[Any], store: Any, experiment: Any) -> None:
    for node in nodes:
        await node.config_set("slowlog-log-slower-than", 0)
        await node.config_set("slowlog-max-len", 200_000)
        await node.config_set("latency-monitor-threshold", 1)
        await node.slowlog_reset()
        await node.execute_command("LATENCY", "RESET")
    began = time.perf_counter()
    await store.delete_experiment(experiment)
    seconds = time.perf_counter() - began
    log: list[Any] = []
    latest: list[Any] = []
    for node in nodes:
        log += await node.slowlog_get(200_000)
        latest += await node.execute_command("LATENCY", "LATEST")
        await node.config_set("slowlog-log-slower-than", 10_000)
    durations = sorted(e["duration"] for e in log)
    longest = max(log, key=lambda e: e["duration"])
    command = longest["command"]
    command = command.decode() if isinstance(command, bytes) else str(command)
    p99 = durations[int(0.99 * (len(durations) - 1))]
    print(f"delete: {seconds:.2f} s wall, {len(log):,} commands, p99 {p99:,} us")
    print(f"longest command while deleting: {longest['duration']:,} us ({command[:60]}...)")
    print(f"LATENCY LATEST (events over 1 ms): {latest or 'none'}")


async def main() -> None:
    args = _parse()
    sys.path.insert(0, str(args.code.resolve() if args.code else ROOT))
    from experiments.embedded import EmbeddedRedis
    from experiments.keys import Keyspace
    from experiments.store import Store, connect

    embedded = None
    cluster: Any = None
    url = args.url
    if args.cluster:
        # the test suite's launcher (imported by name: it is test code, not a dependency)
        launcher = importlib.import_module("tests.support.redis_cluster")
        cluster = launcher.RedisCluster(Path(tempfile.mkdtemp())).start()
        url = cluster.url
    elif url is None:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp()), tcp=True, persist=False).start()
        url = embedded.url
    try:  # bulk pipelines on a loaded machine: far longer than the service's reply timeout
        client = connect(url, cluster=args.cluster, timeout_seconds=120)
    except TypeError:  # an older store's connect has no timeout
        client = connect(url, cluster=args.cluster)
    nodes: list[Any]
    if cluster is not None:
        from redis.asyncio import Redis

        ports = cluster.master_ports()
        nodes = [Redis(port=p, decode_responses=True) for p in ports]
    else:
        nodes = [client]
    try:
        info = await nodes[0].info("server")
        print(f"redis {info['redis_version']}, {args.visitors:,} visitors (UUID ids)")
        n = args.visitors
        visitors = [str(uuid.uuid4()) for _ in range(n)]
        now_ms = int(time.time() * 1000)
        quiet = Store(client, Keyspace("mem"), log_max_length=0)
        logged = Store(client, Keyspace("mem"), log_max_length=1_000_000)
        a = await _create(quiet, _running("quiet", now_ms / 1000, args.dimensions))
        b = await _create(logged, _running("logged", now_ms / 1000, args.dimensions))

        async def step(label: str, work: Any) -> float:
            for node in nodes:
                await node.config_resetstat()
            before = await _used(nodes)
            began = time.perf_counter()
            await work
            grown: float = (await _used(nodes) - before) / n
            calls, usec = await _script_cpu(nodes)
            print(
                f"{label}: {grown:6.1f} B each  ({time.perf_counter() - began:5.1f} s; "
                f"redis {usec / max(1, calls):.1f} us per script call)"
            )
            return grown

        state = await step(
            "1 assignment state per exposed visitor", _expose(quiet, a, visitors, now_ms)
        )
        credit = await step(
            "2 credited event (per-visitor state, no id)",
            _track(quiet, [a], visitors, "purchase", now_ms + 1000, ids=False),
        )
        await step(
            "3 remembered event id",
            _track(quiet, [a], visitors, "purchase", now_ms + 2000, ids=True),
        )
        exposed_logged = await step(
            "4 exposure with the raw log", _expose(logged, b, visitors, now_ms)
        )
        activity = await step(
            "5 activity-log entry (event no experiment reads)",
            _track(logged, [b], visitors, "page_view", now_ms + 1000, ids=False),
        )
        event_logged = await step(
            "6 credited event with both logs",
            _track(logged, [b], visitors, "purchase", now_ms + 1000, ids=False),
        )
        print(f"=> raw-log entry per exposure: {exposed_logged - state:.1f} B")
        print(f"=> raw-log entry per credited event: {event_logged - credit - activity:.1f} B")
        print(f"=> activity-log entry per event: {activity:.1f} B")
        await _key_report(nodes, "mem:*logged*", cluster is not None)
        await _delete_latency(nodes, logged, b)
        again = await _create(logged, _running("logged", time.time(), args.dimensions))
        totals = await logged.totals(again)
        print(f"re-created experiment: n = {[t.n for t in totals]}")
    finally:
        await client.aclose()
        for node in nodes[1 if cluster is None else 0 :]:
            await node.aclose()
        if embedded is not None:
            embedded.stop()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
