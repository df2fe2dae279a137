"""API keys with roles: made once, stored hashed, checked on every request, revoked at once.

Every test runs on the embedded server and on the 3+3 cluster; revocation is checked on the
very next request (no cache may hide it), for bearer keys and for browser sessions.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from experiments.audit import AuditActor, AuditEntry
from experiments.store import ApiKeyRecord, Store
from service.api.auth import SESSION_COOKIE, AdminKey
from tests.conftest import ADMIN_KEY, RedisTarget, StoreRunner
from tests.service.conftest import AUTH, BUYAKILT
from tests.service.test_access import _sign_in as sign_in
from tests.service.test_bad_input import _assert_error, _snapshot


def make_key(client: TestClient, name: str, role: str) -> dict[str, Any]:
    response = client.post("/v1/keys", json={"name": name, "role": role}, headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_key_is_shown_once_and_stored_only_as_its_digest(
    client: TestClient, redis_server: RedisTarget, key_prefix: str
) -> None:
    created = make_key(client, "ana@shop", "editor")
    assert set(created) == {"key", "id", "name", "role", "created_at", "bootstrap"}
    assert (created["name"], created["role"], created["bootstrap"]) == ("ana@shop", "editor", False)
    secret = created["key"]
    assert re.fullmatch(r"abk_[A-Za-z0-9_-]{43}", secret)
    assert created["id"] == AdminKey.of(secret).id
    listed = client.get("/v1/keys", headers=AUTH)
    assert listed.status_code == 200
    assert secret not in listed.text
    rows = {k["id"]: k for k in listed.json()}
    assert rows[created["id"]]["role"] == "editor" and "key" not in rows[created["id"]]
    bootstrap = rows[AdminKey.of(ADMIN_KEY).id]
    assert (bootstrap["bootstrap"], bootstrap["role"], bootstrap["created_at"]) == (
        True,
        "admin",
        None,
    )
    stored = str(_snapshot(redis_server, key_prefix))
    assert secret not in stored and secret[4:] not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored  # the digest is what is kept
    # a second key is a different secret
    assert make_key(client, "ana@shop", "editor")["key"] != secret


def test_a_viewer_reads_but_every_change_is_403_naming_the_role(client: TestClient) -> None:
    viewer = bearer(make_key(client, "board", "viewer")["key"])
    assert client.post("/v1/experiments", json=BUYAKILT, headers=AUTH).status_code == 201
    assert client.get("/v1/experiments", headers=viewer).status_code == 200
    assert client.get("/v1/experiments/buyakilt-filters/results", headers=viewer).status_code == 200
    key = BUYAKILT["key"]
    for method, path, body in (
        ("POST", "/v1/experiments", {**BUYAKILT, "key": "other"}),
        ("PATCH", f"/v1/experiments/{key}", {"status": "running"}),
        ("PUT", f"/v1/experiments/{key}/forced/v1", {"variant": "control"}),
        ("DELETE", f"/v1/experiments/{key}", None),
        ("POST", f"/v1/experiments/{key}/share-links", {}),
        ("POST", "/v1/keys", {"name": "x", "role": "admin"}),
        ("GET", "/v1/keys", None),
        ("GET", "/v1/audit", None),
    ):
        response = client.request(method, path, json=body, headers=viewer)
        needed = "admin" if "keys" in path or "audit" in path else "editor"
        _assert_error(response, 403, f"this needs the role '{needed}'", "'board'", "'viewer'")
    got = client.get(f"/v1/experiments/{key}", headers=AUTH).json()
    assert got["status"] == "draft" and got["forced"] == {}


def test_an_editor_changes_experiments_but_not_keys(client: TestClient) -> None:
    editor = bearer(make_key(client, "growth team", "editor")["key"])
    assert client.post("/v1/experiments", json=BUYAKILT, headers=editor).status_code == 201
    started = client.patch(
        "/v1/experiments/buyakilt-filters", json={"status": "running"}, headers=editor
    )
    assert started.status_code == 200, started.text
    for method, path, body in (
        ("POST", "/v1/keys", {"name": "mine", "role": "admin"}),
        ("GET", "/v1/keys", None),
        ("DELETE", f"/v1/keys/{'0' * 16}", None),
    ):
        response = client.request(method, path, json=body, headers=editor)
        _assert_error(response, 403, "this needs the role 'admin'", "'editor'")
    # a stored admin key may manage keys
    admin = bearer(make_key(client, "second admin", "admin")["key"])
    assert client.get("/v1/keys", headers=admin).status_code == 200


def test_a_revoked_key_and_its_sessions_get_401_on_the_next_request(client: TestClient) -> None:
    created = make_key(client, "temp", "editor")
    secret = created["key"]
    assert client.get("/v1/experiments", headers=bearer(secret)).status_code == 200
    cookie = sign_in(client, secret)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.get("/v1/experiments").status_code == 200
    client.cookies.clear()
    revoked = client.delete(f"/v1/keys/{created['id']}", headers=AUTH)
    assert revoked.status_code == 204, revoked.text
    _assert_error(client.get("/v1/experiments", headers=bearer(secret)), 401, "Bearer")
    client.cookies.set(SESSION_COOKIE, cookie)
    _assert_error(client.get("/v1/experiments"), 401, "Bearer")
    assert client.get("/", follow_redirects=False).status_code == 303  # to the sign-in page
    client.cookies.clear()
    # nor can it sign in again; revoking twice is a 404 naming the id
    again = client.post("/login", data={"key": secret, "next": "/"}, follow_redirects=False)
    assert again.status_code == 401
    _assert_error(client.delete(f"/v1/keys/{created['id']}", headers=AUTH), 404, created["id"])
    assert created["id"] not in client.get("/v1/keys", headers=AUTH).text


def test_a_session_of_any_key_is_closed_by_logout(client: TestClient) -> None:
    secret = make_key(client, "reader", "viewer")["key"]
    cookie = sign_in(client, secret)
    assert client.get("/v1/experiments").status_code == 200
    client.post("/logout")
    client.cookies.set(SESSION_COOKIE, cookie)  # a copy kept after logging out
    _assert_error(client.get("/v1/experiments"), 401, "Bearer")
    assert client.get("/experiments/x", follow_redirects=False).status_code == 303


def test_the_bootstrap_admin_key_cannot_be_revoked_through_the_api(client: TestClient) -> None:
    response = client.delete(f"/v1/keys/{AdminKey.of(ADMIN_KEY).id}", headers=AUTH)
    _assert_error(response, 403, "bootstrap admin key ABACUS_ADMIN_KEY", "cannot be revoked")
    assert client.get("/v1/keys", headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ({"name": "x", "role": "owner"}, "role", "owner"),
        ({"name": "", "role": "viewer"}, "name", ""),
        ({"name": "a" * 65, "role": "viewer"}, "name", "a" * 65),
        ({"name": "<script>", "role": "viewer"}, "name", "<script>"),
        ({"role": "viewer"}, "name", None),
        ({"name": "x", "role": "viewer", "secret": "mine"}, "secret", "mine"),
    ],
)
def test_bad_key_requests_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, value: Any
) -> None:
    response = client.post("/v1/keys", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    details = response.json()["details"]
    assert any(d["field"] == field for d in details), details
    if value is not None:
        assert any(d["value"] == value for d in details), details
    _assert_error(client.delete("/v1/keys/not-hex", headers=AUTH), 422, "key_id")


def test_a_key_that_looks_stored_but_is_not_proves_nobody(client: TestClient) -> None:
    fake = "abk_" + "A" * 43
    _assert_error(client.get("/v1/experiments", headers=bearer(fake)), 401, "Bearer")
    wrong = client.post("/login", data={"key": fake, "next": "/"}, follow_redirects=False)
    assert wrong.status_code == 401 and "That is not a valid key" in wrong.text


def test_a_stored_record_with_another_digest_is_refused(
    client: TestClient, store: StoreRunner
) -> None:
    """The id is only an index: the secret's digest must match the record's too."""
    secret = "abk_" + "B" * 43
    key = AdminKey.of(secret)
    record = ApiKeyRecord(id=key.id, name="n", role="admin", digest="0" * 64, created_at=0)
    actor = AuditActor(name="t", role="admin", key_id=None)
    audit = AuditEntry(
        at=0, actor=actor, action="key.create", experiment=None, before=None, after=None
    )

    async def add(s: Store) -> tuple[bool, bool]:
        return await s.add_api_key(record, audit), await s.add_api_key(record, audit)

    assert store(add) == (True, False)  # an id is never taken twice
    _assert_error(client.get("/v1/experiments", headers=bearer(secret)), 401, "Bearer")
