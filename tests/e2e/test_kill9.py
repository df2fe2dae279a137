"""Durability: the service and its Redis killed with SIGKILL mid-load lose no acknowledged event.

``abacus serve`` runs on a data directory of its own; a few thousand visitors are assigned and
each tracks one event with its own ``event_id``, concurrently. Once half of them have been
acknowledged, redis-server and then the service are killed with SIGKILL. The service restarted
on the same directory must hold every acknowledged event exactly once (the raw log has one
event row per acknowledged visitor, never two), and resending each acknowledged event with its
``event_id`` must answer ``duplicate``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from service.client import Client
from tests.conftest import ADMIN_KEY
from tests.e2e.test_supervisor import _redis_servers_in
from tests.service.conftest import BUYAKILT
from tests.support.live_server import LiveServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)"),
]

VISITORS = 3000
KILL_AFTER = 1500
KEY = BUYAKILT["key"]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _env(data_dir: Path) -> dict[str, str | None]:
    return {
        "ABACUS_REDIS_URL": None,
        "ABACUS_DATA_DIR": str(data_dir),
        "ABACUS_ADMIN_KEY": ADMIN_KEY,
        "ABACUS_KEY_PREFIX": None,
    }


def _event(i: int) -> dict[str, object]:
    return {"visitor_id": f"k{i}", "event": "purchase", "value": 1.0, "event_id": f"e{i}"}


async def _load(url: str, kill: asyncio.Event) -> set[int]:
    """Assign and track every visitor, 32 at a time; the indices whose event was acknowledged."""
    acknowledged: set[int] = set()
    gate = asyncio.Semaphore(32)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with gate:
            if kill.is_set():
                return
            try:
                await client.post("/v1/assign", json={"visitor_id": f"k{i}"})
                response = await client.post("/v1/track", json=_event(i))
            except httpx.HTTPError:
                return
            if response.status_code == 200 and KEY in response.json()["credited"]:
                acknowledged.add(i)
                if len(acknowledged) >= KILL_AFTER:
                    kill.set()

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(one(client, i) for i in range(VISITORS)))
    return acknowledged


def test_sigkill_mid_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = LiveServer(_env(data_dir), via_cli=True, startup_seconds=60).start()
    redis_pids = _redis_servers_in(data_dir)
    assert len(redis_pids) == 1
    try:
        server.create_running(BUYAKILT, ADMIN_KEY)

        async def run() -> set[int]:
            kill = asyncio.Event()

            async def killer() -> None:
                await kill.wait()
                os.kill(redis_pids[0], signal.SIGKILL)
                os.kill(server.pid, signal.SIGKILL)

            watcher = asyncio.create_task(killer())
            acknowledged = await _load(server.url, kill)
            kill.set()
            await watcher
            return acknowledged

        acknowledged = asyncio.run(run())
        server.process.wait(timeout=10)  # type: ignore[union-attr]
    finally:
        server.stop()
        for pid in redis_pids:  # the one this test started, if still there
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    assert len(acknowledged) >= KILL_AFTER

    with LiveServer(_env(data_dir), via_cli=True, startup_seconds=60) as again:
        with Client(again.url, api_key=ADMIN_KEY) as client:
            log = client.events(KEY, pre_exposure=False)
        counts: dict[str, int] = log[log["type"] == "event"]["visitor_id"].value_counts().to_dict()
        missing = [i for i in acknowledged if counts.get(f"k{i}", 0) != 1]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged events lost"
        assert max(counts.values()) == 1  # nothing counted twice

        async def resend() -> list[str]:
            async with httpx.AsyncClient(base_url=again.url, timeout=10) as client:
                answers = await asyncio.gather(
                    *(client.post("/v1/track", json=_event(i)) for i in sorted(acknowledged)[:200])
                )
            return [kind for a in answers for kind in a.json()["duplicate"]]

        assert asyncio.run(resend()) == [KEY] * min(200, len(acknowledged))
    print(f"acknowledged before SIGKILL: {len(acknowledged)}; present once after restart: all")
