"""Browser fixtures: Debian's chromium driven by Playwright, nothing fetched from outside."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from experiments.store import Store
from tests.conftest import ADMIN_KEY, LiveServer
from tests.support.store import StoreRunner

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module.

    Playwright's sync API keeps an event loop running on the main thread while it is started,
    so it is stopped after each module (tests that drive async code from synchronous code use
    ``service.loops.run_sync``, which runs it on a loop of its own in any case).
    """
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run does")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page that records console errors and outside requests."""
    context = browser.new_context()
    page = context.new_page()
    page.console_errors = []
    page.outside_requests = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def _check(request: Any) -> None:
        url = request.url
        if not url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            page.outside_requests.append(url)

    page.on("request", _check)
    yield page
    context.close()


@contextmanager
def serve_prefix(
    redis_url: str, prefix: str, load: Callable[[Store], Awaitable[None]]
) -> Iterator[LiveServer]:
    """A live service on ``prefix`` of the Redis at ``redis_url``, filled by ``load`` first;
    the prefix's keys are removed afterwards."""
    StoreRunner(redis_url, prefix)(load)
    server = LiveServer(
        {"ABACUS_REDIS_URL": redis_url, "ABACUS_KEY_PREFIX": prefix, "ABACUS_ADMIN_KEY": ADMIN_KEY}
    ).start()
    try:
        yield server
    finally:
        server.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def open_page(page: Any, url: str) -> None:
    """Open ``url`` as the admin, at a desktop size; it must answer 200."""
    page.set_extra_http_headers({"Authorization": f"Bearer {ADMIN_KEY}"})
    page.set_viewport_size({"width": 1200, "height": 900})
    response = page.goto(url)
    assert response is not None and response.status == 200


def assert_clean(page: Any) -> None:
    """No console error and nothing fetched from outside 127.0.0.1."""
    assert page.console_errors == []
    assert page.outside_requests == []
