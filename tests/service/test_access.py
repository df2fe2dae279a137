"""Who may reach what: hosts, origins, keys, sessions, sign-in limits, page headers, docs.

Each case here was a defect once: with no admin key any website could create and read
experiments (CORS ``*`` on the admin routes, no Host check against DNS rebinding), ``/metrics``
needed no key, any key was accepted (even one space), the session cookie was a fixed HMAC of
the key that logout could not revoke, ``/login`` had no rate limit, pages sent no security
headers, ``/docs`` came from a CDN, OpenAPI left out real error answers and 405s named the
wrong methods.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from experiments.keys import Keyspace
from experiments.store import Store, connect
from service.api.app import create_app
from service.api.auth import (
    LOGIN_MAX_FAILURES,
    SESSION_COOKIE,
    SESSION_SECONDS,
    AdminKey,
    close_sessions,
)
from service.loops import run_sync
from service.settings import Settings
from tests.conftest import ADMIN_KEY, RedisTarget
from tests.service.conftest import AUTH, BUYAKILT
from tests.service.test_bad_input import _assert_error, _snapshot

EVIL = "https://evil.example"


@pytest.fixture
def open_client(settings: Settings) -> Iterator[TestClient]:
    """The service as the README starts it: no admin key, reached on loopback."""
    with TestClient(
        create_app(replace(settings, admin_key=None)), base_url="http://127.0.0.1:8000"
    ) as client:
        yield client


def test_without_a_key_another_site_can_neither_preflight_nor_post_admin_changes(
    open_client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    before = _snapshot(redis_server, key_prefix)
    preflight = open_client.options(
        "/v1/experiments",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code != 200
    assert "access-control-allow-origin" not in preflight.headers
    post = open_client.post("/v1/experiments", json=BUYAKILT, headers={"Origin": EVIL})
    _assert_error(post, 403, "Origin", "evil.example")
    assert _snapshot(redis_server, key_prefix) == before
    listed = open_client.get("/v1/experiments", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in listed.headers
    # the service's own pages may still post (the sign-in form, same origin)
    own = open_client.post(
        "/v1/experiments", json=BUYAKILT, headers={"Origin": "http://127.0.0.1:8000"}
    )
    assert own.status_code == 201, own.text


def test_public_routes_keep_cors(open_client: TestClient) -> None:
    preflight = open_client.options(
        "/v1/track",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    health = open_client.get("/healthz", headers={"Origin": EVIL})
    assert health.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io"])
def test_without_a_key_only_loopback_host_names_are_answered(
    open_client: TestClient, host: str
) -> None:
    for path in ("/v1/experiments", "/healthz", "/"):
        response = open_client.get(path, headers={"Host": host})
        _assert_error(response, 400, "Host", host.split(":")[0], "ABACUS_ALLOWED_HOSTS")
    for good in ("127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST:1"):
        assert open_client.get("/healthz", headers={"Host": good}).status_code == 200, good


def test_configured_hosts_are_the_only_ones_answered(settings: Settings) -> None:
    app = create_app(replace(settings, allowed_hosts=("abacus.example.com",)))
    with TestClient(app, base_url="http://abacus.example.com") as client:
        assert client.get("/healthz").status_code == 200
        _assert_error(client.get("/healthz", headers={"Host": "127.0.0.1"}), 400, "Host")
    assert Settings.from_env({"ABACUS_ALLOWED_HOSTS": "a.example, B.example"}).hosts == (
        "a.example",
        "b.example",
    )
    assert Settings.from_env({"ABACUS_ADMIN_KEY": ADMIN_KEY}).hosts == ("*",)


def test_metrics_need_the_key(client: TestClient) -> None:
    _assert_error(client.get("/metrics"), 401, "Authorization: Bearer")
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert "abacus_" in response.text


@pytest.mark.parametrize("key", [" ", "short", "x" * 15, "sixteen chars ok", "tab\tin-the-key-xx"])
def test_short_or_blank_admin_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="at least 16 printable characters without spaces"):
        Settings.from_env({"ABACUS_ADMIN_KEY": key})
    with pytest.raises(ValueError, match="ABACUS_ADMIN_KEY"):
        Settings(admin_key=key)
    assert Settings(admin_key="x" * 16).admin_key == "x" * 16


def test_the_key_is_compared_as_a_digest() -> None:
    key = AdminKey.of(ADMIN_KEY)
    assert key.matches(ADMIN_KEY)
    assert not key.matches(ADMIN_KEY + " ")
    assert not key.matches("")
    assert ADMIN_KEY.encode() not in key.digest and ADMIN_KEY not in key.id


def _sign_in(client: TestClient, key: str = ADMIN_KEY) -> str:
    response = client.post("/login", data={"key": key, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    match = re.search(rf"{SESSION_COOKIE}=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    return match.group(1).strip('"')


def test_sessions_are_random_server_side_and_revoked_by_logout(
    client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    first = _sign_in(client)
    client.cookies.clear()
    second = _sign_in(client)
    assert first != second  # random, not a function of the key
    for cookie in (first, second):
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/", follow_redirects=False).status_code == 200
    # the session expires server-side
    ttls = [
        c.pttl(k)
        for c in redis_server.masters()
        for k in c.scan_iter(match=f"{key_prefix}:{{_auth:*}}:s:*")
    ]
    assert len(ttls) == 2 and all(0 < t <= SESSION_SECONDS * 1000 for t in ttls), ttls
    client.cookies.set(SESSION_COOKIE, second)
    client.post("/logout")
    client.cookies.set(SESSION_COOKIE, second)  # a copy of the cookie kept after logout
    assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, first)  # another session of the key is still open
    assert client.get("/", follow_redirects=False).status_code == 200
    client.cookies.set(SESSION_COOKIE, "0" * 16 + "." + "A" * 43)  # a made-up one
    assert client.get("/", follow_redirects=False).status_code == 303


def test_every_session_of_a_key_can_be_closed_at_once(
    client: TestClient, settings: Settings, redis_server: RedisTarget, key_prefix: str
) -> None:
    cookies = [_sign_in(client) for _ in range(3)]

    async def close_all() -> None:
        store_client = connect(redis_server.url, cluster=redis_server.cluster)
        try:
            await close_sessions(Store(store_client, Keyspace(key_prefix)), AdminKey.of(ADMIN_KEY))
        finally:
            await store_client.aclose()

    run_sync(close_all)
    for cookie in cookies:
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    _sign_in(client)  # a new session after that works
    assert client.get("/", follow_redirects=False).status_code == 200


def test_sign_in_is_rate_limited_per_client(client: TestClient) -> None:
    for _ in range(LOGIN_MAX_FAILURES - 1):
        wrong = client.post("/login", data={"key": "guess-guess-guess", "next": "/"})
        assert wrong.status_code == 401
    limited = client.post("/login", data={"key": "guess-guess-guess", "next": "/"})
    _assert_error(limited, 429, "too many failed sign-ins", str(LOGIN_MAX_FAILURES))
    assert 1 <= int(limited.headers["retry-after"]) <= 300
    # once limited, even the right key is not looked at until the window ends
    right = client.post("/login", data={"key": ADMIN_KEY, "next": "/"}, follow_redirects=False)
    assert right.status_code == 429
    assert SESSION_COOKIE not in right.headers.get("set-cookie", "")


def test_pages_and_admin_answers_carry_security_headers(client: TestClient) -> None:
    for path in ("/", "/experiments/nope", "/login"):
        response = client.get(path, headers=AUTH)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp  # no script is allowed at all
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    listed = client.get("/v1/experiments", headers=AUTH)
    assert listed.headers["cache-control"] == "no-store"
    # public, cacheable answers keep their own caching
    assert "max-age" in client.get("/sdk.js").headers["cache-control"]


def test_docs_are_served_from_local_assets(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets, page
        for url in assets:
            assert url.startswith("/docs-assets/"), url
            assert client.get(url).status_code == 200, url
        assert "cdn" not in page.lower() and "fonts.googleapis" not in page


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    for method, path, allowed in (
        ("DELETE", "/v1/assign", "GET, HEAD, POST"),
        ("PUT", "/v1/track", "POST"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/v1/experiments/x", "DELETE, GET, PATCH"),
    ):
        response = client.request(method, path, headers=AUTH)
        _assert_error(response, 405, method, allowed)
        assert response.headers["allow"] == allowed, (path, response.headers)


def test_openapi_documents_the_errors_each_route_gives(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/v1/assign", "get"): {"400", "404", "405", "422", "503"},
        ("/v1/assign", "post"): {"400", "404", "405", "413", "422", "503"},
        ("/v1/track", "post"): {"400", "405", "413", "422", "503"},
        ("/v1/track/batch", "post"): {"400", "405", "413", "422", "503"},
        ("/v1/experiments", "post"): {"400", "401", "403", "404", "413", "422", "503"},
        ("/v1/experiments/{key}", "patch"): {"401", "404", "409", "413", "422", "503"},
        ("/v1/experiments/{key}/results", "get"): {"401", "404", "422", "503"},
        ("/v1/experiments/{key}/events", "get"): {"401", "404", "422", "503"},
        ("/metrics", "get"): {"401"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses - {"503"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
