"""Where the microseconds of one ``GET /v1/assign`` go, layer by layer.

Serves the app in one uvicorn worker (the flags of ``bench/bench_assign.py``) on a throwaway
embedded Redis, drives ``GET /v1/assign`` with wrk from a second process and samples the
server with py-spy meanwhile. Each sample is charged to the innermost frame that belongs to a
known layer (the server, the middleware, routing, FastAPI and pydantic, our own code, hashing,
redis-py); the server's CPU time over the run, divided by the requests answered and split by
those shares, gives microseconds per request per layer. redis-server's own CPU time (the Lua
script) is read from ``/proc`` over the same run.

    python bench/profile_assign.py [--seconds 10] [--mode get|assign3|track|batch]

Each mode requests its own route (``--path`` overrides it); a run with answers other than 2xx
is refused, since it would profile error handling instead.

Needs ``wrk`` and ``py-spy`` (``pip install py-spy``), and permission to attach to a child
process (``ptrace``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_assign import BATCH_CONNECTIONS, Run, Scenario, prepare, serving, wrk  # noqa: E402
from bench.bench_assign import cpu_seconds as process_cpu_seconds  # noqa: E402
from experiments.embedded import EmbeddedRedis  # noqa: E402

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hashing", ("(experiments/bucketing.py", "(fnv_hash_fast", "(fnvhash")),
    ("redis-py", ("(redis/", "(hiredis")),
    ("the lane (ours: writes and parses Redis's replies)", ("(experiments/lane.py",)),
    ("the fast front (ours)", ("(service/api/fast.py",)),
    (
        "middleware (Guard, CORS, body limits, errors)",
        (
            *("(service/api/middleware.py", "BodyLimit.", "(starlette/middleware/"),
            *("(fastapi/middleware/", "(fastapi/telemetry/", "(fastapi/_body_limit"),
        ),
    ),
    ("decide, store and keys (ours)", ("(experiments/",)),
    ("route code (ours)", ("(service/",)),
    ("pydantic", ("(pydantic/", "(pydantic_core")),
    ("FastAPI request machinery", ("(fastapi/",)),
    ("Starlette routing and responses", ("(starlette/",)),
    ("server: uvicorn, httptools, event loop", ("(uvicorn/", "(asyncio/", "(uvloop", "(httptools")),
)
"""Layers in the order a frame is matched (the first pattern found in the frame wins)."""


def layer_of(stack: str) -> str:
    """The layer of the innermost frame of a collapsed py-spy stack that belongs to one."""
    for frame in reversed(stack.split(";")):
        for name, patterns in LAYERS:
            if any(p in frame for p in patterns):
                return name
    return "other (interpreter, stdlib)"


PATHS = {
    "get": "/v1/assign?experiment=get-one&visitor_id=",
    "assign3": "/v1/assign",
    "track": "/v1/track",
    "batch": "/v1/track/batch",
}
"""The route each mode requests, as in ``bench/bench_assign.py``."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its children) so far."""
    seconds = process_cpu_seconds(pid)
    if seconds is None:
        raise RuntimeError("the CPU time of a process is read from /proc, which is missing here")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, help="default: 4 for batch, else 64")
    parser.add_argument("--path", help="the request's path (default: the mode's route)")
    parser.add_argument(
        "--mode", default="get", choices=["get", "assign3", "track", "batch"], help="the request"
    )
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    args = parser.parse_args()
    path = args.path or PATHS[args.mode]
    connections = args.connections or (BATCH_CONNECTIONS if args.mode == "batch" else 64)
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "data") as redis:
        env = {**os.environ, "ABACUS_REDIS_URL": redis.url}
        env.pop("ABACUS_ADMIN_KEY", None)
        target = "service.api.app:create_app"
        with serving(target, factory=True, workers=1, env=env, ready="/healthz") as server:
            prepare(server.url)
            scenario = Scenario("profiled", "app", args.mode, path, connections)
            wrk(server.url, scenario, 2, Path(tmp), "warm")
            raw = Path(tmp) / "profile.txt"
            record = ["record", "--pid", str(server.process.pid), "--format", "raw"]
            spy = subprocess.Popen(
                ["py-spy", *record, "--rate", "250", "--nonblocking", "--output", str(raw)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
            redis_pid = redis.pid
            if redis_pid is None:
                raise RuntimeError("the embedded redis-server is not running")
            before = cpu_seconds(server.process.pid), cpu_seconds(redis_pid)
            result: list[Run] = []
            load = threading.Thread(
                target=lambda: result.append(
                    wrk(server.url, scenario, args.seconds, Path(tmp), "profiled")
                )
            )
            load.start()
            load.join()
            after = cpu_seconds(server.process.pid), cpu_seconds(redis_pid)
            spy.send_signal(2)
            spy.wait(timeout=30)
        if args.raw is not None:
            shutil.copy(raw, args.raw)
        samples: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, number = line.rpartition(" ")
            if number.isdigit():
                samples[layer_of(stack)] += int(number)
    run = result[0]
    answered = run.answered
    total = sum(samples.values())
    if not answered or not total:
        print("no requests answered or no samples taken", file=sys.stderr)
        return 1
    if run.non_2xx:
        refused = f"{run.non_2xx:,} of {answered:,} answers were not 2xx: check --path"
        print(refused, file=sys.stderr)
        return 1
    server_us = (after[0] - before[0]) / answered * 1e6
    redis_us = (after[1] - before[1]) / answered * 1e6
    print(f"{answered:,} requests, {run.rps:,.0f} req/s, {total:,} samples")
    print(f"{'layer':<44}{'share':>8}{'µs/request':>12}")
    for name, count in samples.most_common():
        print(f"{name:<44}{count / total:>8.1%}{count / total * server_us:>12.1f}")
    print(f"{'server process, all layers':<44}{'':>8}{server_us:>12.1f}")
    print(f"{'redis-server (Lua scripts, its own process)':<44}{'':>8}{redis_us:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
