"""Browser fixtures: Debian's chromium driven by Playwright, nothing fetched from outside."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

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
