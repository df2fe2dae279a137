"""CPU per request of the app's hot routes and of the bare hello-world, without HTTP.

Drives the ASGI apps directly (a scope, a ``receive`` giving the body, a ``send`` keeping the
answer), 64 requests at a time so the app coalesces its Redis calls as under load, on uvloop,
against an embedded Redis. Prints this process's CPU per request (``time.process_time``) and
redis-server's (``INFO cpu``). Without a server in between, the figure is what the app itself
costs per request: the part a faster HTTP server cannot remove. ``--profile`` adds a cProfile
of the app's loop, sorted by own time (cProfile inflates small functions; read it for shape).

    python bench/profile_inprocess.py [--requests 20000] [--route get|post3|hello] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.embedded import EmbeddedRedis  # noqa: E402

CONCURRENT = 64
Message = dict[str, Any]
App = Callable[..., Any]


def _scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]
    if method == "POST":
        headers.append((b"content-type", b"application/json"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one(app: App, scope: dict[str, Any], body: bytes) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{scope['method']} {scope['path']} answered {sent}")


async def _drive(
    app: App, request: Callable[[int], tuple[dict[str, Any], bytes]], count: int
) -> float:
    """CPU µs per request of this process over ``count`` requests."""
    await asyncio.gather(*(_one(app, *request(-1 - i)) for i in range(CONCURRENT)))  # warm
    started = time.process_time()
    for first in range(0, count, CONCURRENT):
        await asyncio.gather(*(_one(app, *request(first + i)) for i in range(CONCURRENT)))
    return (time.process_time() - started) / count * 1e6


async def _hello(count: int) -> None:
    from bench.hello_app import app

    cpu = await _drive(app, lambda i: (_scope("GET", "/"), b""), count)
    print(f"bare FastAPI hello-world: {cpu:.0f} µs CPU per request")


async def _app(route: str, count: int, profile: bool) -> None:
    from service.api.app import create_app
    from service.settings import Settings

    app = create_app(Settings.from_env())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            for key in ("get-one", "post-a", "post-b", "post-c"):
                variants = [{"key": "control", "weight": 0.5}, {"key": "variant", "weight": 0.5}]
                metric = {"name": "conversion", "kind": "conversion", "event": "purchase"}
                spec = {"key": key, "variants": variants, "metrics": [{**metric, "primary": True}]}
                (await http.post("/v1/experiments", json=spec)).raise_for_status()
                started = await http.patch(f"/v1/experiments/{key}", json={"status": "running"})
                started.raise_for_status()
        run = os.urandom(4).hex()
        numbers = itertools.count()
        if route == "get":

            def request(i: int) -> tuple[dict[str, Any], bytes]:
                query = f"experiment=get-one&visitor_id={run}-{i}".encode()
                return _scope("GET", "/v1/assign", query), b""
        else:

            def request(i: int) -> tuple[dict[str, Any], bytes]:
                body = b'{"visitor_id":"%s-%d","experiments":["post-a","post-b","post-c"]}'
                return _scope("POST", "/v1/assign"), body % (run.encode(), next(numbers))

        client = app.state.store.client

        async def redis_cpu() -> float:
            info = await client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        before = await redis_cpu()
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        cpu = await _drive(app, request, count)
        if profiler is not None:
            profiler.disable()
        redis_us = (await redis_cpu() - before) / count * 1e6
    label = "GET /v1/assign" if route == "get" else "POST /v1/assign x3"
    print(f"{label}: {cpu:.0f} µs CPU per request in the app, {redis_us:.0f} µs in redis-server")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--route", choices=("get", "post3", "hello"), default="get")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.route == "hello":
        uvloop.run(_hello(args.requests))
        return 0
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "data") as redis:
        os.environ.update(
            ABACUS_REDIS_URL=redis.url,
            ABACUS_NOTIFY_INTERVAL_SECONDS="0",
            ABACUS_BANDIT_INTERVAL_SECONDS="0",
        )
        os.environ.pop("ABACUS_ADMIN_KEY", None)
        uvloop.run(_app(args.route, args.requests, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
