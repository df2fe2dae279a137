"""Assignment and tracking throughput as ratios to a bare FastAPI hello-world.

The baseline is ``bench/hello_app.py`` (``FastAPI()`` and one ``@app.get("/")`` returning a
dict) in its own uvicorn process; the real app runs in another with identical flags (uvloop,
httptools, no access log). Both share one embedded Redis started here. wrk drives every
endpoint from a second process on 127.0.0.1, in interleaved rounds so the machine's noise hits
all of them alike:

- ``GET /v1/assign`` with a distinct visitor id per request (every one a new exposure);
- ``POST /v1/assign`` for three experiments, distinct visitor ids;
- ``POST /v1/track`` for visitors exposed beforehand to one experiment (credited to it);
- ``POST /v1/track/batch`` with 1,000 such events per request from 4 connections;
- ``GET /v1/assign`` and the hello-world again with ``--workers 2``.

Prints, per endpoint, requests/s, p50 and p99 (medians over rounds) and the CPU time the
server's processes and redis-server spent per request answered (read from ``/proc`` and
``INFO cpu``: on a shared machine it moves much less than requests/s, and the server's figure
against the hello-world's is the ratio the app reaches once its core is the bottleneck), wrk's
own CPU per request and the cores the three kept busy together (two workers cannot scale past
what the two cores leave), every ratio the service is held to (median and range over rounds),
credited events counted from the responses, and exposures recorded in Redis against requests
answered.

    python bench/bench_assign.py [--rounds 5] [--seconds 8] [--connections 64]

Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis as redis_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.embedded import EmbeddedRedis  # noqa: E402
from tests.support.live_server import free_port  # noqa: E402

UVICORN_FLAGS = (
    *("--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools"),
    *("--no-access-log", "--log-level", "warning"),
)
POOL = 5_000
"""Visitors exposed to ``track-one`` before the tracking rounds; tracked events pick from them."""
BATCH = 1_000
BATCH_CONNECTIONS = 4


def _experiment(key: str) -> dict[str, object]:
    return {
        "key": key,
        "variants": [{"key": "control", "weight": 0.5}, {"key": "variant", "weight": 0.5}],
        "metrics": [
            {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
            {"name": "revenue", "kind": "mean", "event": "purchase"},
        ],
    }


EXPERIMENTS = ("get-one", "post-a", "post-b", "post-c", "track-one")

WRK_SCRIPT = """
local counter = 0
local prefix = ""
local threads = {}
local headers = {["Content-Type"] = "application/json"}
credited = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", tostring(#threads))
end

function init(args)
  prefix = RUN .. "-" .. tid .. "-"
  math.randomseed(tonumber(tid) * 7919)
end

local function pooled_event()
  return '{"visitor_id":"pool-' .. math.random(POOL) .. '","event":"purchase","value":1.5}'
end

request = function()
  counter = counter + 1
  if MODE == "get" then
    return wrk.format("GET", PATH .. prefix .. counter)
  elseif MODE == "assign3" then
    return wrk.format("POST", PATH, headers, '{"visitor_id":"' .. prefix .. counter ..
      '","experiments":["post-a","post-b","post-c"]}')
  elseif MODE == "track" then
    return wrk.format("POST", PATH, headers, pooled_event())
  end
  local events = {}
  for i = 1, BATCH do events[i] = pooled_event() end
  return wrk.format("POST", PATH, headers, '{"events":[' .. table.concat(events, ",") .. ']}')
end

if MODE == "track" or MODE == "batch" then
  response = function(status, headers, body)
    if status == 200 then
      local _, n = string.gsub(body, '"credited":%["track%-one"%]', "")
      credited = credited + n
    end
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("credited") end
  io.write("CREDITED " .. total .. "\\n")
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run against one endpoint."""

    rps: float
    p50_ms: float
    p99_ms: float
    answered: int
    seconds: float
    non_2xx: int
    credited: int
    server_cpu_us: float | None = None
    """CPU time of the server's processes (all its workers) per request answered."""
    redis_cpu_us: float | None = None
    """CPU time of redis-server per request answered."""
    wrk_cpu_us: float = 0.0
    """CPU time of wrk, the load generator on the same cores, per request answered."""

    def cores_busy(self) -> float | None:
        """Cores the server, redis-server and wrk kept busy together during the run."""
        if self.server_cpu_us is None or self.redis_cpu_us is None:
            return None
        return (self.server_cpu_us + self.redis_cpu_us + self.wrk_cpu_us) * self.rps / 1e6


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str
    mode: str
    path: str
    connections: int


class Server:
    """uvicorn serving ``target`` in its own process on a free loopback port."""

    def __init__(self, target: str, *, factory: bool, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "uvicorn", target, *UVICORN_FLAGS]
        command += ["--port", str(self.port), "--workers", str(workers)]
        if factory:
            command.append("--factory")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)

    def wait(self, path: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.url} did not answer {path} within {seconds:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serving(
    target: str, *, factory: bool, workers: int, env: dict[str, str], ready: str
) -> Iterator[Server]:
    server = Server(target, factory=factory, workers=workers, env=env)
    try:
        server.wait(ready)
        yield server
    finally:
        server.stop()


def wrk(url: str, scenario: Scenario, seconds: int, script_dir: Path, run: str) -> Run:
    """One wrk run; visitor ids are ``RUN-THREAD-COUNTER``, distinct across runs."""
    run = re.sub(r"[^A-Za-z0-9]", "", run)  # it names a file and prefixes visitor ids
    script = script_dir / f"{run}.lua"
    settings = f'MODE = "{scenario.mode}"\nPATH = "{scenario.path}"\nRUN = "{run}"\n'
    settings += f"POOL = {POOL}\nBATCH = {BATCH}\n"
    script.write_text(settings + WRK_SCRIPT)
    command = [
        "wrk",
        "-t2",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    def percentile(p: str) -> float:
        match = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        if match is None:
            raise RuntimeError(f"no {p}th percentile in wrk's output:\n{out}")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    return Run(
        rps=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
        answered=int(number(r"(\d+) requests in")),
        seconds=number(r"requests in ([\d.]+)s"),
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        credited=int(number(r"CREDITED (\d+)")),
        wrk_cpu_us=wrk_seconds / max(int(number(r"(\d+) requests in")), 1) * 1e6,
    )


async def _expose_pool(url: str) -> None:
    """Expose ``POOL`` visitors to ``track-one`` so tracked events are credited to it."""
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int) -> None:
            async with limit:
                body = {"visitor_id": f"pool-{i}", "experiments": ["track-one"]}
                (await client.post("/v1/assign", json=body)).raise_for_status()

        await asyncio.gather(*(one(i) for i in range(1, POOL + 1)))


def prepare(url: str) -> None:
    for key in EXPERIMENTS:
        httpx.post(url + "/v1/experiments", json=_experiment(key)).raise_for_status()
        patch = {"status": "running"}
        httpx.patch(url + f"/v1/experiments/{key}", json=patch).raise_for_status()
    asyncio.run(_expose_pool(url))


def exposures(url: str, key: str) -> int:
    results = httpx.get(url + f"/v1/experiments/{key}/results", timeout=60)
    results.raise_for_status()
    return int(sum(results.json()["srm"]["visitors"].values()))


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its children (uvicorn's workers), from
    ``/proc``; None where there is no ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for each in (pid, *map(int, children)):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total


def redis_cpu_seconds(url: str) -> float:
    info = redis_client.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measured(
    url: str, scenario: Scenario, seconds: int, tmp: Path, run: str, pid: int, redis_url: str
) -> Run:
    """:func:`wrk`, plus the CPU the server and redis-server spent per request answered: a
    figure the machine's noise moves much less than requests per second."""
    server_before, redis_before = cpu_seconds(pid), redis_cpu_seconds(redis_url)
    result = wrk(url, scenario, seconds, tmp, run)
    server_after, redis_after = cpu_seconds(pid), redis_cpu_seconds(redis_url)
    answered = max(result.answered, 1)
    server = (
        None
        if server_before is None or server_after is None
        else (server_after - server_before) / answered * 1e6
    )
    redis_us = (redis_after - redis_before) / answered * 1e6
    return dataclasses.replace(result, server_cpu_us=server, redis_cpu_us=redis_us)


def interleaved(
    scenarios: Sequence[Scenario],
    servers: dict[str, Server],
    rounds: int,
    seconds: int,
    tmp: Path,
    redis_url: str,
) -> dict[str, list[Run]]:
    """Every scenario once per round, the order reversed every other round."""
    runs: dict[str, list[Run]] = {s.name: [] for s in scenarios}
    for r in range(rounds):
        for scenario in scenarios if r % 2 == 0 else reversed(scenarios):
            server = servers[scenario.server]
            pid, name = server.process.pid, f"{scenario.name}{r}"
            run = measured(server.url, scenario, seconds, tmp, name, pid, redis_url)
            runs[scenario.name].append(run)
    return runs


def ratio_line(label: str, values: Sequence[float], floor: str) -> str:
    spread = f"{min(values):.2f}-{max(values):.2f}"
    return f"{label:<46}{statistics.median(values):>8.2f}   rounds {spread:<12} floor {floor}"


def paired(
    runs: dict[str, list[Run]], top: str, bottom: str, of: Callable[[Run], float]
) -> list[float]:
    return [of(a) / of(b) for a, b in zip(runs[top], runs[bottom], strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    c = args.connections
    one_worker = [
        Scenario("hello", "hello", "get", "/?visitor_id=", c),
        Scenario("assign GET", "app", "get", "/v1/assign?experiment=get-one&visitor_id=", c),
        Scenario("assign POST x3", "app", "assign3", "/v1/assign", c),
        Scenario("track", "app", "track", "/v1/track", c),
        Scenario("track/batch", "app", "batch", "/v1/track/batch", BATCH_CONNECTIONS),
    ]
    two_workers = [
        Scenario("hello, 2 workers", "hello2", "get", "/?visitor_id=", c),
        Scenario(
            "assign GET, 2 workers", "app2", "get", "/v1/assign?experiment=get-one&visitor_id=", c
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        redis = stack.enter_context(EmbeddedRedis(Path(tmp) / "data"))
        env = {**os.environ, "ABACUS_REDIS_URL": redis.url}
        env.pop("ABACUS_ADMIN_KEY", None)
        servers: dict[str, Server] = {}
        for name, target, factory, workers, ready in (
            ("hello", "bench.hello_app:app", False, 1, "/"),
            ("app", "service.api.app:create_app", True, 1, "/healthz"),
            ("hello2", "bench.hello_app:app", False, 2, "/"),
            ("app2", "service.api.app:create_app", True, 2, "/healthz"),
        ):
            server = serving(target, factory=factory, workers=workers, env=env, ready=ready)
            servers[name] = stack.enter_context(server)
        urls = {name: server.url for name, server in servers.items()}
        prepare(urls["app"])
        for scenario in (*one_worker, *two_workers):  # warm every path up once
            wrk(urls[scenario.server], scenario, 1, Path(tmp), f"warm-{scenario.name[:6]}")
        warm_get = exposures(urls["app"], "get-one")
        rounds, seconds = args.rounds, args.seconds
        runs = interleaved(one_worker, servers, rounds, seconds, Path(tmp), redis.url)
        runs |= interleaved(two_workers, servers, rounds, seconds, Path(tmp), redis.url)
        recorded = exposures(urls["app"], "get-one") - warm_get
    report(runs, recorded)
    return 0


def report(runs: dict[str, list[Run]], recorded_get: int) -> None:
    from importlib.metadata import version

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"server: uvicorn {version('uvicorn')} for both apps ({' '.join(UVICORN_FLAGS[2:7])}); "
        f"{os.cpu_count()} cores, load average {load} at the end"
    )
    print(
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}"
        f"{'server CPU µs/req':>20}{'redis µs/req':>14}{'wrk µs/req':>12}{'cores busy':>12}"
    )

    def cpu(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{statistics.median(known):.0f}" if known else "n/a"

    def busy(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{statistics.median(known):.2f}" if known else "n/a"

    for name, rs in runs.items():
        print(
            f"{name:<24}{statistics.median(r.rps for r in rs):>10.0f}"
            f"{statistics.median(r.p50_ms for r in rs):>10.2f}"
            f"{statistics.median(r.p99_ms for r in rs):>10.2f}"
            f"{sum(r.non_2xx for r in rs):>10d}"
            f"{cpu([r.server_cpu_us for r in rs]):>20}{cpu([r.redis_cpu_us for r in rs]):>14}"
            f"{cpu([r.wrk_cpu_us for r in rs]):>12}{busy([r.cores_busy() for r in rs]):>12}"
        )
    print()
    print("ratios against the bare FastAPI hello-world (same flags, its own process):")

    def rps(r: Run) -> float:
        return r.rps

    def p99(r: Run) -> float:
        return r.p99_ms

    print(ratio_line("GET /v1/assign req/s", paired(runs, "assign GET", "hello", rps), ">= 1.0"))
    print(ratio_line("GET /v1/assign p99", paired(runs, "assign GET", "hello", p99), "<= 1.2"))
    print(
        ratio_line(
            "POST /v1/assign x3 req/s", paired(runs, "assign POST x3", "hello", rps), ">= 0.7"
        )
    )
    print(ratio_line("POST /v1/track req/s", paired(runs, "track", "hello", rps), ">= 0.8"))
    two = paired(runs, "assign GET, 2 workers", "assign GET", rps)
    print(ratio_line("GET /v1/assign 2 workers / 1 worker", two, ">= 1.6"))
    hello_two = paired(runs, "hello, 2 workers", "hello", rps)
    print(ratio_line("hello-world 2 workers / 1 worker", hello_two, "(reference)"))
    p99_two = paired(runs, "assign GET, 2 workers", "hello, 2 workers", p99)
    print(ratio_line("GET /v1/assign p99, 2 workers vs hello 2 workers", p99_two, "<= 1.5"))
    batch = runs["track/batch"]
    per_second = [r.credited / r.seconds for r in batch]
    print()
    print(
        f"track/batch: {statistics.median(per_second):,.0f} credited events/s per worker "
        f"(rounds {min(per_second):,.0f}-{max(per_second):,.0f}; floor 20,000; batches of "
        f"{BATCH:,} from {BATCH_CONNECTIONS} connections)"
    )
    tracked = runs["track"]
    print(
        f"track: {sum(r.credited for r in tracked):,} of {sum(r.answered for r in tracked):,} "
        "answered events credited to one experiment"
    )
    answered = sum(
        r.answered - r.non_2xx
        for name in ("assign GET", "assign GET, 2 workers")
        for r in runs[name]
    )
    print(
        f"GET /v1/assign: {recorded_get:,} exposures recorded in Redis for {answered:,} "
        "requests answered (wrk does not count requests still in flight when a round ends, "
        "so recorded may exceed answered by at most the open connections per round)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
