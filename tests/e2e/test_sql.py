"""Frames, plots and SQL against a live service on the Buyakilt demo traffic.

The DuckDB views (from :meth:`Client.duckdb` and from ``abacus export --format duckdb``) must
give exactly the visitors and totals of the service's read-out, per variant and metric; the
tidy results frame must carry the typed read-out's numbers; the events frame must expand the
visitors' attributes into columns; the plots must draw from the read-out.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import matplotlib
import pandas as pd
import pytest

from experiments.embedded import EmbeddedRedis
from experiments.store import Store
from service.client import Client
from service.demo.casestudies import BUYAKILT
from service.demo.simulation import load_demo
from service.readout.frames import RESULT_COLUMNS, series_frame
from service.readout.model import ExperimentResults
from service.report.plots import plot_cumulative_lift, plot_lift
from tests.conftest import ADMIN_KEY, LiveServer
from tests.support.store import StoreRunner

ROOT = Path(__file__).resolve().parents[2]
KEY = BUYAKILT.key


@pytest.fixture(scope="module")
def served(redis_server: EmbeddedRedis) -> Iterator[LiveServer]:
    prefix = "sql-e2e"

    async def run(store: Store) -> None:
        end_ms = int(time.time() * 1000)
        await load_demo(store, seed=2024, scale=0.1, studies=[BUYAKILT], end_ms=end_ms)

    StoreRunner(redis_server.url, prefix)(run)
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_server.url,
            "ABACUS_KEY_PREFIX": prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    ).start()
    yield server
    server.stop()


SQL_TOTALS = """
SELECT variant, count(*) AS visitors, sum(conversion) AS conversion, sum(revenue) AS revenue,
       sum(orders) AS orders, sum(cart_visits) AS cart_visits, sum(refunds) AS refunds
FROM visitors GROUP BY variant ORDER BY variant
"""


def _assert_totals_match(con: duckdb.DuckDBPyConnection, results: ExperimentResults) -> None:
    sql = con.execute(SQL_TOTALS).df().set_index("variant")
    compared = 0
    for metric in results.metrics:
        for row in metric.variants:
            assert int(sql.loc[row.variant, "visitors"]) == row.visitors
            if metric.kind != "ratio":
                total = float(sql.loc[row.variant, metric.name])
                assert math.isclose(total, row.total, rel_tol=1e-12, abs_tol=1e-9), metric.name
                compared += 1
    assert compared == 10  # five non-ratio metrics, two variants


def test_duckdb_views_equal_the_read_out(served: LiveServer) -> None:
    with Client(served.url, ADMIN_KEY) as client:
        results = client.results(KEY)
        con = client.duckdb(KEY)
    _assert_totals_match(con, results)
    columns = [c[0] for c in con.execute("DESCRIBE exposures").fetchall()]
    assert columns == ["visitor_id", "variant", "ts", "device"]
    devices = {r[0] for r in con.execute("SELECT DISTINCT device FROM exposures").fetchall()}
    assert devices == {"mobile", "desktop", "tablet"}
    # a table of one's own joins the log
    own = pd.DataFrame({"device": ["mobile", "desktop", "tablet"], "screen": ["s", "l", "m"]})
    con.register("screens", own)
    joined = con.execute(
        "SELECT screen, count(*) FROM visitors JOIN screens USING (device) GROUP BY screen"
    ).fetchall()
    assert sum(n for _, n in joined) == sum(r.visitors for r in results.metrics[0].variants)
    con.close()


def test_cli_writes_a_duckdb_file(served: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "buyakilt.duckdb"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "service.cli", "export", KEY, "--format", "duckdb"),
            *("--out", str(out), "--url", served.url),
        ],
        env={**os.environ, "ABACUS_ADMIN_KEY": ADMIN_KEY},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "views: exposures, events, visitors" in result.stdout
    with Client(served.url, ADMIN_KEY) as client:
        results = client.results(KEY)
    with duckdb.connect(str(out), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM log").fetchone()
        assert row is not None and f"wrote {row[0]:,} rows of {KEY}" in result.stdout
        _assert_totals_match(con, results)


def test_results_frame_and_attribute_columns(served: LiveServer) -> None:
    with Client(served.url, ADMIN_KEY) as client:
        results = client.results(KEY)
        frame = client.results_frame(KEY)
        events = client.events(KEY, attribute_columns=True)
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert len(frame) == sum(len(m.variants) for m in results.metrics)
    primary = results.primary
    assert primary is not None
    treated = primary.treatments[0]
    row = frame[(frame.metric == primary.name) & (frame.variant == treated.variant)].iloc[0]
    assert row.relative_lift == treated.relative_lift and row.pvalue == treated.pvalue
    assert treated.relative_ci is not None
    assert (row.relative_ci_low, row.relative_ci_high) == treated.relative_ci
    control = frame[frame.is_control & (frame.metric == primary.name)].iloc[0]
    assert math.isnan(control.relative_lift) and pd.isna(control.verdict)
    series = series_frame(results)
    assert len(series) == sum(len(r.series) for m in results.metrics for r in m.treatments)
    assert len(series) > 0
    assert "attributes" not in events.columns and "device" in events.columns
    exposures = events[events.type == "exposure"]
    assert set(exposures.device.dropna()) == {"mobile", "desktop", "tablet"}


def test_plots_draw_from_the_read_out(served: LiveServer) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Client(served.url, ADMIN_KEY) as client:
        results = client.results(KEY)
    try:
        axes = plot_lift(results)
        labels = [t.get_text() for t in axes.get_yticklabels()]
        assert len(labels) == sum(len(m.treatments) for m in results.metrics)
        axes = plot_cumulative_lift(results)
        assert len(axes.lines) >= 1 and axes.collections  # the lift and its band
        with pytest.raises(ValueError, match="metric must be one of"):
            plot_cumulative_lift(results, "nope")
        with pytest.raises(ValueError, match="ratio metrics have no sequential test"):
            plot_cumulative_lift(results, "aov")
    finally:
        plt.close("all")
