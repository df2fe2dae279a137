"""The browser SDK and the demo shop in headless Chromium against the real service and Redis:
visitor ids, variants kept across reloads, purchases reaching the results, events sent while the
page unloads, a Redis outage survived without losing or double counting anything, and CORS."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from experiments.assignment import decide
from experiments.definitions import Experiment
from experiments.embedded import EmbeddedRedis
from service.demo.casestudies import BUYAKILT
from tests.conftest import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.browser

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
KEY = BUYAKILT.key
EXPERIMENT = Experiment.model_validate({**BUYAKILT.definition, "status": "running"})


# -- helpers ---------------------------------------------------------------------------------


def start_experiment(url: str, definition: dict[str, Any] = BUYAKILT.definition) -> None:
    created = httpx.post(url + "/v1/experiments", json=definition, headers=AUTH)
    assert created.status_code == 201, created.text
    started = httpx.patch(
        url + f"/v1/experiments/{definition['key']}", json={"status": "running"}, headers=AUTH
    )
    assert started.status_code == 200, started.text


def hash_variant(visitor_id: str) -> str | None:
    """What Python's bucketing gives the visitor in the Buyakilt experiment."""
    return decide(EXPERIMENT, visitor_id).variant


def visitor_in(variant: str, prefix: str) -> str:
    return next(f"{prefix}-{i}" for i in range(1000) if hash_variant(f"{prefix}-{i}") == variant)


def results(url: str) -> dict[str, Any]:
    response = httpx.get(url + f"/v1/experiments/{KEY}/results", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def totals(read_out: dict[str, Any], metric: str) -> dict[str, float]:
    rows = next(m for m in read_out["metrics"] if m["name"] == metric)["variants"]
    return {row["variant"]: row["total"] for row in rows}


def wait_until(condition: Callable[[], bool], timeout_seconds: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_seconds} s")
        time.sleep(0.1)


def watch(page: Any) -> Any:
    """Record console errors and requests leaving 127.0.0.1, as the ``page`` fixture does."""
    page.console_errors = []
    page.outside_requests = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:"))
            else page.outside_requests.append(r.url)
        ),
    )
    return page


def shown_variant(page: Any) -> str:
    page.wait_for_selector("body[data-variant]")
    return str(page.get_attribute("body", "data-variant"))


def visitor_cookie(page: Any) -> str:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "abacus_vid"]
    return str(cookie["value"])


def wait_queue_empty(page: Any, timeout_ms: float = 15_000) -> None:
    page.wait_for_function("abacus.pending() === 0", timeout=timeout_ms)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the shop ---------------------------------------------------------------------------------


def test_fresh_visitor_keeps_the_variant_across_reloads_and_the_purchase_is_counted(
    live_server: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    start_experiment(live_server.url)
    page.goto(live_server.url + "/demo/shop")
    variant = shown_variant(page)
    visitor_id = visitor_cookie(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "abacus_vid")
    assert cookie["sameSite"] == "Lax"
    assert cookie["expires"] > time.time() + 364 * 86400
    assert variant == hash_variant(visitor_id)  # decided in the browser, as Python would
    assert page.is_visible("#filters") is (variant == "filters")
    wait_queue_empty(page)  # the exposure went out in the background
    assert results(live_server.url)["srm"]["visitors"][variant] == 1
    server = httpx.get(
        live_server.url + "/v1/assign", params={"experiment": KEY, "visitor_id": visitor_id}
    ).json()
    assert server["variant"] == variant  # the locally computed variant is the server's

    page.reload()
    assert shown_variant(page) == variant
    assert visitor_cookie(page) == visitor_id

    buttons = page.locator(".add-to-cart")
    buttons.nth(0).click()  # 389.00
    buttons.nth(3).click()  # 89.90
    assert page.text_content("#cart-total") == "478.90"
    page.click("#checkout")
    page.wait_for_selector("#message:has-text('(recorded)')")
    wait_queue_empty(page)
    page.screenshot(path=str(artifacts_dir / "sdk-shop-purchase.png"), full_page=True)

    read_out = results(live_server.url)
    assert read_out["srm"]["visitors"] == {"control": 0, "filters": 0, variant: 1}
    assert totals(read_out, "conversion")[variant] == 1
    assert totals(read_out, "revenue")[variant] == pytest.approx(478.90)
    assert totals(read_out, "orders")[variant] == 1
    assert totals(read_out, "cart_visits")[variant] == 2
    assert page.console_errors == []
    assert page.outside_requests == []


def test_two_browsers_land_in_different_variants_and_only_filters_sees_filters(
    live_server: LiveServer, browser: Any, artifacts_dir: Path
) -> None:
    start_experiment(live_server.url)
    ids = {"control": visitor_in("control", "ctx"), "filters": visitor_in("filters", "ctx")}
    pages = {}
    try:
        for variant, mode in (("control", "local"), ("filters", "server")):
            context = browser.new_context()
            host = live_server.url.removeprefix("http://").split(":")[0]
            context.add_cookies(
                [{"name": "abacus_vid", "value": ids[variant], "domain": host, "path": "/"}]
            )
            page = watch(context.new_page())
            page.goto(live_server.url + f"/demo/shop?mode={mode}")
            pages[variant] = page
        assert shown_variant(pages["control"]) == "control"
        assert shown_variant(pages["filters"]) == "filters"
        assert not pages["control"].is_visible("#filters")
        assert pages["filters"].is_visible("#filters")
        assert pages["filters"].text_content("#variant") == "filters"

        shop = pages["filters"]
        shop.check("#filters input[value='Utility']")
        assert shop.text_content("#shown-count") == "Showing 2 of 8 kilts"
        shop.check("#filters input[value='Black Watch']")
        assert shop.text_content("#shown-count") == "Showing 1 of 8 kilts"
        assert shop.locator(".product:visible h3").all_text_contents() == [
            "Black Watch utility kilt"
        ]
        for variant, page in pages.items():
            wait_queue_empty(page)
            page.screenshot(path=str(artifacts_dir / f"sdk-shop-{variant}.png"), full_page=True)
            assert page.console_errors == []
            assert page.outside_requests == []
        assert results(live_server.url)["srm"]["visitors"] == {"control": 1, "filters": 1}
    finally:
        for page in pages.values():
            page.context.close()


def test_site_id_and_several_experiments_in_one_request(live_server: LiveServer, page: Any) -> None:
    start_experiment(live_server.url)
    second = {
        **BUYAKILT.definition,
        "key": "checkout-button",
        "variants": [
            {"key": "green", "weight": 0.2},
            {"key": "blue", "weight": 0.3},
            {"key": "orange", "weight": 0.5},
        ],
    }
    start_experiment(live_server.url, second)
    page.goto(live_server.url + "/demo/shop")
    shown_variant(page)
    wait_queue_empty(page)
    assign_posts: list[str] = []

    def count_assign(request: Any) -> None:
        if request.url.endswith("/v1/assign"):
            assign_posts.append(request.url)

    page.on("request", count_assign)

    answer = page.evaluate(
        """async () => {
            abacus.init({ visitorId: "customer-4711", mode: "server" });
            return [abacus.visitorId(),
                    await abacus.assign(["buyakilt-filters", "checkout-button"]),
                    await abacus.assign("checkout-button")];
        }"""
    )
    expected = {
        "buyakilt-filters": hash_variant("customer-4711"),
        "checkout-button": _variant_of(second, "customer-4711"),
    }
    assert answer == ["customer-4711", expected, expected["checkout-button"]]
    assert len(assign_posts) == 1  # one request for both; the repeat is answered from memory

    # An unknown key is answered null, the others still from the hash; nothing throws.
    mixed = page.evaluate(
        """async () => {
            abacus.init({ visitorId: "customer-4712" });
            return await abacus.assign(["buyakilt-filters", "no-such-experiment"]);
        }"""
    )
    assert mixed == {"buyakilt-filters": hash_variant("customer-4712"), "no-such-experiment": None}
    wait_queue_empty(page)
    visitors = results(live_server.url)["srm"]["visitors"]
    assert sum(visitors.values()) == 3  # the cookie visitor and both site ids
    # The browser logs the 404 of the mixed request (unknown key); nothing else went wrong.
    assert len(page.console_errors) == 1 and "404" in page.console_errors[0], page.console_errors
    assert page.outside_requests == []


def _variant_of(definition: dict[str, Any], visitor_id: str) -> str | None:
    experiment = Experiment.model_validate({**definition, "status": "running"})
    return decide(experiment, visitor_id).variant


def test_an_event_tracked_while_the_page_unloads_still_arrives(
    live_server: LiveServer, page: Any
) -> None:
    start_experiment(live_server.url)
    page.goto(live_server.url + "/demo/shop")
    variant = shown_variant(page)
    wait_queue_empty(page)
    # Track and navigate away in the same task, with the request held back until the document
    # is gone: only a keepalive request (or a beacon) outlives the page that sent it.
    from playwright.sync_api import Error as PlaywrightError

    def hold_back(route: Any) -> None:
        time.sleep(0.5)
        with contextlib.suppress(PlaywrightError):  # cancelled with its page: the event is lost
            route.continue_()

    page.route("**/v1/track*", hold_back)
    page.evaluate(
        """() => {
            abacus.track("purchase", { value: 12.5 });
            location.replace("about:blank");
        }"""
    )
    page.wait_for_url("about:blank")
    wait_until(lambda: totals(results(live_server.url), "revenue")[variant] == 12.5)
    assert totals(results(live_server.url), "orders")[variant] == 1
    assert page.console_errors == []
    assert page.outside_requests == []


# -- a Redis outage -----------------------------------------------------------------------------


@pytest.fixture
def outage_stack(
    tmp_path: Path,
) -> Iterator[tuple[LiveServer, Callable[[], None], Callable[[], None]]]:
    """A service on its own persistent Redis that the test can stop and restart on one port."""
    data_dir = tmp_path / "redis"
    port = free_port()
    redis_box = [EmbeddedRedis(data_dir, port=port, persist=True).start()]
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_box[0].url,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
            "ABACUS_KEY_PREFIX": "outage",
        }
    ).start()

    def stop() -> None:
        redis_box[0].stop()

    def restart() -> None:
        redis_box[0] = EmbeddedRedis(data_dir, port=port, persist=True).start()

    try:
        yield server, stop, restart
    finally:
        server.stop()
        redis_box[0].stop()


def test_redis_outage_page_renders_from_the_hash_and_queued_events_arrive_once(
    outage_stack: tuple[LiveServer, Callable[[], None], Callable[[], None]],
    page: Any,
    artifacts_dir: Path,
) -> None:
    server, stop_redis, restart_redis = outage_stack
    start_experiment(server.url)
    assert httpx.get(server.url + "/v1/definitions").status_code == 200  # service has them cached

    stop_redis()
    assert httpx.get(server.url + "/healthz").status_code == 503
    page.goto(server.url + "/demo/shop")
    variant = shown_variant(page)
    visitor_id = visitor_cookie(page)
    assert variant == hash_variant(visitor_id)
    page.wait_for_function("abacus.pending() === 1")  # the exposure could not be stored
    page.locator(".add-to-cart").nth(1).click()  # 399.00
    page.click("#checkout")
    page.wait_for_selector("#message:has-text('queued')")
    assert page.evaluate("abacus.pending()") == 3

    # Still down, now asking the server: it answers from the hash, marked as not recorded.
    page.goto(server.url + "/demo/shop?mode=server")
    assert shown_variant(page) == variant
    assert page.is_visible("#filters") is (variant == "filters")
    page.wait_for_function(
        "() => document.querySelector('#queue').textContent === '3'"
    )  # the new page's exposure joined the queued one instead of adding another
    page.screenshot(path=str(artifacts_dir / "sdk-shop-redis-down.png"), full_page=True)
    queued = page.evaluate("JSON.parse(localStorage.getItem('abacus:queue:' + location.origin))")
    assert [item["kind"] for item in queued] == ["exposure", "event", "event"]

    restart_redis()
    wait_queue_empty(page, timeout_ms=45_000)  # delivered by the SDK's own retry timer
    read_out = results(server.url)
    assert read_out["srm"]["visitors"][variant] == 1
    assert sum(read_out["srm"]["visitors"].values()) == 1
    assert totals(read_out, "conversion")[variant] == 1
    assert totals(read_out, "revenue")[variant] == 399.0
    assert totals(read_out, "cart_visits")[variant] == 1

    # Delivering the same events again (a retry whose answer was lost) counts nothing twice.
    events = [
        {
            "visitor_id": item["visitor_id"],
            "event": item["event"],
            "event_id": item["id"],
            **({"value": item["value"]} if "value" in item else {}),
        }
        for item in queued
        if item["kind"] == "event"
    ]
    again = httpx.post(server.url + "/v1/track/batch", json={"events": events})
    assert again.status_code == 200, again.text
    assert [r["duplicate"] for r in again.json()] == [[KEY], [KEY]]
    assert results(server.url)["metrics"] == read_out["metrics"]

    assert page.console_errors == []
    assert page.outside_requests == []


# -- CORS ---------------------------------------------------------------------------------------


class HostSite:
    """Another site on 127.0.0.1 (its own port, so its own origin) whose page embeds the SDK."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _host_page(api: str) -> str:
    return (
        '<!doctype html><html><head><link rel="icon" href="data:,"><title>shop</title>'
        f'<script src="{api}/sdk.js"></script></head><body>'
        '<script>abacus.init({ mode: "server" });</script></body></html>'
    )


@pytest.fixture
def cors_stack(redis_url: str, key_prefix: str) -> Iterator[tuple[LiveServer, HostSite, HostSite]]:
    """The service allowing one other site to call its public API, that site, and a stranger."""
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_url,
            "ABACUS_KEY_PREFIX": key_prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    )
    allowed, stranger = HostSite(_host_page(server.url)), HostSite(_host_page(server.url))
    server.env = {**server.env, "ABACUS_CORS_ORIGINS": allowed.origin}
    try:
        server.start()
        yield server, allowed, stranger
    finally:
        server.stop()
        allowed.close()
        stranger.close()


def test_cors_lets_the_allowed_site_use_the_public_api_and_nobody_reach_the_admin_api(
    cors_stack: tuple[LiveServer, HostSite, HostSite], page: Any, browser: Any
) -> None:
    server, allowed, stranger = cors_stack
    start_experiment(server.url)
    page.goto(allowed.origin + "/kilts")
    outcome = page.evaluate(
        """async ([api, key]) => {
            const variant = await abacus.assign("buyakilt-filters");
            const delivered = await abacus.track("purchase", { value: 20 });
            const tryFetch = async (headers) => {
                try {
                    const r = await fetch(api + "/v1/experiments", { headers });
                    return "status " + r.status;
                } catch (e) {
                    return "blocked";
                }
            };
            return {
                visitor: abacus.visitorId(), variant, delivered,
                withKey: await tryFetch({ Authorization: "Bearer " + key }),
                withoutKey: await tryFetch({}),
            };
        }""",
        [server.url, ADMIN_KEY],
    )
    assert outcome["variant"] == hash_variant(outcome["visitor"])
    assert outcome["delivered"] is True
    assert outcome["withKey"] == "blocked"  # the preflight refuses the Authorization header
    # the admin API answers no CORS at all, so another site cannot even read its status
    assert outcome["withoutKey"] == "blocked"
    read_out = results(server.url)
    assert totals(read_out, "revenue")[outcome["variant"]] == 20.0
    # The browser logs the refused admin calls, and nothing else went wrong.
    assert page.console_errors, "the refused admin calls should be logged by the browser"
    assert all(
        "/v1/experiments" in e or e.startswith("Failed to load resource")
        for e in page.console_errors
    ), page.console_errors
    assert page.outside_requests == []

    # A site that is not allowed gets no answer, and its page does not break either.
    context = browser.new_context()
    try:
        other = watch(context.new_page())
        other.goto(stranger.origin + "/kilts")
        blocked = other.evaluate(
            """async () => [await abacus.assign("buyakilt-filters"),
                            await abacus.track("purchase", { value: 5 }),
                            abacus.pending()]"""
        )
        assert blocked == [None, False, 1]  # no answer; the event stays queued for a later page
        assert other.console_errors, "the browser should log the blocked requests"
        assert all("CORS" in e or "Failed to load" in e for e in other.console_errors)
        assert other.outside_requests == []
    finally:
        context.close()
    assert results(server.url)["srm"]["visitors"] == read_out["srm"]["visitors"]
