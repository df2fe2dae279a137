"""Webhook notifications from the live service: two processes' notifier loops, one receiver.

Two service processes share one Redis keyspace, each running its notifier loop every 0.2 s;
traffic arrives over HTTP as an SDK would send it (``POST /v1/exposures`` of the variants
the hash chose, ``POST /v1/track/batch``); the sample-ratio mismatch is an SDK that lost a
third of one variant's exposures. Each event must reach the receiver once, whichever
process claimed it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from experiments.bucketing import bucket_ranges, choose_variant, hash_bucket
from tests.conftest import ADMIN_KEY, RedisTarget
from tests.support.live_server import LiveServer
from tests.support.webhook_receiver import Receiver

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
VARIANTS = ("control", "treatment")


@pytest.fixture
def two_servers(redis_server: RedisTarget, key_prefix: str) -> Iterator[list[LiveServer]]:
    env = {
        **redis_server.env(),
        "ABACUS_KEY_PREFIX": key_prefix,
        "ABACUS_ADMIN_KEY": ADMIN_KEY,
        "ABACUS_NOTIFY_INTERVAL_SECONDS": "0.2",
    }
    with ExitStack() as stack:
        yield [stack.enter_context(LiveServer(env)) for _ in range(2)]


def _experiment(key: str, *, guardrail: bool = False) -> dict[str, object]:
    metrics: list[dict[str, object]] = [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True}
    ]
    if guardrail:
        metrics.append(
            {"name": "refunds", "kind": "conversion", "event": "refund", "direction": "lower"}
            | {"guardrail": True}
        )
    return {
        "key": key,
        "name": key.replace("-", " ").title(),
        "variants": [{"key": v, "weight": 0.5} for v in VARIANTS],
        "metrics": metrics,
    }


def _visitors(key: str, counts: tuple[int, int]) -> list[tuple[str, str]]:
    """``counts[i]`` visitors the hash puts in variant ``i`` of ``key``: (visitor, variant)."""
    ranges = bucket_ranges(2, 1.0, [0.5, 0.5])
    wanted = dict(zip(VARIANTS, counts, strict=True))
    chosen: list[tuple[str, str]] = []
    for n in itertools.count():
        visitor = f"{key}-{n}"
        bucket = hash_bucket(key, visitor)
        assert bucket is not None
        variant = VARIANTS[choose_variant(bucket, ranges)]
        if wanted[variant] > 0:
            wanted[variant] -= 1
            chosen.append((visitor, variant))
        if not any(wanted.values()):
            return chosen
    raise AssertionError("unreachable")


def _traffic(
    http: httpx.Client, key: str, visitors: tuple[int, int], events: dict[str, tuple[int, int]]
) -> None:
    """Expose the visitors (as an SDK reports what it showed), then send their events: the
    first ``events[name][i]`` visitors of variant ``i`` send ``name``."""
    batch = []
    seen = dict.fromkeys(VARIANTS, 0)
    for visitor, variant in _visitors(key, visitors):
        body = {"visitor_id": visitor, "experiment": key, "variant": variant}
        response = http.post("/v1/exposures", json=body)
        assert response.status_code == 200, response.text
        index = VARIANTS.index(variant)
        batch += [
            {"visitor_id": visitor, "event": event, "event_id": f"{event}-{visitor}"}
            for event, converted in events.items()
            if seen[variant] < converted[index]
        ]
        seen[variant] += 1
    time.sleep(0.01)  # events after the exposures, by the service's clock
    for start in range(0, len(batch), 1000):
        response = http.post("/v1/track/batch", json={"events": batch[start : start + 1000]})
        assert response.status_code == 200, response.text


def test_two_service_processes_send_each_event_once(two_servers: list[LiveServer]) -> None:
    first, second = two_servers
    with Receiver() as receiver, httpx.Client(base_url=first.url, timeout=30) as http:
        for key in ("srm-check", "guarded", "winner", "quiet"):
            first.create_running(_experiment(key, guardrail=key == "guarded"), ADMIN_KEY)
        _traffic(http, "quiet", (300, 300), {"purchase": (30, 31)})
        _traffic(http, "srm-check", (300, 200), {"purchase": (30, 20)})
        _traffic(http, "guarded", (400, 400), {"purchase": (40, 40), "refund": (20, 80)})
        _traffic(http, "winner", (400, 400), {"purchase": (40, 120)})
        # set last: until then the loops have nothing to send to and read nothing out
        put = http.put("/v1/workspace/webhook", json={"url": receiver.url}, headers=AUTH)
        assert put.status_code == 200, put.text

        receiver.wait_for(3)
        time.sleep(2.0)  # ten more passes of each loop: nothing is sent again
        events = sorted((e["event"], e["experiment"]["key"]) for e in receiver.events())
        assert events == [
            ("guardrail_harmed", "guarded"),
            ("primary_significant", "winner"),
            ("srm", "srm-check"),
        ]
        log = httpx.get(second.url + "/v1/workspace/webhook/deliveries", headers=AUTH).json()
        assert sorted(a["experiment"] for a in log) == ["guarded", "srm-check", "winner"]
        assert {a["outcome"] for a in log} == {"delivered"}
        assert [b.json()["delivery_id"] for b in receiver.received] == [
            a["delivery_id"] for a in reversed(log)
        ]
