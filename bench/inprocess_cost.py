"""CPU per request of the hot routes, in this process and in redis-server, without HTTP.

Builds the app with ``create_app`` on a throwaway embedded Redis, runs its lifespan, starts the
experiments ``bench/bench_assign.py`` uses (a conversion and a mean metric on ``purchase``),
exposes ``--visitors`` visitors to ``track-one`` and then calls the ASGI app directly (64
requests or 4 batches at a time, on uvloop) with ``GET /v1/assign`` (a new visitor each),
``POST /v1/assign`` for three experiments, ``POST /v1/track`` and ``POST /v1/track/batch``, and
the bare FastAPI hello-world (``bench/hello_app.py``) the same way. For each it prints the CPU
time of this process (``time.process_time``) and of redis-server (``INFO cpu``) per request
and per event: what the app itself costs, the part a faster HTTP server cannot remove.
``--commands`` adds redis-server's own time per command, ``--profile FILE`` runs one more loop
of ``--mode`` under cProfile and keeps the stats there.

    python bench/inprocess_cost.py [--visitors 5000] [--requests 4000] [--batches 40]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import redis.asyncio as aioredis
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.embedded import EmbeddedRedis  # noqa: E402
from service.api.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

App = Callable[..., Awaitable[None]]
CONCURRENCY = 64
BATCH_CONCURRENCY = 4
"""Batches in flight at once, as the 4 connections of ``bench/bench_assign.py``."""
EXPERIMENT = {
    "key": "track-one",  # the others are this one under another key
    "variants": [{"key": "control", "weight": 0.5}, {"key": "variant", "weight": 0.5}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
    ],
}


async def call(app: App, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app: its status and body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))  # type: ignore[arg-type]

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def checked(app: App, method: str, path: str, body: object = None) -> bytes:
    status, answer = await call(app, method, path, b"" if body is None else orjson.dumps(body))
    if status != 200 and status != 201:
        raise RuntimeError(f"{method} {path}: {status} {answer[:300]!r}")
    return answer


async def in_flight(
    work: list[Callable[[], Awaitable[object]]], at_once: int = CONCURRENCY
) -> None:
    """Run ``work``, ``at_once`` at a time."""
    for start in range(0, len(work), at_once):
        await asyncio.gather(*(w() for w in work[start : start + at_once]))


def event(visitors: int) -> dict[str, object]:
    return {"visitor_id": f"pool-{random.randint(1, visitors)}", "event": "purchase", "value": 1.5}


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    client: aioredis.Redis, work: list[Callable[[], Awaitable[object]]], at_once: int
) -> tuple[float, float]:
    """CPU seconds of this process and of redis-server over ``work``."""
    await client.config_resetstat()
    redis_before, before = await redis_cpu(client), time.process_time()
    await in_flight(work, at_once)
    python, redis_after = time.process_time() - before, await redis_cpu(client)
    return python, redis_after - redis_before


async def command_stats(client: aioredis.Redis, count: int) -> None:
    """Redis's own account of the commands since the last reset, per event or request."""
    stats = await client.info("commandstats")
    for name, row in sorted(stats.items(), key=lambda item: -float(item[1]["usec"])):
        print(
            f"    {name.removeprefix('cmdstat_'):<14} {row['calls'] / count:7.2f} calls"
            f" {float(row['usec']) / count:7.1f} µs"
        )


def report(name: str, python: float, redis_seconds: float, count: int, unit: str) -> None:
    print(
        f"{name:<18} {count:>7,} {unit:<8} python {python / count * 1e6:8.1f} µs/{unit}"
        f"   redis-server {redis_seconds / count * 1e6:8.1f} µs/{unit}"
    )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "data") as redis:
        os.environ.pop("ABACUS_ADMIN_KEY", None)
        env = {
            **os.environ,
            "ABACUS_REDIS_URL": redis.url,
            "ABACUS_DATA_DIR": str(Path(tmp) / "app"),
            "ABACUS_NOTIFY_INTERVAL_SECONDS": "0",
            "ABACUS_BANDIT_INTERVAL_SECONDS": "0",
        }
        app = create_app(Settings.from_env(env))
        client = aioredis.Redis.from_url(redis.url)
        async with app.router.lifespan_context(app):
            for key in ("get-one", "post-a", "post-b", "post-c", "track-one"):
                await checked(app, "POST", "/v1/experiments", {**EXPERIMENT, "key": key})
                await checked(app, "PATCH", f"/v1/experiments/{key}", {"status": "running"})

            def expose(i: int) -> Callable[[], Awaitable[object]]:
                body = {"visitor_id": f"pool-{i}", "experiments": ["track-one"]}
                return lambda: checked(app, "POST", "/v1/assign", body)

            await in_flight([expose(i) for i in range(1, args.visitors + 1)])
            singles = [orjson.dumps(event(args.visitors)) for _ in range(args.requests)]
            batches = [
                orjson.dumps({"events": [event(args.visitors) for _ in range(args.batch_size)]})
                for _ in range(args.batches)
            ]

            def track(body: bytes) -> Callable[[], Awaitable[object]]:
                return lambda: checked_raw(app, "/v1/track", body)

            def batch(body: bytes) -> Callable[[], Awaitable[object]]:
                return lambda: checked_raw(app, "/v1/track/batch", body)

            def assign_one(i: int) -> Callable[[], Awaitable[object]]:
                path = f"/v1/assign?experiment=get-one&visitor_id=new-{i}"
                return lambda: checked(app, "GET", path)

            def assign_three(i: int) -> Callable[[], Awaitable[object]]:
                body = {"visitor_id": f"new-{i}", "experiments": ["post-a", "post-b", "post-c"]}
                return lambda: checked(app, "POST", "/v1/assign", body)

            await in_flight([assign_one(-i) for i in range(1, 257)])  # warm the caches
            python, redis_seconds = await measure(
                client, [assign_one(i) for i in range(args.requests)], CONCURRENCY
            )
            report("GET /v1/assign", python, redis_seconds, args.requests, "request")
            python, redis_seconds = await measure(
                client, [assign_three(i) for i in range(args.requests)], CONCURRENCY
            )
            report("POST /v1/assign x3", python, redis_seconds, args.requests, "request")
            await in_flight([track(b) for b in singles[:256]])  # warm the caches
            python, redis_seconds = await measure(client, [track(b) for b in singles], CONCURRENCY)
            report("POST /v1/track", python, redis_seconds, len(singles), "request")
            if args.commands:
                await command_stats(client, len(singles))
            python, redis_seconds = await measure(
                client, [batch(b) for b in batches], BATCH_CONCURRENCY
            )
            report(
                "POST /v1/track/batch",
                python,
                redis_seconds,
                len(batches) * args.batch_size,
                "event",
            )
            if args.commands:
                await command_stats(client, len(batches) * args.batch_size)
            if args.profile is not None:
                profiler = cProfile.Profile()
                work = {
                    "assign": [assign_one(args.requests + i) for i in range(args.requests)],
                    "track": [track(b) for b in singles],
                    "batch": [batch(b) for b in batches],
                }[args.mode]
                profiler.enable()
                await in_flight(work, CONCURRENCY if args.mode == "track" else BATCH_CONCURRENCY)
                profiler.disable()
                profiler.dump_stats(args.profile)
        await client.aclose()
        await hello(args.requests)


async def hello(requests: int) -> None:
    """The bare hello-world driven the same way: the baseline the app is held to."""
    from bench.hello_app import app

    work: list[Callable[[], Awaitable[object]]] = [
        lambda: checked(app, "GET", "/") for _ in range(requests)
    ]
    await in_flight(work[:256])
    before = time.process_time()
    await in_flight(work)
    python = time.process_time() - before
    per_request = python / requests * 1e6
    print(f"{'bare hello-world':<18} {requests:>7,} request  python {per_request:8.1f} µs/request")


async def checked_raw(app: App, path: str, body: bytes) -> None:
    status, answer = await call(app, "POST", path, body)
    if status != 200 or b"track-one" not in answer:
        raise RuntimeError(f"POST {path}: {status} {answer[:300]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--profile", type=Path, help="keep a cProfile of one more loop here")
    parser.add_argument(
        "--commands", action="store_true", help="also print redis-server's time per command"
    )
    parser.add_argument("--mode", choices=["assign", "track", "batch"], default="track")
    args = parser.parse_args()
    random.seed(12)
    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
