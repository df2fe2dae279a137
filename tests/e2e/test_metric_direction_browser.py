"""Direction and guardrails as a marketer sees them, in a real headless Chromium.

Two experiments are loaded through the store's Lua scripts: one whose primary metric (refunds
per visitor, lower is better) rises significantly, and one whose primary metric wins while a
refunds guardrail is significantly worse. The first must read Losing, in red, on the report and
the dashboard; the second must raise the guardrail banner on the report and a guardrail badge
on the dashboard while its verdict stays Winning.
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
from tests.conftest import LiveServer
from tests.e2e.conftest import assert_clean, open_page, serve_prefix

pytestmark = pytest.mark.browser

PREFIX = "e2e-direction"
VARIANTS = [
    {"key": "control", "weight": 0.5},
    {"key": "easy", "name": "Easy returns", "weight": 0.5},
]
REFUNDS: dict[str, Any] = {"name": "refunds", "kind": "count", "event": "refund"}
LOWER_PRIMARY = {
    "key": "refund-watch",
    "name": "Easier returns form",
    "variants": VARIANTS,
    "metrics": [{**REFUNDS, "direction": "lower", "primary": True}],
}
GUARDED = {
    "key": "kilt-guardrail",
    "name": "One-click checkout",
    "variants": VARIANTS,
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {**REFUNDS, "direction": "lower", "guardrail": True},
    ],
}
VISITORS = 4000  # per experiment, alternating variants


def _events(prefix: str, event: str, control: int, treatment: int, at_ms: int) -> list[TrackEvent]:
    """``control`` events from the first control visitors, ``treatment`` from the first others."""
    visitors = [f"{prefix}{2 * i}" for i in range(control)]
    visitors += [f"{prefix}{2 * i + 1}" for i in range(treatment)]
    return [TrackEvent(v, event, 0.0, "0.0", at_ms) for v in visitors]


async def _load(store: Store) -> None:
    now = time.time()
    start_ms = int((now - 7 * 86400) * 1000)
    for definition, prefix in ((LOWER_PRIMARY, "r"), (GUARDED, "g")):
        draft = Experiment.model_validate(definition)
        experiment = await store.create_experiment(
            transition(draft, Status.RUNNING, now=now - 7 * 86400)
        )
        await store.record_exposure_batch(
            experiment, [(f"{prefix}{i}", i % 2, start_ms, "{}") for i in range(VISITORS)]
        )
        events = _events(prefix, "refund", 100, 224, start_ms + 60_000)
        if prefix == "g":
            events += _events(prefix, "purchase", 60, 130, start_ms + 60_000)
        await store.track([experiment], events)


@pytest.fixture(scope="module")
def service(redis_server: EmbeddedRedis) -> Iterator[LiveServer]:
    with serve_prefix(redis_server.url, PREFIX, _load) as server:
        yield server


def _rgb(hex_colour: str) -> str:
    value = hex_colour.strip().lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({red}, {green}, {blue})"


def _colour(page: Any, selector: str) -> str:
    return str(page.locator(selector).evaluate("e => getComputedStyle(e).color"))


def _red(page: Any) -> str:
    """The page's colour for a loss (the ``--lose`` custom property), as the browser renders it."""
    value = page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--lose')"
    )
    return _rgb(str(value))


def test_a_lower_is_better_metric_that_rises_is_losing_in_red(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    open_page(page, f"{service.url}/experiments/refund-watch")
    badge = "#verdict .verdict .badge"
    assert page.locator(badge).inner_text() == "Losing"
    red = _red(page)
    assert red != "rgb(0, 0, 0)"
    assert _colour(page, badge) == red
    verdict = page.locator("#verdict").inner_text()
    assert "raised refunds per visitor by 124%" in verdict and "Significant: worse" in verdict
    assert "Lower is better." in page.locator("#metric-refunds").inner_text()
    # the lift chart draws the loss in red too: its legend names the direction
    assert "refunds per visitor (lower is better)" in page.locator("#lifts").inner_text()
    page.screenshot(path=str(artifacts_dir / "report-lower-is-better.png"), full_page=True)
    assert_clean(page)

    open_page(page, service.url + "/")
    row = 'tr[data-experiment="refund-watch"]'
    verdict_badge = f"{row} .badge-losing"
    assert page.locator(verdict_badge).inner_text() == "Losing"
    assert _colour(page, verdict_badge) == _red(page)
    assert page.locator(f"{row} .badge-winning").count() == 0
    page.screenshot(path=str(artifacts_dir / "dashboard-direction.png"), full_page=True)
    assert_clean(page)


def test_a_harmed_guardrail_raises_its_banner_while_the_primary_wins(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    open_page(page, f"{service.url}/experiments/kilt-guardrail")
    assert page.locator("#verdict .verdict .badge").inner_text() == "Winning"
    banner = page.locator("#guardrail-banner")
    assert banner.is_visible()
    text = banner.inner_text()
    assert "A guardrail metric is harmed" in text
    assert "refunds per visitor is significantly worse with Easy returns" in text
    assert _colour(page, "#guardrail-banner h2") == _red(page)
    # the guardrail has its own section, after the other metrics
    assert page.locator("#guardrails").is_visible()
    assert page.locator("#metric-refunds .verdict .badge").inner_text() == "Losing"
    page.screenshot(path=str(artifacts_dir / "report-guardrail.png"), full_page=True)
    assert_clean(page)

    open_page(page, service.url + "/")
    row = 'tr[data-experiment="kilt-guardrail"]'
    assert page.locator(f"{row} .badge-winning").inner_text() == "Winning"
    guardrail = page.locator(f"{row} .badge-guardrail")
    assert guardrail.inner_text() == "Guardrail harmed"
    assert _colour(page, f"{row} .badge-guardrail") == _red(page)
    assert_clean(page)
