"""The SDK's routes through the real app: the script, the public definition snapshot, the shop,
and the CORS rules that keep admin endpoints out of a browser's reach."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from experiments import limits
from experiments.definitions import Experiment
from service.api.app import create_app
from service.demo.casestudies import BUYAKILT
from service.settings import Settings
from tests.service.conftest import AUTH, create_running

SHOP_ORIGIN = "http://shop.example"
PUBLIC_FIELDS = {
    "key",
    "seed",
    "hash_version",
    "coverage",
    "variants",
    "ranges",
    "status",
    "winner",
    "condition",
    "hash_attribute",
    "namespace",
    "holdout",
    "forced",
}


@pytest.fixture
def cors_client(settings: Settings) -> Iterator[TestClient]:
    limited = Settings(**{**settings.__dict__, "cors_origins": (SHOP_ORIGIN,)})
    with TestClient(create_app(limited)) as test_client:
        yield test_client


def _definition(key: str, **changes: Any) -> dict[str, Any]:
    return {**BUYAKILT.definition, "key": key, **changes}


def test_sdk_js_is_served_with_etag_gzip_and_a_size_budget(client: TestClient) -> None:
    plain = client.get("/sdk.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-encoding" not in plain.headers
    assert "max-age=" in plain.headers["cache-control"]
    assert "root.abacus = api" in plain.text
    assert len(plain.content) < 40_000

    zipped = client.get("/sdk.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    # 7.4 KB before targeting; the condition evaluator, forcing and anti-flicker add 3.2 KB
    assert int(zipped.headers["content-length"]) < 12_000
    assert zipped.content == plain.content  # httpx decodes it

    etag = plain.headers["etag"]
    assert client.get("/sdk.js", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/sdk.js", headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    assert client.get("/sdk.js", headers={"If-None-Match": '"other"'}).status_code == 200


def test_the_module_build_and_the_type_declarations_are_served(client: TestClient) -> None:
    module = client.get("/sdk.mjs", headers={"Accept-Encoding": "identity"})
    assert module.status_code == 200
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert module.text.startswith("globalThis.__abacusModuleUrl = import.meta.url;")
    assert "export default abacus;" in module.text
    assert client.get("/sdk.js").text in module.text
    types = client.get("/sdk.d.ts")
    assert types.status_code == 200
    assert types.headers["content-type"].startswith("application/typescript")
    assert "export interface Abacus" in types.text
    etag = types.headers["etag"]
    assert client.get("/sdk.d.ts", headers={"If-None-Match": etag}).status_code == 304


def test_the_served_script_carries_the_service_s_own_rules(client: TestClient) -> None:
    body = client.get("/sdk.js", headers={"Accept-Encoding": "identity"}).text
    assert "__ABACUS_LIMITS__" not in body
    start = body.index("var LIMITS = ") + len("var LIMITS = ")
    injected = json.loads(body[start : body.index(";\n", start)])
    # Each value is the constant of the same name in experiments/limits.py.
    assert {name: getattr(limits, name.upper()) for name in injected} == injected
    assert {"key_pattern", "event_name_pattern", "sdk_queue_max_age_seconds"} <= set(injected)
    # No copy of a rule is left in the script itself.
    template = (Path(__file__).parents[2] / "service" / "static" / "sdk.js").read_text()
    for pattern in (limits.KEY_PATTERN, limits.EVENT_NAME_PATTERN, limits.EVENT_ID_PATTERN):
        assert pattern.strip("^$") not in template
    assert "86400" not in template and "<= 200" not in template


def test_gzip_body_on_the_wire_is_the_script(client: TestClient) -> None:
    plain = client.get("/sdk.js", headers={"Accept-Encoding": "identity"}).content
    with client.stream("GET", "/sdk.js", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert len(raw) < len(plain) / 2
    assert gzip.decompress(raw) == plain


def test_definitions_hold_only_what_bucketing_needs(client: TestClient) -> None:
    create_running(client, BUYAKILT.definition)
    draft = client.post("/v1/experiments", json=_definition("still-draft"), headers=AUTH)
    assert draft.status_code == 201

    response = client.get("/v1/definitions")  # no admin key
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=30"
    body = response.json()
    assert [d["key"] for d in body["experiments"]] == ["buyakilt-filters"]
    (public,) = body["experiments"]
    assert set(public) == PUBLIC_FIELDS
    assert public["variants"] == [
        {"key": "control", "weight": 0.5},
        {"key": "filters", "weight": 0.5},
    ]
    stored = Experiment.model_validate(
        client.get("/v1/experiments/buyakilt-filters", headers=AUTH).json()
    )
    assert public["ranges"] == [list(r) for r in stored.ranges]
    assert public["seed"] == "buyakilt-filters"
    assert (public["status"], public["winner"], public["hash_version"]) == ("running", None, 2)
    text = response.text
    for admin_only in ("hypothesis", "metrics", "purchase", "Product filters", "created_at"):
        assert admin_only not in text


def test_definitions_etag_revalidates_and_changes_with_the_definitions(client: TestClient) -> None:
    create_running(client, BUYAKILT.definition)
    first = client.get("/v1/definitions")
    etag = first.headers["etag"]
    assert client.get("/v1/definitions", headers={"If-None-Match": etag}).status_code == 304

    stop = {"status": "stopped", "winner": "filters"}
    assert client.patch("/v1/experiments/buyakilt-filters", json=stop, headers=AUTH).is_success
    second = client.get("/v1/definitions", headers={"If-None-Match": etag})
    assert second.status_code == 200
    assert second.headers["etag"] != etag
    (public,) = second.json()["experiments"]
    assert (public["status"], public["winner"]) == ("stopped", "filters")


def test_shop_renders_the_products_and_loads_only_local_resources(client: TestClient) -> None:
    create_running(client, BUYAKILT.definition)
    response = client.get("/demo/shop")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<script src="/sdk.js"></script>' in html
    assert html.count('class="product"') == 8
    assert 'name="kind"' in html and 'name="tartan"' in html
    assert 'data-experiment-state="running"' in html
    assert 'abacus.track("purchase", { value })' in html
    assert 'abacus.track("cart_view")' in html
    # Nothing is fetched from elsewhere: no absolute URLs in src/href, no @import, no url().
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "experiment-missing" not in html


@pytest.mark.parametrize(
    ("setup", "state", "marker"),
    [
        (None, "missing", "does not exist on this server"),
        ("draft", "draft", "is draft: nobody is enrolled"),
    ],
)
def test_shop_says_clearly_when_the_experiment_is_not_running(
    client: TestClient, setup: str | None, state: str, marker: str
) -> None:
    if setup == "draft":
        assert client.post("/v1/experiments", json=BUYAKILT.definition, headers=AUTH).is_success
    html = client.get("/demo/shop").text
    assert f'data-experiment-state="{state}"' in html
    assert marker in html


def test_shop_mode_is_validated(client: TestClient) -> None:
    response = client.get("/demo/shop", params={"mode": "psychic"})
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "mode"
    assert client.get("/demo/shop", params={"mode": "server"}).status_code == 200


def test_cors_allows_the_public_api_to_configured_origins_only(cors_client: TestClient) -> None:
    preflight = cors_client.options(
        "/v1/track",
        headers={
            "Origin": SHOP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == SHOP_ORIGIN
    definitions = cors_client.get("/v1/definitions", headers={"Origin": SHOP_ORIGIN})
    assert definitions.headers["access-control-allow-origin"] == SHOP_ORIGIN

    other = cors_client.get("/v1/definitions", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_never_lets_a_browser_send_the_admin_key(cors_client: TestClient) -> None:
    preflight = cors_client.options(
        "/v1/experiments",
        headers={
            "Origin": SHOP_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 403  # no CORS at all on the admin API
    assert "access-control-allow-origin" not in preflight.headers
    assert "authorization" not in preflight.headers.get("access-control-allow-headers", "").lower()
    # Without the header (a "simple" request) the admin API answers 401.
    plain = cors_client.get("/v1/experiments", headers={"Origin": SHOP_ORIGIN})
    assert plain.status_code == 401
