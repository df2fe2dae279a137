"""``/docs`` and ``/redoc`` render in Chromium with every request off the machine aborted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RedisTarget
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def service(redis_server: RedisTarget) -> Iterator[LiveServer]:
    env = {**redis_server.env(), "ABACUS_KEY_PREFIX": "docs", "ABACUS_ADMIN_KEY": ADMIN_KEY}
    with LiveServer(env) as server:
        yield server


def _offline(page: Any, service: LiveServer) -> list[str]:
    """Abort every request that does not go to the service; return the aborted URLs."""
    aborted: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith((service.url + "/", "data:", "blob:")):
            route.continue_()
        else:
            aborted.append(url)
            route.abort()

    page.route("**/*", handle)
    return aborted


def test_swagger_ui_renders_every_operation_offline(page: Any, service: LiveServer) -> None:
    aborted = _offline(page, service)
    response = page.goto(service.url + "/docs")
    assert response is not None and response.status == 200
    page.wait_for_selector(".opblock", timeout=30_000)
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    paths = {s.replace("\u200b", "").strip() for s in summaries}
    assert {"/v1/assign", "/v1/track", "/v1/experiments", "/v1/experiments/{key}"} <= paths
    assert aborted == []
    assert page.console_errors == []


def test_redoc_renders_offline(page: Any, service: LiveServer) -> None:
    aborted = _offline(page, service)
    response = page.goto(service.url + "/redoc")
    assert response is not None and response.status == 200
    page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=30_000)
    assert page.locator("[data-section-id^='operation/']").count() >= 10
    assert "Assign one visitor to one experiment" in page.content()
    # ReDoc's bundle links its "API docs by Redocly" badge image from its vendor; the page
    # renders without it, and it is the only thing asked for off the machine
    assert set(aborted) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, aborted
