"""People and access in a real headless Chromium against the live service.

A share link opens its one report (charts and verdict, nothing to click into the service) and
nothing else: the dashboard, another report and the API answer the sign-in page or 401. A
viewer signs in with their key through the sign-in form and reads the dashboard and reports.
A form posted from another site's page (another host, or another port of this one) changes
nothing; a revoked key's and a logged-out session's next request gets 401.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from experiments.definitions import Experiment, Status, transition
from experiments.store import Store, TrackEvent
from service.api.auth import SESSION_COOKIE
from service.api.principal import csrf_token
from tests.conftest import ADMIN_KEY, LiveServer, RedisTarget
from tests.e2e.conftest import assert_clean, serve_prefix

pytestmark = pytest.mark.browser

PREFIX = "e2e-access"
SHARED = {
    "key": "shared-filters",
    "name": "Filters on category pages",
    "hypothesis": "Filters help shoppers find a kilt",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "filters", "weight": 0.5}],
    "metrics": [{"name": "orders", "kind": "conversion", "event": "purchase", "primary": True}],
}
PRIVATE = {**SHARED, "key": "private-pricing", "name": "Secret pricing test"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _load(store: Store) -> None:
    now = time.time()
    for definition in (SHARED, PRIVATE):
        started = transition(Experiment.model_validate(definition), Status.RUNNING, now=now - 86400)
        experiment = await store.create_experiment(started)
        start_ms = int((now - 86400) * 1000)
        for i in range(400):
            await store.record_exposure(experiment, f"v{i}", i % 2, now_ms=start_ms)
        events = [
            TrackEvent(f"v{i}", "purchase", 0.0, "0.0", start_ms + 60_000)
            for i in range(0, 400, 7 if definition is SHARED else 9)
        ]
        await store.track([experiment], events)


@pytest.fixture(scope="module")
def service(redis_server: RedisTarget) -> Iterator[LiveServer]:
    with serve_prefix(redis_server.url, PREFIX, _load) as server:
        yield server


def _key(service: LiveServer, name: str, role: str) -> dict[str, Any]:
    response = httpx.post(
        f"{service.url}/v1/keys", json={"name": name, "role": role}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _sign_in(page: Any, service: LiveServer, secret: str) -> None:
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"{service.url}/login?next=/")
    assert "admin key" not in page.locator("main").inner_text().lower()
    page.fill('input[name="key"]', secret)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{service.url}/")


def _shows_sign_in(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert "/login?next=" in page.url
    assert page.locator("h1").inner_text() == "Sign in to Abacus"
    text = page.locator("main").inner_text()
    assert "Secret pricing test" not in text and "Filters on category pages" not in text


def test_a_share_link_opens_one_report_and_nothing_else(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    response = httpx.post(
        f"{service.url}/v1/experiments/{SHARED['key']}/share-links",
        json={"expires_in_seconds": 3600},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    link = response.json()
    page.set_viewport_size({"width": 1200, "height": 900})
    opened = page.goto(service.url + link["url"])
    assert opened is not None and opened.status == 200
    assert page.locator("h1").inner_text().startswith("Filters on category pages")
    assert page.locator("#verdict .badge").is_visible()
    charts = page.locator("svg.chart")
    assert charts.count() >= 1 and charts.first.is_visible()
    # read-only: no form, no button, no link into the service
    assert page.locator("form, button, [data-change], #history").count() == 0
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(("?", "#")) for h in hrefs), hrefs
    page.screenshot(path=str(artifacts_dir / "share-link.png"), full_page=True)
    assert_clean(page)
    # it grants nothing else
    _shows_sign_in(page, service.url + "/")
    _shows_sign_in(page, f"{service.url}/experiments/{PRIVATE['key']}")
    _shows_sign_in(page, f"{service.url}/experiments/{SHARED['key']}")
    api = page.goto(f"{service.url}/v1/experiments")
    assert api is not None and api.status == 401
    assert "private-pricing" not in page.content()
    # revoked: the same link shows no report any more
    revoke = httpx.delete(
        f"{service.url}/v1/experiments/{SHARED['key']}/share-links/{link['id']}", headers=ADMIN
    )
    assert revoke.status_code == 204
    gone = page.goto(service.url + link["url"])
    assert gone is not None and gone.status == 410
    assert "Filters on category pages" not in page.locator("main").inner_text()


def test_a_viewer_signs_in_and_reads_but_cannot_change(
    service: LiveServer, page: Any, artifacts_dir: Path
) -> None:
    viewer = _key(service, "board member", "viewer")
    _sign_in(page, service, viewer["key"])
    rows = page.locator("tr[data-experiment]")
    assert rows.count() == 2
    page.click(f'a[href="/experiments/{SHARED["key"]}"]')
    page.wait_for_url(f"**/experiments/{SHARED['key']}")
    assert page.locator("#verdict .badge").is_visible()
    assert page.locator("#history").is_visible()
    assert page.locator("[data-change]").count() == 0  # no share form for a viewer
    page.screenshot(path=str(artifacts_dir / "report-viewer.png"), full_page=True)
    assert_clean(page)
    # the session cannot change anything through the API, nor can the key itself
    from_session = page.request.post(
        f"{service.url}/v1/experiments", data={**SHARED, "key": "viewer-made"}
    )
    assert from_session.status == 401
    with_key = httpx.post(
        f"{service.url}/v1/experiments",
        json={**SHARED, "key": "viewer-made"},
        headers={"Authorization": f"Bearer {viewer['key']}"},
    )
    assert with_key.status_code == 403 and "'editor'" in with_key.json()["message"]
    form = page.request.post(
        f"{service.url}/experiments/{SHARED['key']}/share-links",
        form={"csrf_token": "x", "expires_in_days": "7"},
    )
    assert form.status == 403
    assert httpx.get(f"{service.url}/v1/experiments/viewer-made", headers=ADMIN).status_code == 404


def _session_token(page: Any) -> str:
    """The CSRF token of the page's session, derived by the service's own function."""
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    scope = {"type": "http", "headers": [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())]}
    return csrf_token(Request(scope))


def test_a_viewer_sees_no_change_control_and_the_page_forms_refuse_them(
    service: LiveServer, page: Any
) -> None:
    editor = _key(service, "marketer", "editor")
    _sign_in(page, service, editor["key"])
    editor_dashboard = page.locator("[data-change]").count()
    page.goto(f"{service.url}/experiments/{SHARED['key']}")
    editor_report = page.locator("[data-change]").count()
    assert editor_dashboard >= 1 and editor_report >= 3  # the control: an editor has them
    page.context.clear_cookies()
    viewer = _key(service, "analyst", "viewer")
    _sign_in(page, service, viewer["key"])
    assert page.locator("[data-change]").count() == 0
    page.goto(f"{service.url}/experiments/{SHARED['key']}")
    assert page.locator("#verdict .badge").is_visible()
    assert page.locator("[data-change]").count() == 0
    token = _session_token(page)
    key = SHARED["key"]
    posts = {
        "/new": {"key": "viewer-form", "name": "x"},
        f"/experiments/{key}/edit": {"name": "renamed"},
        f"/experiments/{key}/status": {"action": "pause", "confirm": "yes"},
        f"/experiments/{key}/coverage": {"coverage": "0.5"},
        f"/experiments/{key}/archive": {"archived": "true"},
        f"/experiments/{key}/delete": {"confirm": "yes"},
    }
    before = httpx.get(f"{service.url}/v1/experiments/{key}", headers=ADMIN).json()
    for path, fields in posts.items():
        answer = page.request.post(service.url + path, form={"csrf_token": token, **fields})
        assert answer.status == 403, (path, answer.status, answer.text())
        assert "'editor'" in answer.text(), path
    assert page.request.get(f"{service.url}/new").status == 403
    after = httpx.get(f"{service.url}/v1/experiments/{key}", headers=ADMIN).json()
    assert after == before


def _attack(page: Any, service: LiveServer, origin: str) -> None:
    """Open a page on ``origin`` whose form posts to the service's share form."""
    target = f"{service.url}/experiments/{SHARED['key']}/share-links"
    html = (
        f'<form method="post" action="{target}"><input name="expires_in_days" value="7">'
        '<button id="go">Win a prize</button></form>'
    )
    page.route(
        f"{origin}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )
    page.goto(f"{origin}/prize")
    with page.expect_navigation() as navigation:
        page.click("#go")
    response = navigation.value
    assert response is not None and response.status == 403, response.status
    assert "Origin" in response.text() and origin in response.text()


def test_a_form_from_another_site_changes_nothing(service: LiveServer, page: Any) -> None:
    editor = _key(service, "growth", "editor")
    _sign_in(page, service, editor["key"])
    links = f"{service.url}/v1/experiments/{SHARED['key']}/share-links"
    before = httpx.get(links, headers=ADMIN).json()
    _attack(page, service, "http://evil.example")
    _attack(page, service, "http://127.0.0.1:9")  # same site, another port: the cookie goes too
    assert httpx.get(links, headers=ADMIN).json() == before
    # the editor's own report page makes a link with the same session
    page.goto(f"{service.url}/experiments/{SHARED['key']}")
    with page.expect_navigation() as navigation:
        page.click("form.share-form button")
    made = navigation.value
    assert made is not None and made.status == 201
    assert "/share/" in page.locator("#share-url").inner_text()
    assert len(httpx.get(links, headers=ADMIN).json()) == len(before) + 1


def test_a_revoked_key_and_a_logged_out_session_get_401(service: LiveServer, page: Any) -> None:
    editor = _key(service, "leaver", "editor")
    _sign_in(page, service, editor["key"])
    assert page.request.get(f"{service.url}/v1/experiments").status == 200
    revoked = httpx.delete(f"{service.url}/v1/keys/{editor['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    assert page.request.get(f"{service.url}/v1/experiments").status == 401
    _shows_sign_in(page, f"{service.url}/experiments/{SHARED['key']}")
    bearer = {"Authorization": f"Bearer {editor['key']}"}
    assert httpx.get(f"{service.url}/v1/experiments", headers=bearer).status_code == 401

    viewer = _key(service, "reader", "viewer")
    page.context.clear_cookies()
    _sign_in(page, service, viewer["key"])
    cookies = page.context.cookies()
    page.goto(f"{service.url}/experiments/{SHARED['key']}")
    page.click("#sign-out button")  # the button every signed-in page shows
    page.wait_for_url("**/login")
    page.context.add_cookies(cookies)  # a copy of the cookie kept from before signing out
    assert page.request.get(f"{service.url}/v1/experiments").status == 401
    _shows_sign_in(page, service.url + "/")
