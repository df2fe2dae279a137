"""Assignment throughput as a ratio to a hello-world endpoint on the same server.

Serves the real app (embedded Redis, uvicorn with uvloop + httptools, one worker) with one extra
route, ``GET /hello``, and drives both endpoints from a second process (wrk) on 127.0.0.1 with
a distinct visitor id per request, in interleaved rounds so machine noise hits both alike.
Prints requests/s, p50 and p99 per endpoint and the median ratio assign / hello.

    python bench/bench_assign.py [--rounds 5] [--seconds 5] [--connections 64]

Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import LiveServer  # noqa: E402

EXPERIMENT = {
    "key": "bench",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "variant", "weight": 0.5}],
    "metrics": [{"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True}],
}
WRK_SCRIPT = """
local counter = 0
local prefix = "v"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(threads))
end
function init(args) prefix = RUN .. "-" .. tid .. "-" end
request = function()
  counter = counter + 1
  return wrk.format("GET", PATH .. prefix .. counter)
end
"""


def create_bench_app():  # type: ignore[no-untyped-def]
    """The real app plus ``GET /hello``, the baseline with the same middleware and server."""
    from fastapi import Response

    from service.api.app import create_app

    app = create_app()

    @app.get("/hello")
    async def hello(visitor_id: str = "") -> Response:
        return Response(b'{"hello":"world"}', media_type="application/json")

    return app


def _wrk(
    url: str, path: str, seconds: int, connections: int, script_dir: Path, run: str
) -> dict[str, float]:
    """One wrk run; visitor ids are ``RUN-THREAD-COUNTER``, distinct across runs."""
    script = script_dir / f"{run}.lua"
    script.write_text(f'PATH = "{path}"\nRUN = "{run}"\n' + WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        env: dict[str, str | None] = {
            "ABACUS_DATA_DIR": str(Path(tmp) / "data"),
            "ABACUS_REDIS_URL": "",
            "ABACUS_ADMIN_KEY": None,
        }
        with LiveServer(env, app="bench.bench_assign:create_bench_app") as server:
            url = server.url
            httpx.post(url + "/v1/experiments", json=EXPERIMENT).raise_for_status()
            httpx.patch(
                url + "/v1/experiments/bench", json={"status": "running"}
            ).raise_for_status()
            paths = {
                "hello": "/hello?visitor_id=",
                "assign": "/v1/assign?experiment=bench&visitor_id=",
            }
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
            _wrk(url, paths["assign"], 1, args.connections, Path(tmp), "warmup")
            for r in range(args.rounds):
                for name in ("hello", "assign") if r % 2 == 0 else ("assign", "hello"):
                    runs[name].append(
                        _wrk(
                            url,
                            paths[name],
                            args.seconds,
                            args.connections,
                            Path(tmp),
                            f"{name}{r}",
                        )
                    )
            visitors = httpx.get(url + "/v1/experiments/bench/results", timeout=60)
    ratios = [a["rps"] / h["rps"] for a, h in zip(runs["assign"], runs["hello"], strict=True)]
    print(f"{'endpoint':<10}{'req/s (median)':>16}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, rs in runs.items():
        print(
            f"{name:<10}{statistics.median(r['rps'] for r in rs):>16.0f}"
            f"{statistics.median(r['p50_ms'] for r in rs):>10.2f}"
            f"{statistics.median(r['p99_ms'] for r in rs):>10.2f}"
            f"{sum(r['errors'] for r in rs):>10.0f}"
        )
    print(f"ratio assign/hello per round: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"median ratio assign/hello: {statistics.median(ratios):.2f}")
    if visitors.status_code == 200:
        print(f"exposures recorded: {sum(visitors.json()['srm']['visitors'].values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
