"""What deciding in the browser saves: the SDK's local decision against a server round trip.

Serves the real app (embedded Redis, uvicorn with uvloop + httptools), opens the demo shop in
headless Chromium and times, in interleaved rounds inside the page:

- ``local``: ``abacus.bucketing.decide(definition, id)``, the FNV-1a v2 hash and bucket lookup;
- ``server``: ``POST /v1/assign`` for one new visitor, awaited one after another (what
  ``abacus.assign`` costs a page in server mode).

It prints the median time per decision of each, their ratio, and the Python hash's time per
bucket for comparison (``experiments.bucketing.hash_bucket``), all measured in this one run.

    python bench/bench_sdk.py [--rounds 5] [--local 200000] [--server 300]

Needs Debian's ``chromium`` and the ``playwright`` package (the test extras).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.bucketing import hash_bucket  # noqa: E402
from service.demo.casestudies import BUYAKILT  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402

LOCAL = """async ([n, round]) => {
    const defs = await abacus.definitions();
    const definition = defs["buyakilt-filters"];
    const start = performance.now();
    let filters = 0;
    for (let i = 0; i < n; i++) {
        if (abacus.bucketing.decide(definition, `r${round}-${i}`) === "filters") filters++;
    }
    return [(performance.now() - start) / n, filters / n];
}"""

SERVER = """async ([n, round]) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
        const r = await fetch("/v1/assign", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({
                visitor_id: `s${round}-${i}`, experiments: ["buyakilt-filters"],
            }),
        });
        await r.json();
    }
    return (performance.now() - start) / n;
}"""


def _python_us_per_bucket(n: int, round_: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        hash_bucket("buyakilt-filters", f"p{round_}-{i}", 2)
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--local", type=int, default=200_000, help="decisions per round")
    parser.add_argument("--server", type=int, default=300, help="round trips per round")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("Debian's chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env: dict[str, str | None] = {
            "ABACUS_DATA_DIR": str(Path(tmp) / "data"),
            "ABACUS_REDIS_URL": "",
            "ABACUS_ADMIN_KEY": None,
        }
        with LiveServer(env) as server:
            url = server.url
            httpx.post(url + "/v1/experiments", json=BUYAKILT.definition).raise_for_status()
            httpx.patch(
                url + f"/v1/experiments/{BUYAKILT.key}", json={"status": "running"}
            ).raise_for_status()
            local_us: list[float] = []
            server_us: list[float] = []
            python_us: list[float] = []
            shares: list[float] = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(url + "/demo/shop")
                page.wait_for_selector("body[data-variant]")
                page.evaluate(LOCAL, [10_000, -1])  # let the JIT warm up
                for r in range(args.rounds):
                    for name in ("local", "server") if r % 2 == 0 else ("server", "local"):
                        if name == "local":
                            ms, share = page.evaluate(LOCAL, [args.local, r])
                            local_us.append(ms * 1000)
                            shares.append(share)
                        else:
                            server_us.append(page.evaluate(SERVER, [args.server, r]) * 1000)
                    python_us.append(_python_us_per_bucket(args.local // 4, r))
                browser.close()
    local, remote, python = (statistics.median(x) for x in (local_us, server_us, python_us))
    print(f"{'decision':<34}{'µs each (median)':>18}")
    print(f"{'local: decide() in Chromium':<34}{local:>18.3f}")
    print(f"{'server: POST /v1/assign round trip':<34}{remote:>18.1f}")
    print(f"{'python: hash_bucket() (reference)':<34}{python:>18.3f}")
    print(f"share of 'filters' in the local decisions: {statistics.mean(shares):.4f}")
    print(f"ratio server/local: {remote / local:,.0f}x")
    print(f"ratio python/local: {python / local:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
