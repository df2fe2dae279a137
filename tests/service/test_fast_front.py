"""The fast front answers exactly as the FastAPI routes do, good input and bad.

Two apps on the same Redis, each on its own keyspace with the same experiments: one as served
(``service.api.fast`` in front), one with ``fast_routes=False`` (FastAPI alone). The same corpus
of requests, in the same order, goes to both; status, body and the headers a client reads must
be equal. The corpus holds the hostile and bad input of ``test_hostile_input.py`` and
``test_bad_input.py`` beside good requests, CORS from allowed and other origins, a ``Host``
not allowed and bodies over the limit. The front must also answer the good requests itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import QueryParams

from service.api.app import create_app
from service.api.fast import FastFront, FrontedAPI
from service.api.routers.public import query_params
from service.settings import Settings
from tests.service.conftest import AUTH, BUYAKILT, create_running

JSON = {"Content-Type": "application/json"}
SHOP = "https://shop.example"
COMPARED = (
    *("content-type", "content-length", "retry-after", "allow", "vary", "cache-control"),
    *("access-control-allow-origin", "access-control-allow-methods", "x-content-type-options"),
)
Request = tuple[str, str, dict[str, str], bytes | None]
"""Method, path with query, headers, body."""


def _get(query: str, headers: dict[str, str] | None = None) -> Request:
    return ("GET", f"/v1/assign?{query}", headers or {}, None)


def _post(path: str, body: str | bytes, headers: dict[str, str] | None = None) -> Request:
    content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return ("POST", path, JSON if headers is None else headers, content)


EXP = "experiment=buyakilt-filters"
TRACK_BAD = [
    '{"visitor_id": "known", "event": "purchase", "value": NaN}',
    '{"visitor_id": "known", "event": "purchase", "value": Infinity}',
    '{"visitor_id": "known", "event": "purchase", "value": 1e13}',
    '{"visitor_id": "known", "event": "purchase", "value": "ten"}',
    '{"visitor_id": 17, "event": "purchase"}',
    '{"visitor_id": "known"}',
    '{"visitor_id": "known", "event": "bad event!"}',
    '{"visitor_id": "known", "event": "purchase", "event_id": "a b"}',
    '{"visitor_id": "known", "event": "purchase", "extra": 1}',
    '{"visitor_id": "known", "event": "purchase", "timestamp": "2001-01-01T00:00:00Z"}',
    '{"visitor_id": "known", "event": "purchase"',
    "[]",
    "",
    '{"visitor_id": "\\ud800", "event": "x"}',
    '{"visitor_id": "known", "event": "purchase", "value": "12.5"}',
    '{"visitor_id": "known", "event": "purchase", "value": true}',
    '{"visitor_id": "known", "event": "purchase", "timestamp": "2026-01-01T10:00:00"}',
    '{"visitor_id": "known", "event": "purchase", "value": 99999999999999999999999}',
    '{"visitor_id": "known", "event": "purchase", "value": 1, "value": "x"}',
]
ASSIGN_BAD = [
    '{"visitor_id": "\\ud83d"}',
    '{"visitor_id": "v", "attributes": {"ref": "\\ud800"}}',
    '{"visitor_id": "v", "attributes": {"\\ud800": "x"}}',
    '{"visitor_id": "v", "attributes": {"x": NaN}}',
    '{"visitor_id": "v", "attributes": {"x": [1, -Infinity]}}',
    '{"visitor_id": "", "experiments": ["buyakilt-filters"]}',
    '{"visitor_id": "v", "experiments": ["Not A Key"]}',
    '{"visitor_id": "v", "experiments": ["nope"]}',
    '{"visitor_id": "v", "attributes": {' + ", ".join(f'"a{i}": {i}' for i in range(51)) + "}}",
    '{"visitor_id": "big", "attributes": {"referrer": "' + "r" * 257 + '"}}',
]
BATCH_BAD = [
    '{"events": [{"visitor_id": "a\\udfffb", "event": "x"}]}',
    '{"events": [{"visitor_id": "known", "event": "purchase", "value": 10}, '
    '{"visitor_id": "known", "event": "purchase", "value": NaN}]}',
    '{"events": [' + ", ".join(['{"visitor_id": "known", "event": "purchase"}'] * 1001) + "]}",
    '{"events": []}',
    '{"events": [{"visitor_id": "known", "event": "purchase", "timestamp": 1}]}',
]


def corpus() -> list[Request]:
    uuid = "0b8e6f1c-3a2d-4c5e-9f7a-1b2c3d4e5f60"
    good: list[Request] = [
        _get(f"{EXP}&visitor_id=known"),
        _get(f"{EXP}&visitor_id=v1"),
        _get(f"{EXP}&visitor_id=v1"),  # sticky: already recorded
        _get(f"{EXP}&visitor_id={uuid}"),
        _get(f"{EXP}&visitor_id=%C3%A9t%C3%A9+x"),
        _get(f"{EXP}&visitor_id=%EF%BF%BD"),
        _get(f"visitor_id=v2&{EXP}"),
        _get(f"experiment=nope&{EXP}&visitor_id=v3"),  # the last value counts, as in Starlette
        _get(f"{EXP}&visitor_id=v4", {"Origin": SHOP}),
        _get(f"{EXP}&visitor_id=v5", {"Origin": "https://other.example"}),
        _post("/v1/assign", '{"visitor_id": "known"}'),
        _post("/v1/assign", '{"visitor_id": "p1", "experiments": ["buyakilt-filters"]}'),
        _post("/v1/assign", '{"visitor_id": "p2", "attributes": {"device": "mobile", "n": 3}}'),
        _post("/v1/assign", '{"visitor_id": "p3"}', {"Content-Type": "Application/JSON"}),
        _post("/v1/assign", '{"visitor_id": "p4"}', {"Content-Type": "application/json; x=1"}),
        _post("/v1/assign", '{"visitor_id": "p5"}', {**JSON, "Origin": SHOP}),
        _post("/v1/assign", '{"visitor_id": "\\u00e9\\u00e8", "experiments": []}'),
        _post("/v1/track", '{"visitor_id": "known", "event": "purchase", "value": 12.5}'),
        _post("/v1/track", '{"visitor_id": "known", "event": "purchase", "event_id": "e1"}'),
        _post("/v1/track", '{"visitor_id": "known", "event": "purchase", "event_id": "e1"}'),
        _post("/v1/track", '{"visitor_id": "stranger", "event": "purchase", "value": 3}'),
        _post(
            "/v1/track", '{"visitor_id": "known", "event": "cart_view"}', {**JSON, "Origin": SHOP}
        ),
        _post(
            "/v1/track/batch",
            '{"events": [{"visitor_id": "known", "event": "purchase", "value": 5,'
            ' "event_id": "b1"}, {"visitor_id": "v1", "event": "cart_view"},'
            ' {"visitor_id": "nobody", "event": "x"},'
            ' {"visitor_id": "known", "event": "purchase", "value": 5, "event_id": "b1"}]}',
        ),
    ]
    bad: list[Request] = [
        _post("/v1/assign", '{"visitor_id": "p3"}', {}),  # no content type: not read as JSON
        _get(EXP),
        _get(f"{EXP}&visitor_id="),
        _get(f"{EXP}&visitor_id={'x' * 201}"),
        _get(f"{EXP}&visitor_id=a%0Ab"),
        _get("experiment=Not+A+Key&visitor_id=v"),
        _get("experiment=nope&visitor_id=v"),
        _get(""),
        *(_get(f"{EXP}&visitor_id={raw}") for raw in ("%FF", "a%C3", "%ED%A0%80")),
        ("GET", f"/v1/assign?{EXP}&visitor_id=h", {"Host": "evil.example"}, None),
        ("HEAD", f"/v1/assign?{EXP}&visitor_id=head", {}, None),
        ("PUT", "/v1/track", JSON, b"{}"),
        ("OPTIONS", "/v1/track", {"Origin": SHOP, "Access-Control-Request-Method": "POST"}, None),
        _post(
            "/v1/track", '{"visitor_id": "known", "event": "purchase"}', {"Host": "evil.example"}
        ),
        _post(
            "/v1/track",
            '{"visitor_id": "known", "event": "purchase"}',
            {"Content-Type": "text/plain"},
        ),
        _post(
            "/v1/assign",
            '{"visitor_id": "known"}',
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        _post(
            "/v1/track",
            '{"visitor_id": "known", "event": "purchase", "pad": "' + "x" * 1_100_000 + '"}',
        ),
        *(_post("/v1/track", body) for body in TRACK_BAD),
        *(_post("/v1/assign", body) for body in ASSIGN_BAD),
        *(_post("/v1/track/batch", body) for body in BATCH_BAD),
    ]
    return good + bad


@pytest.fixture(params=["any-origin", "one-origin"])
def pair(
    request: pytest.FixtureRequest, settings: Settings
) -> Iterator[tuple[TestClient, TestClient]]:
    """The app as served and the app through FastAPI alone, on keyspaces of their own."""
    origins = ("*",) if request.param == "any-origin" else (SHOP,)
    base = dataclasses.replace(
        settings, cors_origins=origins, allowed_hosts=("testserver", "127.0.0.1")
    )
    plain_settings = dataclasses.replace(base, key_prefix=f"{settings.key_prefix}:plain")
    with (
        TestClient(create_app(base)) as fast,
        TestClient(create_app(plain_settings, fast_routes=False)) as plain,
    ):
        for client in (fast, plain):
            create_running(client, BUYAKILT)
        yield fast, plain


def _send(client: TestClient, request: Request) -> Any:
    method, url, headers, body = request
    return client.request(method, url, headers=headers, content=body)


def test_the_fast_front_answers_as_fastapi_does(pair: tuple[TestClient, TestClient]) -> None:
    fast, plain = pair
    for request in corpus():
        a, b = _send(fast, request), _send(plain, request)
        label = f"{request[0]} {request[1][:80]} {(request[3] or b'')[:120]!r}"
        assert (a.status_code, a.content) == (b.status_code, b.content), label
        for name in COMPARED:
            assert a.headers.get_list(name) == b.headers.get_list(name), (label, name)
    results = [c.get("/v1/experiments/buyakilt-filters/results", headers=AUTH).json() for c in pair]
    assert results[0]["srm"] == results[1]["srm"]
    assert sum(results[0]["srm"]["visitors"].values()) >= 10


def test_good_requests_are_answered_by_the_front_bad_ones_by_fastapi(
    pair: tuple[TestClient, TestClient],
) -> None:
    fast, _ = pair
    app = fast.app
    assert isinstance(app, FrontedAPI) and isinstance(app.front, FastFront)
    front = app.front
    handed: list[str] = []
    original = front.app_call

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        handed.append(f"{scope['method']} {scope['path']}")
        await original(scope, receive, send)

    front.app_call = recording  # type: ignore[assignment]
    answered_here = 0
    for request in corpus():
        before = len(handed)
        status = _send(fast, request).status_code
        hot = (request[0], request[1].split("?")[0]) in front.routes
        if hot:  # a 2xx is the front's own answer; anything else is FastAPI's
            assert (len(handed) == before) == (200 <= status < 300), (request[:2], status)
            answered_here += len(handed) == before
    assert answered_here >= 20


def test_an_exposure_is_in_redis_when_its_answer_arrives(
    pair: tuple[TestClient, TestClient],
) -> None:
    fast, _ = pair
    for i in range(20):
        answer = fast.get(
            "/v1/assign", params={"experiment": "buyakilt-filters", "visitor_id": f"r{i}"}
        )
        assert answer.json()["recorded"] is True
        results = fast.get("/v1/experiments/buyakilt-filters/results", headers=AUTH).json()
        assert sum(results["srm"]["visitors"].values()) == i + 1


@pytest.mark.parametrize(
    "query",
    [
        b"experiment=a&visitor_id=b",
        b"visitor_id=x+y&experiment=a",
        b"visitor_id=%C3%A9%2B%26&experiment=a&experiment=b",
        b"&&visitor_id&experiment==a=b&",
        b"visitor_id=%FF%ZZ%&x=%",
        b"a+b=c+d&%61=%62;c=d",
        "visitor_id=\xe9t\xe9".encode("latin-1"),
        b"",
    ],
)
def test_query_params_read_as_starlette_reads_them(query: bytes) -> None:
    assert query_params(query) == dict(QueryParams(query))
