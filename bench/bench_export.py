"""Export of a million events: time, and peak memory of the server against the log's size.

Fills a throwaway embedded Redis with two Buyakilt-like experiments through the store's own Lua
scripts (pipelined): a small one and a large one (default 100,000 and 1,000,000 credited
events, one visitor per five events, plus a tenth as many events from before the visitors'
exposure). Then it serves the real app in a uvicorn subprocess and downloads each experiment's
events as Parquet and as CSV through ``GET /v1/experiments/KEY/events``, measuring the server
process's resident memory before each export and its peak during it (``VmHWM``, reset through
``/proc/PID/clear_refs`` before each run). It prints rows, bytes, seconds, rows/s, the peak
growth per export and the ratio of peak growth large / small (about 1 when memory does not
depend on the log's size; with Arrow's default allocator, mimalloc, which hands freed memory
back only after a delay, the longer export peaks somewhat higher without holding more: compare
``--arrow-pool system``), and checks that every export round-trips: row counts equal the
stored exposures and events, and per-variant sums recomputed from the rows equal the
aggregates.

    python bench/bench_export.py [--events 1000000] [--small 100000] [--arrow-pool system]

Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.definitions import Experiment, Status, transition  # noqa: E402
from experiments.store import Store, TrackEvent, TrackOutcome, encode_attributes  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402

DAY_MS = 86_400_000
DEVICES = ("mobile", "desktop", "tablet")
ADMIN_KEY = "bench-admin-key-0123456789"


def definition(key: str, *, shards: int = 8) -> dict[str, Any]:
    """A Buyakilt-like experiment: conversion, revenue, orders, cart visits, order value."""
    return {
        "key": key,
        "name": "Export benchmark",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "filters", "weight": 0.5}],
        "metrics": [
            {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
            {"name": "revenue", "kind": "mean", "event": "purchase"},
            {"name": "orders", "kind": "count", "event": "purchase"},
            {"name": "cart_visits", "kind": "count", "event": "cart_view"},
            {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
        ],
        "shards": shards,
    }


@dataclass(frozen=True)
class Filled:
    """What :func:`fill` wrote."""

    key: str
    visitors: int
    events: int
    pre_exposure_events: int
    seconds: float


async def fill(
    store: Store,
    key: str,
    *,
    events: int,
    seed: int,
    now_ms: int,
    shards: int = 8,
    batch: int = 5_000,
    on_progress: Callable[[int], None] | None = None,
) -> Filled:
    """Create experiment ``key`` and record ``events`` credited events through the Lua scripts.

    One visitor per five events (each with a ``device`` attribute), exposed over the last 14
    days; each event is a purchase (a quarter, with a value) or a cart view after its visitor's
    exposure; and a tenth as many events before the exposure, which the experiment does not
    credit but the activity log keeps.
    """
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    start_s = (now_ms - 14 * DAY_MS) / 1000
    draft = Experiment.model_validate({**definition(key, shards=shards), "created_at": start_s})
    experiment = transition(draft, Status.RUNNING, now=start_s)
    experiment = await store.create_experiment(experiment)
    visitors = max(1, events // 5)
    ids = [f"{key}-{i:08d}" for i in range(visitors)]
    variant = rng.integers(0, 2, visitors)
    exposed = rng.integers(now_ms - 14 * DAY_MS, now_ms - 3_600_000, visitors)
    device = rng.choice(len(DEVICES), visitors, p=[0.55, 0.35, 0.10])
    attributes = [encode_attributes({"device": d}) for d in DEVICES]
    for lo in range(0, visitors, batch):
        hi = min(lo + batch, visitors)
        done = await store.record_exposure_batch(
            experiment,
            [
                (ids[i], int(variant[i]), int(exposed[i]), attributes[int(device[i])])
                for i in range(lo, hi)
            ],
        )
        assert all(e.recorded_now for e in done)
    pre = events // 10
    total = events + pre
    for lo in range(0, total, batch):
        size = min(batch, total - lo)
        owner = rng.integers(0, visitors, size)
        purchase = rng.random(size) < 0.25
        values = np.where(purchase, np.round(rng.lognormal(4.0, 0.6, size), 2), 0.0)
        before = np.arange(lo, lo + size) >= events
        offset = rng.integers(1_000, 3_000_000, size)
        times = np.where(before, exposed[owner] - offset, exposed[owner] + offset)
        batch_events = [
            TrackEvent(
                visitor_id=ids[o],
                event="purchase" if p else "cart_view",
                value=float(v),
                value_text=repr(float(v)),
                timestamp_ms=int(t),
            )
            for o, p, v, t in zip(
                owner.tolist(), purchase.tolist(), values.tolist(), times.tolist(), strict=True
            )
        ]
        outcomes = await store.track([experiment], batch_events)
        expected = [TrackOutcome.BEFORE_EXPOSURE if b else TrackOutcome.CREDITED for b in before]
        assert [o[key] for o in outcomes] == expected
        if on_progress is not None:
            on_progress(size)
    return Filled(key, visitors, events, pre, time.perf_counter() - began)


# -- server process and its memory --------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process before a run and its peak during it, in KiB."""

    before_kib: int
    peak_kib: int

    @property
    def growth_kib(self) -> int:
        return self.peak_kib - self.before_kib


@contextmanager
def measure_memory(pid: int) -> Iterator[list[Memory]]:
    """Reset the process's peak RSS, run the block, and append what it used to the list."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _status_kib(pid, "VmRSS")
    found: list[Memory] = []
    yield found
    found.append(Memory(before, _status_kib(pid, "VmHWM")))


# -- export, measured and checked ---------------------------------------------------------------


@dataclass(frozen=True)
class ExportRun:
    key: str
    format: str
    rows: int
    bytes: int
    seconds: float
    memory: Memory


def export(client: Any, pid: int, key: str, fmt: str, out: Path) -> ExportRun:
    """Download ``key``'s events as ``fmt`` into ``out`` while measuring the server's memory."""
    with measure_memory(pid) as memory:
        began = time.perf_counter()
        download = client.download_events(key, out, format=fmt)
        seconds = time.perf_counter() - began
    frame = read_export(out, fmt)
    return ExportRun(key, fmt, len(frame), download.bytes, seconds, memory[0])


def read_export(path: Path, fmt: str) -> Any:
    """An export file as a DataFrame in the Parquet export's dtypes."""
    import pandas as pd

    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        frame = pd.read_csv(path, keep_default_na=False, na_values={"value": [""]})
    else:
        frame = pd.read_json(path, lines=True, dtype={"visitor_id": str})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def check_round_trip(frame: Any, summary: Any, metrics: list[dict[str, Any]]) -> list[str]:
    """Differences between per-variant sums recomputed from ``frame`` and the aggregates."""
    import stats

    rows = stats.visitor_rows(frame, metrics=stats.definition_metrics(metrics))
    by_name = {m["name"]: m for m in metrics}
    problems: list[str] = []
    for _, agg in summary.iterrows():
        mine = rows[rows["variant"] == agg["variant"]]
        if len(mine) != agg["n"]:
            problems.append(f"{agg['variant']}: {len(mine)} visitors, aggregates {agg['n']}")
        if agg["kind"] == "ratio":
            ratio = by_name[agg["metric"]]
            x, y = mine[ratio["numerator"]], mine[ratio["denominator"]]
            pairs = [("cross_sum", float((x * y).sum()))]
        else:
            column = mine[agg["metric"]]
            pairs = [("sum", float(column.sum())), ("sum_squares", float((column**2).sum()))]
        for stat, value in pairs:
            stored = float(agg[stat])
            if not math.isclose(value, stored, rel_tol=1e-9, abs_tol=1e-6):
                problems.append(f"{agg['variant']} {agg['metric']} {stat}: {value} != {stored}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="large experiment")
    parser.add_argument("--small", type=int, default=100_000, help="small experiment")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--arrow-pool",
        choices=["default", "system", "jemalloc", "mimalloc"],
        default="default",
        help="the server's Arrow allocator (ARROW_DEFAULT_MEMORY_POOL); default: Arrow's own",
    )
    args = parser.parse_args()

    import redis.asyncio as aioredis
    from rich.progress import Progress

    from experiments.embedded import EmbeddedRedis
    from experiments.keys import Keyspace
    from service.client import Client

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("error")
        redis = EmbeddedRedis(Path(tmp) / "redis", tcp=True, persist=False).start()
        try:
            store_env = {
                "ABACUS_REDIS_URL": redis.url,
                "ABACUS_KEY_PREFIX": "bench",
                "ABACUS_ADMIN_KEY": ADMIN_KEY,
            }
            if args.arrow_pool != "default":
                store_env["ARROW_DEFAULT_MEMORY_POOL"] = args.arrow_pool
            now_ms = int(time.time() * 1000)

            async def load() -> list[Filled]:
                client = aioredis.from_url(redis.url, decode_responses=True)
                store = Store(client, Keyspace("bench"))
                try:
                    with Progress() as progress:
                        out = []
                        for key, size in (("small", args.small), ("large", args.events)):
                            task = progress.add_task(f"fill {key}", total=size + size // 10)
                            out.append(
                                await fill(
                                    store,
                                    key,
                                    events=size,
                                    seed=args.seed,
                                    now_ms=now_ms,
                                    on_progress=functools.partial(progress.advance, task),
                                )
                            )
                        return out
                finally:
                    await client.aclose()

            for filled in asyncio.run(load()):
                print(
                    f"filled {filled.key}: {filled.visitors:,} visitors, {filled.events:,} "
                    f"credited events, {filled.pre_exposure_events:,} before exposure in "
                    f"{filled.seconds:.1f} s"
                )
            runs: list[ExportRun] = []
            with LiveServer(store_env) as server, Client(server.url, ADMIN_KEY) as client:
                # One small export first, so that first-use costs (imports, pools) are not
                # counted against either size.
                for fmt in ("parquet", "csv"):
                    export(client, server.pid, "small", fmt, Path(tmp) / f"warmup.{fmt}")
                print(
                    f"server RSS after warm-up: {_status_kib(server.pid, 'VmRSS') / 1024:.0f} MiB"
                )
                for key in ("small", "large"):
                    definition_metrics = client.experiment(key)["metrics"]
                    summary = client.summary(key)
                    for fmt in ("parquet", "csv"):
                        out = Path(tmp) / f"{key}.{fmt}"
                        run = export(client, server.pid, key, fmt, out)
                        runs.append(run)
                        frame = read_export(out, fmt)
                        problems = check_round_trip(frame, summary, definition_metrics)
                        counted = int(summary.groupby("variant")["n"].first().sum())
                        exposures = int((frame["type"] == "exposure").sum())
                        credited = int((frame["type"] == "event").sum())
                        status = (
                            "round trip OK"
                            if not problems and exposures == counted
                            else (f"MISMATCH {problems[:3]} exposures {exposures} vs {counted}")
                        )
                        print(
                            f"{key:>5} {fmt:<7} {run.rows:>10,} rows ({exposures:,} exposures, "
                            f"{credited:,} credited, {run.rows - exposures - credited:,} "
                            f"pre-exposure) {run.bytes / 2**20:8.1f} MiB in {run.seconds:6.2f} s "
                            f"= {run.rows / run.seconds:>9,.0f} rows/s; server RSS "
                            f"{run.memory.before_kib / 1024:.0f} MiB before, peak "
                            f"+{run.memory.growth_kib / 1024:.1f} MiB; {status}"
                        )
                        del frame
                        out.unlink()
            for fmt in ("parquet", "csv"):
                small = next(r for r in runs if r.key == "small" and r.format == fmt)
                large = next(r for r in runs if r.key == "large" and r.format == fmt)
                print(
                    f"{fmt}: {large.rows / small.rows:.1f}x the rows, peak memory growth "
                    f"{large.memory.growth_kib / max(small.memory.growth_kib, 1):.2f}x "
                    f"({small.memory.growth_kib / 1024:.1f} -> "
                    f"{large.memory.growth_kib / 1024:.1f} MiB), time "
                    f"{large.seconds / small.seconds:.1f}x"
                )
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
