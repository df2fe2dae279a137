"""The real service in its own process: concurrency, a large split, restarts."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from scipy.stats import chisquare

from tests.conftest import (
    ADMIN_KEY,
    BOTH_REDIS,
    LiveServer,
    RedisTarget,
    delete_prefix,
    redis_target,
)

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
EXPERIMENT: dict[str, Any] = {
    "key": "checkout",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "one-page", "weight": 0.5}],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase"},
    ],
}


_prefixes = itertools.count()


@pytest.fixture(params=BOTH_REDIS)
def any_live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The live service on the embedded Redis, then on the cluster."""
    target: RedisTarget = redis_target(request, request.param)
    prefix = f"live{next(_prefixes)}"
    server = LiveServer(
        {**target.env(), "ABACUS_KEY_PREFIX": prefix, "ABACUS_ADMIN_KEY": ADMIN_KEY}
    ).start()
    yield server
    server.stop()
    delete_prefix(target, prefix)


def _start(server: LiveServer, definition: dict[str, Any]) -> None:
    r = httpx.post(server.url + "/v1/experiments", json=definition, headers=AUTH)
    assert r.status_code == 201, r.text
    r = httpx.patch(
        server.url + f"/v1/experiments/{definition['key']}",
        json={"status": "running"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text


def _results(server: LiveServer, key: str = "checkout") -> dict[str, Any]:
    r = httpx.get(server.url + f"/v1/experiments/{key}/results", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _gather(coros: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(c: Any) -> Any:
        async with gate:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


def test_500_simultaneous_assignments_of_one_visitor_record_one_exposure(
    any_live_server: LiveServer,
) -> None:
    live_server = any_live_server
    _start(live_server, EXPERIMENT)

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=500)
        async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=60) as c:
            calls = [
                c.get("/v1/assign", params={"experiment": "checkout", "visitor_id": "same"})
                for _ in range(500)
            ]
            responses = await _gather(calls, 500)
        assert {r.status_code for r in responses} == {200}, {r.text for r in responses}
        return [r.json()["variant"] for r in responses]

    variants = asyncio.run(main())
    assert len(set(variants)) == 1
    assert sum(_results(live_server)["srm"]["visitors"].values()) == 1


def test_2000_simultaneous_tracking_calls_add_up_exactly(any_live_server: LiveServer) -> None:
    live_server = any_live_server
    _start(live_server, EXPERIMENT)
    visitors = [f"buyer-{i}" for i in range(200)]

    def event(i: int) -> dict[str, Any]:
        cents = 100 + (i * 7919) % 10_000
        return {
            "visitor_id": visitors[i % len(visitors)],
            "event": "purchase",
            "value": cents / 100,
            "event_id": f"evt-{i}",
        }

    async def main() -> dict[str, str]:
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(live_server.url, connector=connector) as session:

            async def assign(v: str) -> str:
                params = {"experiment": "checkout", "visitor_id": v}
                async with session.get("/v1/assign", params=params) as r:
                    return str((await r.json())["variant"])

            async def track(body: dict[str, Any]) -> int:
                async with session.post("/v1/track", json=body) as r:
                    return r.status

            variants = await asyncio.gather(*(assign(v) for v in visitors))
            # 2,000 events at once, plus 1,000 retries of half of them (same event ids)
            bodies = [event(i) for i in range(2000)] + [event(i) for i in range(0, 2000, 2)]
            statuses = await asyncio.gather(*(track(b) for b in bodies))
            assert set(statuses) == {200}
            return dict(zip(visitors, variants, strict=True))

    variant_of = asyncio.run(main())
    expected: Counter[str] = Counter()
    for i in range(2000):
        expected[variant_of[visitors[i % len(visitors)]]] += 100 + (i * 7919) % 10_000
    results = _results(live_server)
    revenue = next(m for m in results["metrics"] if m["name"] == "revenue")
    for row in revenue["variants"]:
        assert round(row["total"] * 100) == expected[row["variant"]]
        assert abs(row["total"] * 100 - expected[row["variant"]]) < 1e-6
    conversion = next(m for m in results["metrics"] if m["name"] == "conversion")
    assert sum(r["total"] for r in conversion["variants"]) == 200


@pytest.mark.slow
def test_100k_visitors_split_by_the_weights(live_server: LiveServer) -> None:
    _start(
        live_server,
        {
            **EXPERIMENT,
            "key": "split",
            "variants": [
                {"key": "control", "weight": 0.5},
                {"key": "b", "weight": 0.25},
                {"key": "c", "weight": 0.25},
            ],
        },
    )

    async def main() -> Counter[str]:
        # aiohttp: a lighter client than httpx, so 100k requests stay well inside a minute
        counts: Counter[str] = Counter()
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(live_server.url, connector=connector) as session:

            async def worker(start: int) -> None:
                for i in range(start, 100_000, 32):
                    async with session.get(
                        "/v1/assign", params={"experiment": "split", "visitor_id": f"visitor-{i}"}
                    ) as r:
                        assert r.status == 200
                        counts[(await r.json())["variant"]] += 1

            await asyncio.gather(*(worker(w) for w in range(32)))
        return counts

    counts = asyncio.run(main())
    observed = [counts["control"], counts["b"], counts["c"]]
    assert sum(observed) == 100_000
    assert chisquare(observed, [50_000, 25_000, 25_000]).pvalue > 0.001
    assert _results(live_server, "split")["srm"]["visitors"] == dict(counts)


def test_restart_keeps_experiments_exposures_and_events(tmp_path: Path) -> None:
    env = {"ABACUS_DATA_DIR": str(tmp_path / "data"), "ABACUS_ADMIN_KEY": ADMIN_KEY}
    server = LiveServer({**env, "ABACUS_REDIS_URL": ""}, via_cli=True).start()
    try:
        _start(server, EXPERIMENT)
        variants = {}
        for i in range(50):
            r = httpx.get(
                server.url + "/v1/assign", params={"experiment": "checkout", "visitor_id": f"p{i}"}
            )
            variants[f"p{i}"] = r.json()["variant"]
            httpx.post(
                server.url + "/v1/track",
                json={"visitor_id": f"p{i}", "event": "purchase", "value": i + 0.25},
            )
        before = _results(server)
    finally:
        server.stop()
    assert (tmp_path / "data" / "abacus.aof").exists()
    server = LiveServer({**env, "ABACUS_REDIS_URL": ""}, via_cli=True).start()
    try:
        after = _results(server)
        assert after["metrics"] == before["metrics"]
        assert after["srm"] == before["srm"]
        for visitor, variant in variants.items():
            r = httpx.get(
                server.url + "/v1/assign", params={"experiment": "checkout", "visitor_id": visitor}
            )
            assert r.json()["variant"] == variant
        assert sum(_results(server)["srm"]["visitors"].values()) == 50
    finally:
        server.stop()
