"""The page forms on the real app and Redis: the API's rules and messages, confirmations, CSRF.

A browser session signs in at ``/login``; every form carries that session's CSRF token. The
forms' errors must be the very messages the JSON API gives for the same input.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY
from tests.service.conftest import AUTH, BUYAKILT

FORM: dict[str, str] = {
    "key": "buyakilt-filters",
    "name": "Product filters on category pages",
    "hypothesis": "Filters help shoppers find what they want",
    "coverage": "1",
    "variants.0.key": "control",
    "variants.0.weight": "0.5",
    "variants.1.key": "filters",
    "variants.1.name": "Filters",
    "variants.1.weight": "0.5",
    "metrics.0.name": "conversion",
    "metrics.0.kind": "conversion",
    "metrics.0.event": "purchase",
    "metrics.0.direction": "higher",
    "metrics.1.name": "revenue",
    "metrics.1.kind": "mean",
    "metrics.1.event": "purchase",
    "metrics.1.direction": "higher",
    "metrics.2.name": "refunds",
    "metrics.2.kind": "count",
    "metrics.2.event": "refund",
    "metrics.2.direction": "lower",
    "metrics.2.guardrail": "on",
    "primary": "0",
}


def _session(client: TestClient) -> str:
    """Sign in as a browser does; the CSRF token of the session's forms."""
    response = client.post("/login", data={"key": ADMIN_KEY, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303
    return _token(client.get("/new").text)


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


def _errors(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'class="field-error"[^>]*>([^<]*)<', page)]


def _field_errors(page: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, text in re.findall(r'data-field="([^"]+)">([^<]*)<', page):
        found.setdefault(name, []).append(html.unescape(text))
    return found


def _value(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match is not None, name
    return html.unescape(match.group(1))


def _definition(client: TestClient, key: str = "buyakilt-filters") -> dict[str, Any]:
    response = client.get(f"/v1/experiments/{key}", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _post(client: TestClient, path: str, token: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)


def test_the_create_form_makes_the_draft_the_api_would(client: TestClient) -> None:
    token = _session(client)
    response = _post(client, "/new", token, **FORM)
    assert response.status_code == 303, _errors(response.text)
    assert response.headers["location"] == "/experiments/buyakilt-filters"
    made = _definition(client)
    assert made["status"] == "draft" and made["archived"] is False
    assert [(v["key"], v["weight"]) for v in made["variants"]] == [
        ("control", 0.5),
        ("filters", 0.5),
    ]
    assert [(m["name"], m["kind"], m["primary"], m["guardrail"]) for m in made["metrics"]] == [
        ("conversion", "conversion", True, False),
        ("revenue", "mean", False, False),
        ("refunds", "count", False, True),
    ]
    assert made["metrics"][2]["direction"] == "lower"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants.1.weight": "0.6"}, "variants"),
        ({"key": "Bad Key!"}, "key"),
        ({"coverage": "1.5"}, "coverage"),
        ({"variants.1.weight": "half"}, "variants.1.weight"),
        ({"metrics.1.kind": "ratio", "metrics.1.numerator": "nope"}, "metrics.1"),
        ({"metrics.2.guardrail": "", "primary": ""}, "body"),
    ],
)
def test_a_form_error_is_the_api_error_next_to_its_field(
    client: TestClient, change: dict[str, str], field: str
) -> None:
    token = _session(client)
    response = _post(client, "/new", token, **{**FORM, **change})
    assert response.status_code == 422
    # the same body through the JSON API
    form = {**FORM, **change}
    body: dict[str, Any] = {
        "key": form["key"],
        "name": form["name"],
        "hypothesis": form["hypothesis"],
        "coverage": form["coverage"],
        "variants": [
            {"key": form[f"variants.{i}.key"], "name": form.get(f"variants.{i}.name", "")}
            | {"weight": form[f"variants.{i}.weight"]}
            for i in range(2)
        ],
        "metrics": [],
    }
    for i in range(3):
        metric: dict[str, object] = {
            n: form[f"metrics.{i}.{n}"]
            for n in ("name", "kind", "event", "numerator", "direction")
            if form.get(f"metrics.{i}.{n}")
        }
        if metric["kind"] == "ratio":
            metric.pop("event")
        metric["primary"] = form["primary"] == str(i)
        metric["guardrail"] = bool(form.get(f"metrics.{i}.guardrail"))
        body["metrics"].append(metric)
    api = client.post("/v1/experiments", json=body, headers=AUTH)
    assert api.status_code == 422
    expected = {d["field"]: d["message"] for d in api.json()["details"]}
    assert field in expected
    page = response.text
    if field == "body":
        assert expected["body"] in _errors(page)
    elif field == "metrics.1":
        # the ratio's problem is reported for the whole experiment (its parts are other rows)
        assert any(expected[field] in e for e in _errors(page))
    else:
        assert _field_errors(page)[field] == [expected[field]]
    # what was typed is kept
    assert _value(page, "key") == form["key"]
    assert _value(page, "variants.1.weight") == form["variants.1.weight"]
    assert client.get("/v1/experiments/buyakilt-filters", headers=AUTH).status_code == 404


def test_blank_rows_are_left_out_and_errors_land_on_the_row_typed_in(client: TestClient) -> None:
    token = _session(client)
    form = {**FORM, "variants.2.key": "", "variants.2.weight": ""}
    # the second variant moved to the form's fourth row, with a bad weight
    form |= {"variants.3.key": "filters", "variants.3.weight": "2"}
    form |= {"variants.1.key": "", "variants.1.name": "", "variants.1.weight": ""}
    response = _post(client, "/new", token, **form)
    assert response.status_code == 422
    errors = _field_errors(response.text)
    assert errors["variants.3.weight"] == ["Input should be less than or equal to 1"]
    assert "variants.1.weight" not in errors


def test_a_duplicate_key_shows_the_api_conflict(client: TestClient) -> None:
    token = _session(client)
    assert _post(client, "/new", token, **FORM).status_code == 303
    again = _post(client, "/new", token, **FORM)
    api = client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    assert again.status_code == api.status_code == 409
    assert api.json()["message"] in _errors(again.text)


def test_the_whole_lifecycle_through_the_forms(client: TestClient) -> None:
    token = _session(client)
    assert _post(client, "/new", token, **FORM).status_code == 303
    report = client.get("/experiments/buyakilt-filters").text
    assert "Start…" in report and "data-change" in report and _token(report) == token

    # start asks first, and says what it freezes; nothing changes until confirmed
    asked = _post(client, "/experiments/buyakilt-filters/status", token, action="start")
    assert asked.status_code == 200 and "frozen" in asked.text
    assert _value(asked.text, "confirm") == "yes"
    assert _definition(client)["status"] == "draft"
    started = _post(
        client, "/experiments/buyakilt-filters/status", token, action="start", confirm="yes"
    )
    assert started.status_code == 303
    assert _definition(client)["status"] == "running"

    # a running experiment's variants are frozen: the edit form shows the API's 409
    edit = {**FORM, "variants.1.weight": "0.4", "variants.0.weight": "0.6"}
    refused = _post(client, "/experiments/buyakilt-filters/edit", token, **edit)
    api = client.patch(
        "/v1/experiments/buyakilt-filters",
        json={"variants": [{"key": "control", "weight": 0.6}, {"key": "filters", "weight": 0.4}]},
        headers=AUTH,
    )
    assert refused.status_code == api.status_code == 409
    assert api.json()["message"] in _errors(refused.text)

    # pause and resume are reversible: no confirmation
    path = "/experiments/buyakilt-filters/status"
    assert _post(client, path, token, action="pause").status_code == 303
    assert _definition(client)["status"] == "paused"
    assert _post(client, path, token, action="resume").status_code == 303
    assert _definition(client)["status"] == "running"

    # ramping: a bad value gets the API's message, a good one is applied
    ramp = "/experiments/buyakilt-filters/coverage"
    bad = _post(client, ramp, token, coverage="1.5")
    assert bad.status_code == 422
    assert _errors(bad.text) == ["coverage: Input should be less than or equal to 1"]
    assert _post(client, ramp, token, coverage="0.5").status_code == 303
    assert _definition(client)["coverage"] == 0.5

    # a running experiment cannot be archived (the API's 409)
    archive = _post(client, "/experiments/buyakilt-filters/archive", token, archived="true")
    assert archive.status_code == 409
    assert "allowed only when draft or stopped" in _errors(archive.text)[0]

    # stop with a winner: asked first, naming what every visitor will see
    asked = _post(client, path, token, action="stop", winner="filters")
    assert asked.status_code == 200 and "Stopping is final" in asked.text
    assert "Filters" in asked.text and _definition(client)["status"] == "running"
    stopped = _post(client, path, token, action="stop", winner="filters", confirm="yes")
    assert stopped.status_code == 303
    made = _definition(client)
    assert made["status"] == "stopped" and made["winner"] == "filters"
    assert "Shipped Filters" in client.get("/").text

    # stopped: archive hides it from the dashboard until asked for
    archive = _post(client, "/experiments/buyakilt-filters/archive", token, archived="true")
    assert archive.status_code == 303 and _definition(client)["archived"] is True
    assert 'data-experiment="buyakilt-filters"' not in client.get("/").text
    assert "1 archived hidden" in client.get("/").text
    assert 'data-experiment="buyakilt-filters"' in client.get("/?archived=true").text
    back = _post(client, "/experiments/buyakilt-filters/archive", token, archived="false")
    assert back.status_code == 303 and _definition(client)["archived"] is False

    # delete asks first, then removes it
    asked = _post(client, "/experiments/buyakilt-filters/delete", token)
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert _definition(client)["status"] == "stopped"
    gone = _post(client, "/experiments/buyakilt-filters/delete", token, confirm="yes")
    assert gone.status_code == 303 and gone.headers["location"] == "/"
    assert client.get("/v1/experiments/buyakilt-filters", headers=AUTH).status_code == 404


def test_editing_a_draft_keeps_what_the_form_does_not_show(client: TestClient) -> None:
    definition = {
        **BUYAKILT,
        "metrics": [
            {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
            {"name": "revenue", "kind": "mean", "event": "purchase", "cap": 500.0, "unit": "£"},
        ],
    }
    assert client.post("/v1/experiments", json=definition, headers=AUTH).status_code == 201
    token = _session(client)
    page = client.get("/experiments/buyakilt-filters/edit")
    assert page.status_code == 200
    assert _value(page.text, "metrics.1.name") == "revenue"
    form = dict(re.findall(r'<input name="([^"]+)" value="([^"]*)"', page.text))
    form["csrf_token"] = _token(page.text)
    form |= {"name": "Filters, renamed", "metrics.1.kind": "mean", "primary": "0"}
    form |= {"metrics.0.kind": "conversion", "variants.1.weight": "0.5"}
    saved = client.post("/experiments/buyakilt-filters/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303, _errors(saved.text)
    made = _definition(client)
    assert made["name"] == "Filters, renamed"
    assert made["metrics"][1]["cap"] == 500.0 and made["metrics"][1]["unit"] == "£"
    assert _token(page.text) == token


ROUTES = [
    ("/new", FORM),
    ("/experiments/buyakilt-filters/edit", FORM),
    ("/experiments/buyakilt-filters/status", {"action": "start", "confirm": "yes"}),
    ("/experiments/buyakilt-filters/coverage", {"coverage": "0.5"}),
    ("/experiments/buyakilt-filters/archive", {"archived": "true"}),
    ("/experiments/buyakilt-filters/delete", {"confirm": "yes"}),
]


def test_a_session_without_its_csrf_token_changes_nothing(client: TestClient) -> None:
    assert client.post("/v1/experiments", json=BUYAKILT, headers=AUTH).status_code == 201
    before = _definition(client)
    token = _session(client)
    for path, fields in ROUTES:
        for given in ({}, {"csrf_token": "0" * 64}, {"csrf_token": token[:-1] + "x"}):
            response = client.post(path, data={**fields, **given}, follow_redirects=False)
            assert response.status_code == 403, (path, given)
            assert response.json()["message"].startswith("csrf_token:")
    # from another site, even with the right token, the origin check refuses it first
    for path, fields in ROUTES:
        response = client.post(
            path,
            data={**fields, "csrf_token": token},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert response.status_code == 403, path
    assert _definition(client) == before
    # signed out, the forms answer 401 and the form pages send to sign-in
    client.post("/logout")
    for path, fields in ROUTES:
        response = client.post(path, data={**fields, "csrf_token": token})
        assert response.status_code == 401, path
    assert client.get("/new", follow_redirects=False).headers["location"] == "/login?next=/new"
    assert _definition(client) == before


def test_the_api_archives_only_drafts_and_stopped_experiments(client: TestClient) -> None:
    assert client.post("/v1/experiments", json=BUYAKILT, headers=AUTH).status_code == 201
    path = "/v1/experiments/buyakilt-filters"
    archived = client.patch(path, json={"archived": True}, headers=AUTH)
    assert archived.status_code == 200 and archived.json()["archived"] is True
    start = client.patch(path, json={"status": "running"}, headers=AUTH)
    assert start.status_code == 409
    assert "is archived" in start.json()["message"]
    assert client.patch(path, json={"archived": False}, headers=AUTH).status_code == 200
    assert client.patch(path, json={"status": "running"}, headers=AUTH).status_code == 200
    refused = client.patch(path, json={"archived": True}, headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        "archived of experiment 'buyakilt-filters' cannot change while it is running; "
        "allowed only when draft or stopped (stop it first)"
    )
    assert client.get(path, headers=AUTH).json()["archived"] is False
    client.patch(path, json={"status": "stopped", "winner": "filters"}, headers=AUTH)
    assert client.patch(path, json={"archived": True}, headers=AUTH).status_code == 200


def test_the_dashboard_searches_filters_and_sorts(client: TestClient) -> None:
    for key, name in (("kilt-a", "Kilt filters"), ("hat-b", "Hats"), ("kilt-c", "Sporrans")):
        body = {**BUYAKILT, "key": key, "name": name}
        assert client.post("/v1/experiments", json=body, headers=AUTH).status_code == 201
    client.patch("/v1/experiments/hat-b", json={"status": "running"}, headers=AUTH)

    def listed(query: str) -> list[str]:
        response = client.get("/" + query, headers=AUTH)
        assert response.status_code == 200, response.text
        return re.findall(r'<tr data-experiment="([^"]+)"', response.text)

    assert listed("?q=kilt") == ["kilt-c", "kilt-a"]  # by key or name, newest first
    assert listed("?q=HATS") == ["hat-b"]
    assert listed("?status=running") == ["hat-b"]
    assert listed("?verdict=not_enough_data&sort=created&order=asc") == [
        "kilt-a",
        "hat-b",
        "kilt-c",
    ]
    assert listed("?verdict=winning") == []
    assert listed("?sort=started") == ["hat-b", "kilt-a", "kilt-c"]  # drafts have no start
    for visitor in ("v1", "v2", "v3"):
        client.get("/v1/assign", params={"experiment": "hat-b", "visitor_id": visitor})
    assert listed("?sort=visitors") == ["hat-b", "kilt-a", "kilt-c"]  # ties by key
    assert listed("?sort=visitors&order=asc") == ["kilt-a", "kilt-c", "hat-b"]
    assert listed("?sort=lift") == ["hat-b", "kilt-a", "kilt-c"]  # no lift known: by key
    bad = client.get("/?sort=colour", headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "sort"
    assert "'created', 'started', 'visitors' or 'lift'" in bad.json()["message"]
