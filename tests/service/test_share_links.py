"""Share links open one report read-only, expire, can be revoked, and grant nothing else.

Also the report page's share form, the one change a browser session makes on this page: it
needs the session's CSRF token and the service's own origin, and a dead session gets 401.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from experiments.audit import AuditActor, AuditEntry
from experiments.store import ShareLinkRecord, Store
from service import sharing
from service.api.auth import SESSION_COOKIE
from service.api.principal import csrf_token
from tests.conftest import StoreRunner
from tests.service.conftest import AUTH, BUYAKILT
from tests.service.test_access import _sign_in as sign_in
from tests.service.test_bad_input import _assert_error
from tests.service.test_keys import bearer, make_key

KEY = BUYAKILT["key"]
OTHER = {**BUYAKILT, "key": "other-test", "name": "A second experiment"}


@pytest.fixture
def two(client: TestClient) -> TestClient:
    for definition in (BUYAKILT, OTHER):
        assert client.post("/v1/experiments", json=definition, headers=AUTH).status_code == 201
    return client


def _make(client: TestClient, headers: dict[str, str] = AUTH, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/experiments/{KEY}/share-links", json=body, headers=headers)
    assert response.status_code == 201, response.text
    link: dict[str, Any] = response.json()
    return link


def _no_service_links(html: str) -> None:
    hrefs = re.findall(r'(?:href|action)="([^"]*)"', html)
    assert all(h.startswith(("?", "#", "data:")) for h in hrefs), hrefs
    assert "<form" not in html and "data-change" not in html and 'id="history"' not in html


def test_a_share_link_opens_its_report_and_nothing_else(two: TestClient) -> None:
    before = time.time()
    link = _make(two)
    assert set(link) == {"id", "url", "experiment", "created_at", "created_by", "expires_at"} | {
        "expired",
        "generation",
    }
    assert link["url"].startswith("/share/") and link["created_by"] == "admin"
    assert before + 7 * 86400 - 2 <= link["expires_at"] <= time.time() + 7 * 86400  # the default
    anonymous = two  # no key header, no session cookie
    page = anonymous.get(link["url"])
    assert page.status_code == 200
    assert "Product filters on category pages" in page.text
    assert "svg" in page.text or "Not enough data" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    _no_service_links(page.text)
    # nothing else opens: not the dashboard, not another report, not the API
    assert anonymous.get("/", follow_redirects=False).status_code == 303
    other = anonymous.get(f"/experiments/{OTHER['key']}", follow_redirects=False)
    assert other.status_code == 303 and other.headers["location"].startswith("/login")
    assert anonymous.get(f"/experiments/{KEY}", follow_redirects=False).status_code == 303
    _assert_error(anonymous.get("/v1/experiments"), 401, "Bearer")
    _assert_error(anonymous.get(f"/v1/experiments/{KEY}/results"), 401, "Bearer")
    # the token in a header or cookie is no key either
    token = link["url"].removeprefix("/share/")
    _assert_error(anonymous.get("/v1/experiments", headers=bearer(token)), 401, "Bearer")


def test_a_forged_token_is_404_and_never_the_report(two: TestClient) -> None:
    link = _make(two)
    token = link["url"].removeprefix("/share/")
    link_id, experiment, expires, signature = token.split(".")
    anonymous = two  # no key header, no session cookie
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (
        f"{link_id}.{OTHER['key']}.{expires}.{signature}",  # another experiment, same signature
        f"{link_id}.{experiment}.{int(expires) + 86400}.{signature}",  # a longer life
        f"{link_id}.{experiment}.{expires}.{flipped}",
        "not-a-token",
        token + "x",
    ):
        page = anonymous.get(f"/share/{forged}")
        assert page.status_code == 404, forged
        assert "No such share link" in page.text and "Product filters" not in page.text


def test_a_revoked_link_is_410_at_once(two: TestClient) -> None:
    link = _make(two)
    other = _make(two, expires_in_seconds=3600)
    listed = two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json()
    assert [x["id"] for x in listed] == [link["id"], other["id"]]
    assert listed[0]["url"] == link["url"] and listed[0]["expired"] is False
    anonymous = two  # no key header, no session cookie
    assert anonymous.get(link["url"]).status_code == 200
    response = two.delete(f"/v1/experiments/{KEY}/share-links/{link['id']}", headers=AUTH)
    assert response.status_code == 204, response.text
    page = anonymous.get(link["url"])
    assert page.status_code == 410 and "revoked" in page.text and "Product filters" not in page.text
    assert anonymous.get(other["url"]).status_code == 200  # the other link still works
    again = two.delete(f"/v1/experiments/{KEY}/share-links/{link['id']}", headers=AUTH)
    _assert_error(again, 404, link["id"])
    wrong = two.delete(f"/v1/experiments/{OTHER['key']}/share-links/{other['id']}", headers=AUTH)
    _assert_error(wrong, 404, other["id"], OTHER["key"])


def test_an_expired_link_is_410(two: TestClient, store: StoreRunner) -> None:
    """A link whose expiry has passed (stored and signed as the service does)."""
    now = time.time()
    record = ShareLinkRecord(
        id=sharing.new_id(),
        experiment=KEY,
        generation=1,
        created_at=now - 7200,
        expires_at=float(int(now - 1)),
        created_by="admin",
    )
    actor = AuditActor(name="admin", role="admin", key_id=None)
    audit = AuditEntry(
        at=now, actor=actor, action="share_link.create", experiment=KEY, before=None, after=None
    )

    async def add(s: Store) -> str:
        assert await s.add_share_link(record, audit)
        return sharing.url_of(await sharing.workspace_secret(s), record)

    url = store(add)
    page = two.get(url)
    assert page.status_code == 410 and "expired" in page.text and "Product filters" not in page.text
    listed = two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json()
    assert [x["expired"] for x in listed] == [True]


def test_the_workspace_secret_is_made_once(store: StoreRunner) -> None:
    async def work(s: Store) -> tuple[str, str]:
        return await s.workspace_secret("first"), await s.workspace_secret("second")

    assert store(work) == ("first", "first")


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ({"expires_in_seconds": 3599}, 3599),
        ({"expires_in_seconds": 90 * 86400 + 1}, 90 * 86400 + 1),
        ({"expires_in_seconds": "3600"}, "3600"),
        ({"expires_in_seconds": 3600.5}, 3600.5),
    ],
)
def test_the_lifetime_is_bounded(two: TestClient, body: dict[str, Any], value: Any) -> None:
    response = two.post(f"/v1/experiments/{KEY}/share-links", json=body, headers=AUTH)
    _assert_error(response, 422, "expires_in_seconds")
    assert response.json()["details"][0]["value"] == value
    assert two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json() == []


def test_links_to_an_unknown_or_deleted_experiment(two: TestClient) -> None:
    response = two.post("/v1/experiments/nope/share-links", json={}, headers=AUTH)
    _assert_error(response, 404, "nope")
    link = _make(two, expires_in_seconds=3600)
    assert two.delete(f"/v1/experiments/{KEY}", headers=AUTH).status_code == 204
    page = two.get(link["url"])
    assert page.status_code == 404 and "deleted" in page.text
    # a new experiment under the same key is not what the link was made for
    renamed = {**BUYAKILT, "name": "Someone else's test"}
    assert two.post("/v1/experiments", json=renamed, headers=AUTH).status_code == 201
    page = two.get(link["url"])
    assert page.status_code == 404 and "Someone else" not in page.text
    assert two.get(_make(two)["url"]).status_code == 200


def test_editors_make_links_and_viewers_may_not(two: TestClient) -> None:
    editor = bearer(make_key(two, "growth", "editor")["key"])
    link = _make(two, headers=editor)
    assert link["created_by"] == "growth"
    viewer = bearer(make_key(two, "board", "viewer")["key"])
    for method, path in (
        ("POST", f"/v1/experiments/{KEY}/share-links"),
        ("GET", f"/v1/experiments/{KEY}/share-links"),
        ("DELETE", f"/v1/experiments/{KEY}/share-links/{link['id']}"),
    ):
        response = two.request(method, path, json={}, headers=viewer)
        _assert_error(response, 403, "'editor'", "'viewer'")


# -- the report page's share form: CSRF ----------------------------------------------------------


def _form(client: TestClient, **fields: str) -> Any:
    return client.post(f"/experiments/{KEY}/share-links", data=fields, follow_redirects=False)


def _session_token(client: TestClient, secret: str) -> str:
    sign_in(client, secret)
    page = client.get(f"/experiments/{KEY}")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert match is not None, "the report of an editor's session carries the share form"
    return match.group(1)


def test_the_share_form_needs_the_sessions_csrf_token(two: TestClient) -> None:
    secret = make_key(two, "growth", "editor")["key"]
    token = _session_token(two, secret)
    _assert_error(_form(two, expires_in_days="7"), 403, "csrf_token")  # missing
    _assert_error(_form(two, csrf_token="0" * 64, expires_in_days="7"), 403, "csrf_token")
    # a token of another session is no good either
    mine = dict(two.cookies)
    two.cookies.clear()
    other_token = _session_token(two, secret)
    assert other_token != token
    two.cookies.clear()
    two.cookies.update(mine)
    _assert_error(_form(two, csrf_token=other_token, expires_in_days="7"), 403, "csrf_token")
    made = _form(two, csrf_token=token, expires_in_days="30")
    assert made.status_code == 201, made.text
    url = re.search(r'id="share-url">[^<]*(/share/[^<]+)</code>', made.text)
    assert url is not None
    assert two.get(url.group(1)).status_code == 200
    listed = two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json()
    assert len(listed) == 1 and listed[0]["created_by"] == "growth"
    assert 29 * 86400 < listed[0]["expires_at"] - listed[0]["created_at"] <= 30 * 86400
    bad = _form(two, csrf_token=token, expires_in_days="365")
    _assert_error(bad, 422, "expires_in_days", "365")


def test_the_share_form_refuses_another_sites_origin(two: TestClient) -> None:
    secret = make_key(two, "growth", "editor")["key"]
    token = _session_token(two, secret)
    form = {"csrf_token": token, "expires_in_days": "7"}
    for origin, host in (
        ("https://evil.example", "testserver"),
        ("null", "testserver"),
        # another port of the same host is another site's page, though cookies go with it
        ("http://127.0.0.1:9", "127.0.0.1:8000"),
    ):
        headers = {"Origin": origin, "Host": host}
        response = two.post(f"/experiments/{KEY}/share-links", data=form, headers=headers)
        _assert_error(response, 403, "Origin", origin)
    assert two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json() == []
    own = {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}
    response = two.post(f"/experiments/{KEY}/share-links", data=form, headers=own)
    assert response.status_code == 201, response.text


def test_a_viewer_session_gets_no_share_form_and_its_post_is_403(two: TestClient) -> None:
    secret = make_key(two, "board", "viewer")["key"]
    sign_in(two, secret)
    page = two.get(f"/experiments/{KEY}")
    assert page.status_code == 200 and "Make share link" not in page.text
    assert 'id="history"' in page.text
    cookie = f"{SESSION_COOKIE}={two.cookies[SESSION_COOKIE]}"
    token = csrf_token(Request({"type": "http", "headers": [(b"cookie", cookie.encode())]}))
    _assert_error(_form(two, csrf_token=token, expires_in_days="7"), 403, "'editor'", "'viewer'")


def test_a_logged_out_or_revoked_session_gets_401_on_the_form(two: TestClient) -> None:
    created = make_key(two, "growth", "editor")
    token = _session_token(two, created["key"])
    cookies = dict(two.cookies)
    two.post("/logout")
    two.cookies.update(cookies)
    _assert_error(_form(two, csrf_token=token, expires_in_days="7"), 401)
    two.cookies.clear()
    token = _session_token(two, created["key"])
    assert two.delete(f"/v1/keys/{created['id']}", headers=AUTH).status_code == 204
    _assert_error(_form(two, csrf_token=token, expires_in_days="7"), 401)
    assert two.get(f"/v1/experiments/{KEY}/share-links", headers=AUTH).json() == []
