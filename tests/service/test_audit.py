"""The audit trail over HTTP: every change through the API is kept with who, when, before, after;
the report shows it under History."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from service.api.auth import AdminKey
from tests.conftest import ADMIN_KEY
from tests.service.conftest import AUTH, BUYAKILT
from tests.service.test_bad_input import _assert_error
from tests.service.test_keys import bearer, make_key

KEY = BUYAKILT["key"]


def _ok(response: object) -> None:
    status = getattr(response, "status_code", 0)
    assert status in {200, 201, 204}, getattr(response, "text", "")


def test_every_change_is_recorded_with_who_when_before_and_after(client: TestClient) -> None:
    started = time.time()
    editor_key = make_key(client, "ana", "editor")
    ana = bearer(editor_key["key"])
    path = f"/v1/experiments/{KEY}"
    _ok(client.post("/v1/experiments", json={**BUYAKILT, "coverage": 0.5}, headers=ana))
    _ok(client.patch(path, json={"name": "Filters, take two"}, headers=AUTH))
    _ok(client.patch(path, json={"status": "running"}, headers=ana))
    _ok(client.patch(path, json={"coverage": 1.0}, headers=ana))
    _ok(client.put(f"{path}/forced/qa-1", json={"variant": "filters"}, headers=ana))
    _ok(client.delete(f"{path}/forced/qa-1", headers=ana))
    _ok(client.patch(path, json={"status": "paused"}, headers=ana))
    _ok(client.patch(path, json={"status": "running"}, headers=ana))
    _ok(client.patch(path, json={"status": "stopped", "winner": "filters"}, headers=ana))
    # refused changes leave no entry
    assert client.patch(path, json={"status": "running"}, headers=ana).status_code == 409
    assert client.patch(path, json={"coverage": 2}, headers=ana).status_code == 422

    response = client.get(f"{path}/audit", headers=bearer(make_key(client, "v", "viewer")["key"]))
    assert response.status_code == 200, response.text
    entries = response.json()
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "create",
        "edit",
        "start",
        "ramp",
        "force",
        "unforce",
        "pause",
        "resume",
        "stop",
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["create"]["actor"] == {
        "name": "ana",
        "role": "editor",
        "key_id": editor_key["id"],
    }
    assert by_action["create"]["before"] is None
    assert by_action["create"]["after"]["coverage"] == 0.5
    assert by_action["edit"]["actor"] == {
        "name": "admin",
        "role": "admin",
        "key_id": AdminKey.of(ADMIN_KEY).id,
    }
    assert by_action["edit"]["before"] == {"name": BUYAKILT["name"]}
    assert by_action["edit"]["after"] == {"name": "Filters, take two"}
    assert by_action["ramp"]["before"] == {"coverage": 0.5}
    assert by_action["ramp"]["after"] == {"coverage": 1.0}
    assert by_action["stop"]["after"]["winner"] == "filters"
    assert by_action["stop"]["after"]["status"] == "stopped"
    assert all(started - 1 <= e["at"] <= time.time() + 1 for e in entries)
    assert all(e["experiment"] == KEY for e in entries)

    _ok(client.delete(path, headers=ana))
    after_delete = client.get(f"{path}/audit", headers=AUTH).json()
    assert after_delete[0]["action"] == "delete"
    assert after_delete[0]["before"]["status"] == "stopped" and after_delete[0]["after"] is None


def test_the_workspace_trail_has_keys_and_share_links_too(client: TestClient) -> None:
    created = make_key(client, "temp", "viewer")
    _ok(client.post("/v1/experiments", json=BUYAKILT, headers=AUTH))
    link = client.post(f"/v1/experiments/{KEY}/share-links", json={}, headers=AUTH).json()
    _ok(client.delete(f"/v1/experiments/{KEY}/share-links/{link['id']}", headers=AUTH))
    _ok(client.delete(f"/v1/keys/{created['id']}", headers=AUTH))
    entries = client.get("/v1/audit", headers=AUTH).json()
    assert [e["action"] for e in entries] == [
        "key.revoke",
        "share_link.revoke",
        "share_link.create",
        "create",
        "key.create",
    ]
    revoked = entries[0]
    assert revoked["target"] == created["id"] and revoked["before"]["name"] == "temp"
    assert "digest" not in revoked["before"] and created["key"] not in str(entries)
    assert entries[1]["experiment"] == KEY and entries[1]["target"] == link["id"]
    # the experiment's own trail has its share links, not the keys
    mine = client.get(f"/v1/experiments/{KEY}/audit", headers=AUTH).json()
    assert [e["action"] for e in mine] == ["share_link.revoke", "share_link.create", "create"]
    assert client.get("/v1/audit?limit=2", headers=AUTH).json() == entries[:2]


def test_audit_requests_are_checked(client: TestClient) -> None:
    _assert_error(client.get("/v1/experiments/nope/audit", headers=AUTH), 404, "nope")
    _assert_error(client.get("/v1/audit?limit=0", headers=AUTH), 422, "limit")
    _assert_error(client.get("/v1/audit?limit=5001", headers=AUTH), 422, "limit")
    _assert_error(client.get("/v1/audit"), 401, "Bearer")


def test_the_report_shows_the_history(client: TestClient) -> None:
    ana = bearer(make_key(client, "ana", "editor")["key"])
    _ok(client.post("/v1/experiments", json={**BUYAKILT, "coverage": 0.5}, headers=ana))
    _ok(client.patch(f"/v1/experiments/{KEY}", json={"status": "running"}, headers=ana))
    _ok(client.patch(f"/v1/experiments/{KEY}", json={"coverage": 0.9}, headers=AUTH))
    page = client.get(f"/experiments/{KEY}", headers=AUTH)
    assert page.status_code == 200
    section = page.text[page.text.index('id="history"') :]
    rows = re.findall(r"<tr data-history>(.*?)</tr>", section, re.S)
    assert len(rows) == 3
    text = [re.sub(r"<[^>]+>", " ", r) for r in rows]
    assert "admin (admin)" in text[0] and "ramped coverage" in text[0]
    assert "coverage: 0.5 → 0.9" in text[0]
    assert (
        "ana (editor)" in text[1] and "started" in text[1] and "status: draft → running" in text[1]
    )
    assert "ana (editor)" in text[2] and "created" in text[2]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text[2])
