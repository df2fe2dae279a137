"""The dashboard and the demo reports in a real headless Chromium against the live service.

One service is loaded once for the module: the five case-study experiments (a quarter of the
published-size traffic), an experiment with no traffic yet, and one whose visitors are split
2:1 against a 50/50 configuration. Every page must render its charts, log no console error and
fetch nothing from outside 127.0.0.1; screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.definitions import Experiment, Status, transition
from experiments.embedded import EmbeddedRedis
from experiments.store import Store, TrackEvent
from service.demo.casestudies import CASE_STUDIES
from service.demo.simulation import load_demo
from tests.conftest import LiveServer
from tests.e2e.conftest import assert_clean, open_page, serve_prefix

pytestmark = pytest.mark.browser

PREFIX = "e2e-report"
FRESH = {
    "key": "fresh-idea",
    "name": "Free delivery banner",
    "hypothesis": "A free-delivery banner lifts checkout starts",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "banner", "weight": 0.5}],
    "metrics": [{"name": "checkouts", "kind": "conversion", "event": "checkout", "primary": True}],
}
SKEWED = {**FRESH, "key": "skewed-split", "name": "Checkout redesign (broken redirect)"}


async def _load(store: Store) -> None:
    await load_demo(store, seed=2024, scale=0.25)
    await store.create_experiment(Experiment.model_validate(FRESH))
    now = time.time()
    skewed = transition(Experiment.model_validate(SKEWED), Status.RUNNING, now=now - 86400)
    skewed = await store.create_experiment(skewed)
    start_ms = int((now - 86400) * 1000)
    for i in range(600):
        await store.record_exposure(skewed, f"s{i}", 0 if i < 400 else 1, now_ms=start_ms)
    events = [
        TrackEvent(f"s{i}", "checkout", 0.0, "0.0", start_ms + 60_000) for i in range(0, 600, 9)
    ]
    await store.track([skewed], events)


@pytest.fixture(scope="module")
def service(redis_server: EmbeddedRedis) -> Iterator[LiveServer]:
    with serve_prefix(redis_server.url, PREFIX, _load) as server:
        yield server


def _charts_visible(page: Any, minimum: int) -> int:
    charts = page.locator("svg.chart")
    count = int(charts.count())
    assert count >= minimum
    for index in range(count):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 100
        # Drawn data: line and marker paths, not an empty frame.
        assert chart.locator("path").count() > 10
    return count


def test_the_dashboard_lists_every_experiment_with_its_verdict(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    open_page(page, service.url + "/")
    rows = page.locator("tr[data-experiment]")
    assert rows.count() == len(CASE_STUDIES) + 2
    badge = {
        key: page.locator(f'tr[data-experiment="{key}"] .badge').inner_text()
        for key in [c.key for c in CASE_STUDIES] + ["fresh-idea", "skewed-split"]
    }
    assert badge["fresh-idea"] == "Not enough data"
    assert badge["skewed-split"] == "SRM problem"
    assert badge["uk-tool-centre"] == "Winning"
    assert set(badge.values()) <= {"Winning", "Inconclusive", "Not enough data", "SRM problem"}
    row = page.locator('tr[data-experiment="buyakilt-filters"]').inner_text()
    assert (
        "control 50% · filters 50%" in row and "conversion rate" in row and "running" in row.lower()
    )
    _charts_visible(page, 1)
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    assert_clean(page)

    page.click('a[href="/experiments/uk-tool-centre"]')
    page.wait_for_url("**/experiments/uk-tool-centre")
    assert "Remove the filter menu" in page.locator("h1").inner_text()
    assert_clean(page)


@pytest.mark.parametrize("case", CASE_STUDIES, ids=[c.key for c in CASE_STUDIES])
def test_each_demo_report_renders_its_verdicts_and_charts(
    service: LiveServer, page: Any, artifacts_dir: Path, case: Any
) -> None:
    open_page(page, f"{service.url}/experiments/{case.key}")
    assert page.locator("h1").inner_text().startswith(case.definition["name"])
    assert case.definition["hypothesis"] in page.locator("header").inner_text()
    assert page.locator("#srm-banner").count() == 0
    verdict = page.locator("#verdict").inner_text()
    assert "interval" in verdict and "chance to beat control" in verdict
    metrics = page.locator("section.metric")
    assert metrics.count() == len(case.definition["metrics"])
    for index in range(metrics.count()):
        assert metrics.nth(index).locator("table tbody tr").count() == 2
    # One lift chart, plus a daily chart per metric with a sequential test (not ratios).
    sequential = [m for m in case.definition["metrics"] if m["kind"] != "ratio"]
    assert _charts_visible(page, 1 + len(sequential)) == 1 + len(sequential)
    assert "visitors per variant needed" in page.locator("#progress").inner_text()
    page.screenshot(path=str(artifacts_dir / f"report-{case.key}.png"), full_page=True)
    assert_clean(page)


def test_a_report_with_no_traffic_says_not_enough_data(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    open_page(page, f"{service.url}/experiments/fresh-idea")
    text = page.locator("main").inner_text()
    assert "Not enough data yet for banner: no visitors in control and banner yet." in text
    assert "Not enough data to plan yet" in text
    page.screenshot(path=str(artifacts_dir / "report-no-traffic.png"), full_page=True)
    assert_clean(page)


def test_a_sample_ratio_mismatch_is_a_loud_banner(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    open_page(page, f"{service.url}/experiments/skewed-split")
    banner = page.locator("#srm-banner")
    assert banner.is_visible()
    assert "Sample ratio mismatch: do not trust these results" in banner.inner_text()
    assert "400" in banner.inner_text() and "200" in banner.inner_text()
    assert page.locator("#verdict .badge").inner_text() == "SRM problem"
    page.screenshot(path=str(artifacts_dir / "report-srm.png"), full_page=True)
    assert_clean(page)
