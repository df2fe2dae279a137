"""Exports from the live service: bounded memory, lossless round trips, the client and the CLI.

A small version of ``bench/bench_export.py``: two experiments filled through the store's Lua
scripts (10,000 and 50,000 credited events, plus a tenth as many from before exposure) are
downloaded as Parquet and CSV from a uvicorn subprocess while its peak resident memory is
measured. Memory is compared between the two sizes by ratio (never absolute times): the larger
export may not need much more memory than the smaller one, although it has five times the rows.
Holding the rows would show: 60,000 rows as Python objects take tens of MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow.parquet as pq
import pytest

import stats
from bench.bench_export import check_round_trip, fill, measure_memory, read_export
from experiments.embedded import EmbeddedRedis
from experiments.store import Store
from service.client import Client, ClientError, IncompleteLogWarning
from tests.conftest import ADMIN_KEY, LiveServer
from tests.support.store import StoreRunner

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"small": 10_000, "large": 50_000}
ROW_GROUP = 5_000
FORMATS: tuple[Literal["parquet", "csv"], ...] = ("parquet", "csv")


def _rows(events: int) -> int:
    """Rows of an export: exposures (a visitor per five events), events, pre-exposure events."""
    return events // 5 + events + events // 10


def _fill(
    redis_url: str,
    prefix: str,
    sizes: dict[str, int],
    *,
    shards: int = 2,
    log_max_length: int = 1_000_000,
) -> None:
    async def run(store: Store) -> None:
        now_ms = int(time.time() * 1000)
        for seed, (key, events) in enumerate(sizes.items()):
            await fill(store, key, events=events, seed=seed, now_ms=now_ms, shards=shards)

    StoreRunner(redis_url, prefix)(run, log_max_length=log_max_length)


@pytest.fixture(scope="module")
def filled(redis_server: EmbeddedRedis) -> Iterator[LiveServer]:
    """A live service over two filled experiments (module scope: filling takes a while)."""
    prefix = "export-e2e"
    url = redis_server.url
    _fill(url, prefix, SIZES)
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": url,
            "ABACUS_KEY_PREFIX": prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
            # Arrow's default allocator, mimalloc, returns freed memory to the system after a
            # delay, so a longer export shows a higher peak (up to ~15 MiB, bench_export.py)
            # without holding more. The system allocator makes the peak show what is held.
            "ARROW_DEFAULT_MEMORY_POOL": "system",
        }
    ).start()
    yield server
    server.stop()


def test_export_memory_does_not_grow_with_the_log_and_round_trips(
    filled: LiveServer, tmp_path: Path
) -> None:
    assert filled.process is not None
    pid = filled.process.pid
    growth: dict[tuple[str, str], int] = {}
    with Client(filled.url, ADMIN_KEY) as client:
        # Every export once unmeasured: first use of an encoder and the allocators' growth to
        # their working size are paid once per process, whatever the size of the log.
        for key in SIZES:
            for fmt in FORMATS:
                client.download_events(
                    key, tmp_path / f"warm.{fmt}", format=fmt, row_group_size=ROW_GROUP
                )
        for key in ("small", "large"):
            definition = client.experiment(key)
            summary = client.summary(key)
            counted = int(summary.groupby("variant")["n"].first().sum())
            for fmt in FORMATS:
                out = tmp_path / f"{key}.{fmt}"
                with measure_memory(pid) as memory:
                    download = client.download_events(
                        key, out, format=fmt, row_group_size=ROW_GROUP
                    )
                growth[key, fmt] = memory[0].growth_kib
                frame = read_export(out, fmt)
                assert download.exposures == counted
                assert (frame.type == "exposure").sum() == counted
                assert (frame.type == "event").sum() == SIZES[key]
                assert (frame.type == "pre_exposure").sum() == SIZES[key] // 10
                assert check_round_trip(frame, summary, definition["metrics"]) == []
            assert pq.ParquetFile(tmp_path / f"{key}.parquet").metadata.num_row_groups >= (
                SIZES[key] // ROW_GROUP
            )
    for fmt in ("parquet", "csv"):
        small, large = growth["small", fmt], growth["large", fmt]
        # Five times the rows; memory bounded by a page and a row group. Two MiB of slack keep
        # a near-zero small figure from making the ratio meaningless (the server's RSS moves by
        # about that much between runs); holding the large log whole would cost well over 20 MiB
        # (its CSV text alone is about 5 MiB, the rows as Python objects several times that).
        assert large <= 2 * max(small, 2048), (fmt, growth)


def test_client_reads_events_summary_and_results(filled: LiveServer) -> None:
    with Client(filled.url, ADMIN_KEY) as client:
        events = client.events("small")
        assert list(events.columns) == [
            "experiment",
            "type",
            "visitor_id",
            "variant",
            "timestamp",
            "event",
            "value",
            "attributes",
        ]
        assert str(events.timestamp.dtype) == "datetime64[ms, UTC]"
        assert events.timestamp.is_monotonic_increasing
        assert len(events) == _rows(SIZES["small"])
        without = client.events("small", pre_exposure=False)
        assert set(without.type) == {"exposure", "event"}
        definition = client.experiment("small")
        rows = stats.visitor_rows(
            events, metrics=stats.definition_metrics(definition["metrics"]), attributes=["device"]
        )
        assert set(rows.device) == {"mobile", "desktop", "tablet"}
        daily = client.summary("small", daily=True)
        overall = client.summary("small")
        added = daily.groupby(["variant", "metric"])["n"].sum()
        assert added.to_dict() == overall.set_index(["variant", "metric"])["n"].to_dict()
        results = client.results("small")
        primary = results.primary
        assert primary is not None
        table = stats.compare_frame(
            rows, metrics=stats.definition_metrics(definition["metrics"]), control="control"
        )
        mine = table[(table.metric == primary.name) & (table.variant == "filters")]
        assert float(mine.pvalue.iloc[0]) == pytest.approx(primary.variants[1].pvalue, abs=1e-9)
        with pytest.raises(ClientError) as missing:
            client.events("no-such")
        assert missing.value.status == 404 and "no-such" in missing.value.message
    with Client(filled.url, "wrong-key") as intruder, pytest.raises(ClientError) as refused:
        intruder.summary("small")
    assert refused.value.status == 401


def test_client_warns_when_the_log_was_trimmed(redis_server: EmbeddedRedis) -> None:
    prefix = "export-e2e-trimmed"
    # About 2,600 entries into one shard capped near 1,000: the oldest (exposures first) go.
    _fill(redis_server.url, prefix, {"capped": 2_000}, shards=1, log_max_length=1_000)
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_server.url,
            "ABACUS_KEY_PREFIX": prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    ).start()
    try:
        with Client(server.url, ADMIN_KEY) as client:
            with pytest.warns(IncompleteLogWarning, match="trimmed"):
                events = client.events("capped", pre_exposure=False)
            assert len(events) < _rows(2_000)
    finally:
        server.stop()


def test_cli_export_writes_the_file_and_counts_rows(filled: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "small.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "export",
            "small",
            "--format",
            "csv",
            "--out",
            str(out),
            "--url",
            filled.url,
        ],
        env={**os.environ, "ABACUS_ADMIN_KEY": ADMIN_KEY},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert f"wrote {len(frame):,} rows of small" in result.stdout
    assert len(frame) == _rows(SIZES["small"])
    refused = subprocess.run(
        [sys.executable, "-m", "service.cli", "export", "nope", "--out", str(tmp_path / "x")],
        env={**os.environ, "ABACUS_ADMIN_KEY": ADMIN_KEY, "ABACUS_URL": filled.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "404" in refused.stderr and "nope" in refused.stderr
    assert not (tmp_path / "x").exists()
