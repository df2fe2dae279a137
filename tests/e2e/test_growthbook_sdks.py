"""Unmodified GrowthBook SDKs as Abacus clients: the `growthbook` package from PyPI and the
`@growthbook/growthbook` package from npm (in Chromium, loaded from a loopback server), pointed
at the live service with a client key, agree with ``GET /v1/assign`` on 10,000 visitors each,
and every exposure their tracking callbacks report is counted exactly once."""

from __future__ import annotations

import functools
import http.server
import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, LiveServer, RedisTarget, delete_prefix

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROOT = Path(__file__).resolve().parents[2]
GROWTHBOOK_NPM = ROOT / ".cache" / "npm" / "growthbook" / "package" / "dist" / "bundles"
VISITORS = 10_000
EXPERIMENT: dict[str, Any] = {
    "key": "pricing-page",
    "seed": "pricing-2026-q1",
    "variants": [
        {"key": "control", "weight": 0.5},
        {"key": "annual-first", "weight": 0.3},
        {"key": "monthly-first", "weight": 0.2},
    ],
    "coverage": 0.8,
    # GET /v1/assign sends no attributes: the id (always the visitor id) decides for it, the
    # plan decides for callers that send attributes
    "condition": {"$or": [{"id": {"$regex": "[0-6]$"}}, {"plan": {"$in": ["pro", "team"]}}]},
    "namespace": {"id": "pricing", "start": 0.1, "end": 0.95},
    "metrics": [{"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True}],
}
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def served(redis_server: RedisTarget) -> Iterator[tuple[LiveServer, str]]:
    """The live service on the embedded Redis with the experiment running, and a client key."""
    target = redis_server
    prefix = f"gbsdk{next(_prefixes)}"
    server = LiveServer(
        {**target.env(), "ABACUS_KEY_PREFIX": prefix, "ABACUS_ADMIN_KEY": ADMIN_KEY}
    ).start()
    try:
        assert (
            httpx.post(server.url + "/v1/experiments", json=EXPERIMENT, headers=AUTH).status_code
            == 201
        )
        started = httpx.patch(
            server.url + "/v1/experiments/pricing-page", json={"status": "running"}, headers=AUTH
        )
        assert started.status_code == 200, started.text
        key = httpx.post(server.url + "/v1/client-keys", json={"name": "tests"}, headers=AUTH)
        assert key.status_code == 201, key.text
        yield server, key.json()["client_key"]
    finally:
        server.stop()
        delete_prefix(target, prefix)


def _visitors(server: LiveServer) -> dict[str, int]:
    results = httpx.get(
        server.url + "/v1/experiments/pricing-page/results", headers=AUTH, timeout=30
    )
    assert results.status_code == 200, results.text
    visitors: dict[str, int] = results.json()["srm"]["visitors"]
    return visitors


def _get_assign(http: httpx.Client, visitor: str) -> str | None:
    response = http.get("/v1/assign", params={"experiment": "pricing-page", "visitor_id": visitor})
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] is True
    variant: str | None = response.json()["variant"]
    return variant


def _post_exposure(http: httpx.Client, visitor: str, variant: str) -> dict[str, Any]:
    body = {"visitor_id": visitor, "experiment": "pricing-page", "variant": variant}
    response = http.post("/v1/exposures", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_python_growthbook_package_agrees_and_its_exposures_count_once(
    served: tuple[LiveServer, str],
) -> None:
    growthbook = pytest.importorskip("growthbook", reason="pip install growthbook (dev extra)")
    server, client_key = served
    before = Counter(_visitors(server))
    ids = [f"py-{i}" for i in range(VISITORS)]
    tracked: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers: list[dict[str, Any]] = []

        def on_viewed(experiment: Any, result: Any, **context: Any) -> None:
            # the one call docs/sdk.md gives for a GrowthBook trackingCallback (the SDK logs and
            # swallows what a callback raises, so the answers are checked afterwards)
            answers.append(_post_exposure(http, result.hashValue, result.key))
            tracked[result.key] += 1

        gb = growthbook.GrowthBook(
            api_host=server.url, client_key=client_key, on_experiment_viewed=on_viewed
        )
        gb.load_features()
        assert "pricing-page" in gb.get_features()
        from_sdk = {}
        for visitor in ids:
            gb.set_attributes({"id": visitor})
            from_sdk[visitor] = gb.get_feature_value("pricing-page", None)
        gb.destroy()
        enrolled = Counter(v for v in from_sdk.values() if v is not None)
        assert tracked == enrolled
        assert len(answers) == sum(enrolled.values())
        assert all(a["recorded"] and a["recorded_now"] for a in answers)
        assert 3000 < sum(enrolled.values()) < 5000  # 70% match x 85% namespace x 80% coverage
        assert _visitors(server) == dict(before + enrolled)  # each tracked exposure once

        from_service = {visitor: _get_assign(http, visitor) for visitor in ids}
        assert from_service == from_sdk
        # a repeated exposure call counts nothing again, nor does GET /v1/assign
        for visitor in ids[:500]:
            if from_sdk[visitor] is not None:
                assert _post_exposure(http, visitor, from_sdk[visitor])["recorded_now"] is False
        assert _visitors(server) == dict(before + enrolled)

        # with attributes: POST /v1/assign against the package for visitors the id excludes
        gb = growthbook.GrowthBook(api_host=server.url, client_key=client_key)
        gb.load_features()
        for i in range(300):
            visitor = f"py-plan-{i}7"
            attributes = {"plan": ["pro", "free", "team"][i % 3]}
            gb.set_attributes({"id": visitor, **attributes})
            expected = gb.get_feature_value("pricing-page", None)
            body = {
                "visitor_id": visitor,
                "experiments": ["pricing-page"],
                "attributes": attributes,
            }
            answer = http.post("/v1/assign", json=body).json()["assignments"]["pricing-page"]
            assert answer == expected, (visitor, attributes)
            if i % 3 == 1:
                assert answer is None
        gb.destroy()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/favicon.ico":  # the browser asks; there is none
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def bundle_server() -> Iterator[str]:
    """A loopback static server for the npm package's bundle and the test page."""
    if not (GROWTHBOOK_NPM / "index.js").exists():
        pytest.skip(
            "@growthbook/growthbook is not in .cache/npm (scripts/test.sh fetches it with npm pack)"
        )
    handler = functools.partial(_QuietHandler, directory=str(GROWTHBOOK_NPM))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


EVALUATE_IN_PAGE = """
async ({apiHost, clientKey, ids}) => {
  const { GrowthBook } = window.growthbook;
  const posts = [];
  // a page shows one visitor; this one plays 10,000, so their calls go out 8 at a time
  let free = 8;
  const waiting = [];
  const slot = () => free > 0 ? (free--, Promise.resolve()) : new Promise(r => waiting.push(r));
  const release = () => waiting.length ? waiting.shift()() : free++;
  const gb = new GrowthBook({
    apiHost, clientKey,
    trackingCallback: (experiment, result) => {
      // the one call docs/sdk.md gives for a GrowthBook trackingCallback
      posts.push(slot().then(() => fetch(apiHost + "/v1/exposures", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({visitor_id: result.hashValue, experiment: experiment.key,
                              variant: result.key}),
      })).then(r => r.json()).finally(release));
    },
  });
  const loaded = await gb.init({timeout: 10000});
  const variants = {};
  for (const id of ids) {
    await gb.setAttributes({id});
    variants[id] = gb.getFeatureValue("pricing-page", null);
  }
  const answers = await Promise.all(posts);
  return {loaded, variants, answers};
}
"""


@pytest.mark.browser
def test_npm_growthbook_package_in_chromium_agrees_and_its_exposures_count_once(
    served: tuple[LiveServer, str], bundle_server: str, page: Any
) -> None:
    server, client_key = served
    before = Counter(_visitors(server))
    page.goto(bundle_server + "/")  # a directory listing: an origin of its own, no script
    page.add_script_tag(url=bundle_server + "/index.js")
    ids = [f"js-{i}" for i in range(VISITORS)]
    got = page.evaluate(
        EVALUATE_IN_PAGE, {"apiHost": server.url, "clientKey": client_key, "ids": ids}
    )
    assert got["loaded"].get("success") is True, got["loaded"]
    from_sdk: dict[str, str | None] = got["variants"]
    enrolled = Counter(v for v in from_sdk.values() if v is not None)
    assert 3000 < sum(enrolled.values()) < 5000
    assert sorted(a["visitor_id"] for a in got["answers"]) == sorted(
        v for v, variant in from_sdk.items() if variant is not None
    )
    assert all(a["recorded_now"] is True for a in got["answers"])
    assert _visitors(server) == dict(before + enrolled)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert {visitor: _get_assign(http, visitor) for visitor in ids} == from_sdk
    assert _visitors(server) == dict(before + enrolled)
    assert page.outside_requests == []
    assert page.console_errors == []
