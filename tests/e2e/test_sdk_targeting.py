"""The browser SDK's targeting in Chromium: GrowthBook's 248 evalCondition rows, local decisions
equal to Python's with conditions, namespaces, holdouts, hash attributes and QA pins, URL
forcing, onExposure, the anti-flicker helper and the ES module build."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from experiments.assignment import decide
from experiments.definitions import Experiment
from service.api.routers.sdk import public_definition, sdk_source
from tests.conftest import ADMIN_KEY, LiveServer, RedisTarget, delete_prefix

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CASES: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "growthbook-cases.json").read_text())
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
VARIANTS = [
    {"key": "control", "weight": 0.4},
    {"key": "b", "weight": 0.35},
    {"key": "c", "weight": 0.25},
]


@pytest.fixture(scope="module")
def js(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content("<!doctype html><title>sdk</title>")
    page.add_script_tag(content=sdk_source().decode())
    yield page
    context.close()
    assert errors == []


def test_all_248_eval_condition_rows_pass_in_chromium(js: Any) -> None:
    rows = CASES["evalCondition"]
    assert len(rows) == 248
    got = js.evaluate(
        "rows => rows.map(r => abacus.targeting.evalCondition(r[2], r[1], r[4]))", rows
    )
    failed = [row[0] for row, answer in zip(rows, got, strict=True) if answer is not row[3]]
    assert failed == []


def _definitions() -> list[Experiment]:
    def running(key: str, **fields: Any) -> Experiment:
        data = {"key": key, "variants": VARIANTS, "status": "running", "seed": key + "-s", **fields}
        return Experiment.model_validate(data)

    holdout = running(
        "holdout",
        kind="holdout",
        variants=[{"key": "holdout", "weight": 0.15}, {"key": "general", "weight": 0.85}],
    )
    return [
        holdout,
        running(
            "targeted",
            coverage=0.7,
            condition={
                "$or": [
                    {"country": {"$in": ["UK", "IE"]}, "app.version": {"$vgte": "2.1.0"}},
                    {"age": {"$gt": 40}, "tags": {"$elemMatch": {"$regex": "^vip"}}},
                ]
            },
            namespace={"id": "checkout", "start": 0.2, "end": 0.9},
            holdout="holdout",
            forced={"qa-1": "c"},
        ),
        running("by-company", hash_attribute="company", holdout="holdout"),
    ]


def _attributes(rng: random.Random) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "country": rng.choice(["UK", "IE", "FR", "DE"]),
        "app": {"version": rng.choice(["2.0.9", "2.1.0", "2.10.0-beta", "3.0.0", "v1.9.0"])},
        "age": rng.choice([18, 35, 41, 70, "45", None]),
        "tags": rng.sample(["vip-gold", "new", "vip", "returning", "x-vip"], rng.randint(0, 3)),
    }
    if rng.random() < 0.8:
        attributes["company"] = rng.choice(["acme", "globex", "initech", 42, ""])
    return attributes


def test_local_decisions_equal_python_on_10k_visitors_with_targeting(js: Any) -> None:
    experiments = _definitions()
    rng = random.Random(13)
    visitors = [(f"v{i}-{rng.random():.6f}", _attributes(rng)) for i in range(10_000)]
    visitors.append(("qa-1", {}))
    snapshot = [public_definition(e).model_dump(mode="json") for e in experiments]
    got = js.evaluate(
        """([defs, visitors]) => {
          const byKey = {};
          defs.forEach(d => { byKey[d.key] = d; });
          return visitors.map(([id, attrs]) =>
            defs.map(d => abacus.bucketing.decide(d, id, attrs, byKey)));
        }""",
        [snapshot, visitors],
    )
    by_key = {e.key: e for e in experiments}
    expected = [
        [decide(e, vid, attrs, holdout=by_key.get(e.holdout or "")).variant for e in experiments]
        for vid, attrs in visitors
    ]
    assert got == expected
    targeted = [row[1] for row in expected]
    assert 0.05 < sum(v is not None for v in targeted) / len(targeted) < 0.5
    assert expected[-1][1] == "c"


_prefixes = itertools.count()


@pytest.fixture(scope="module")
def server(redis_server: RedisTarget) -> Iterator[LiveServer]:
    prefix = f"sdkt{next(_prefixes)}"
    live = LiveServer(
        {**redis_server.env(), "ABACUS_KEY_PREFIX": prefix, "ABACUS_ADMIN_KEY": ADMIN_KEY}
    ).start()
    definition = {
        "key": "hero",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "big", "weight": 0.5}],
        "condition": {"plan": "pro"},
    }
    assert (
        httpx.post(live.url + "/v1/experiments", json=definition, headers=AUTH).status_code == 201
    )
    started = httpx.patch(
        live.url + "/v1/experiments/hero", json={"status": "running"}, headers=AUTH
    )
    assert started.status_code == 200
    yield live
    live.stop()
    delete_prefix(redis_server, prefix)


def _visitors(server: LiveServer) -> int:
    results = httpx.get(server.url + "/v1/experiments/hero/results", headers=AUTH, timeout=30)
    return int(sum(results.json()["srm"]["visitors"].values()))


PAGE = """<!doctype html><title>t</title><script src="/sdk.js"></script>"""


def test_attributes_target_on_exposure_reports_once_and_url_pins_are_not_recorded(
    server: LiveServer, page: Any
) -> None:
    page.route(
        server.url + "/page*", lambda route: route.fulfill(body=PAGE, content_type="text/html")
    )
    page.goto(server.url + "/page")
    before = _visitors(server)
    result = page.evaluate(
        """async () => {
          const seen = [];
          for (const [id, plan] of [["pro-1", "pro"], ["free-1", "free"]]) {
            abacus.init({visitorId: id, attributes: {plan}, onExposure: e => seen.push(e)});
            await abacus.assign("hero");
            await abacus.assign("hero");
          }
          abacus.init({visitorId: "pro-1", attributes: {plan: "pro"}});
          return {seen, variant: await abacus.assign("hero")};
        }"""
    )
    assert [e["visitorId"] for e in result["seen"]] == ["pro-1"]
    assert result["seen"][0] == {
        "experiment": "hero",
        "variant": result["variant"],
        "visitorId": "pro-1",
    }
    assert _visitors(server) == before + 1

    page.goto(server.url + "/page?abacus=hero:big")
    pinned = page.evaluate(
        """async () => {
          const seen = [];
          abacus.init({visitorId: "pinned-1", attributes: {plan: "free"},
                       onExposure: e => seen.push(e)});
          return {variant: await abacus.assign("hero"), seen};
        }"""
    )
    assert pinned == {"variant": "big", "seen": []}
    assert _visitors(server) == before + 1
    assert page.console_errors == [] and page.outside_requests == []


def test_hide_until_assigned_hides_then_shows_even_when_the_service_hangs(
    server: LiveServer, page: Any
) -> None:
    page.route(
        server.url + "/page*", lambda route: route.fulfill(body=PAGE, content_type="text/html")
    )
    page.route(server.url + "/v1/assign*", lambda route: None)  # never answered
    page.goto(server.url + "/page")
    timeline = page.evaluate(
        """async () => {
          abacus.init({visitorId: "slow-1", attributes: {plan: "pro"}, timeoutMs: 60000});
          const hidden = () => getComputedStyle(document.documentElement).opacity === "0";
          const done = abacus.hideUntilAssigned("hero", {timeoutMs: 300});
          const during = hidden();
          await new Promise(r => setTimeout(r, 600));
          return {during, after: hidden(), settled: await Promise.race([done.then(() => true),
            new Promise(r => setTimeout(() => r(false), 50))])};
        }"""
    )
    assert timeline == {"during": True, "after": False, "settled": False}
    page.unroute(server.url + "/v1/assign*")


def test_es_module_build_imports_and_assigns(server: LiveServer, page: Any) -> None:
    module_page = (
        '<!doctype html><title>m</title><script type="module">'
        'import abacus, {assign} from "/sdk.mjs"; window.imported = {abacus, assign};</script>'
    )
    page.route(
        server.url + "/mod*",
        lambda route: route.fulfill(body=module_page, content_type="text/html"),
    )
    page.goto(server.url + "/mod")
    page.wait_for_function("window.imported !== undefined")
    variant = page.evaluate(
        """async () => {
          const {abacus, assign} = window.imported;
          abacus.init({visitorId: "module-1", attributes: {plan: "pro"}});
          return [abacus === window.abacus, await assign("hero")];
        }"""
    )
    expected = httpx.post(
        server.url + "/v1/assign",
        json={"visitor_id": "module-1", "attributes": {"plan": "pro"}},
    ).json()["assignments"]["hero"]
    assert variant == [True, expected] and expected is not None
    assert page.console_errors == []


def test_type_declarations_name_every_public_member(server: LiveServer, page: Any) -> None:
    page.route(
        server.url + "/page*", lambda route: route.fulfill(body=PAGE, content_type="text/html")
    )
    page.goto(server.url + "/page")
    members = page.evaluate(
        "() => [abacus, abacus.bucketing, abacus.targeting].flatMap(o => Object.keys(o))"
    )
    declarations = httpx.get(server.url + "/sdk.d.ts").text
    declared = {m for m in members if f" {m}(" in declarations or f" {m}:" in declarations}
    missing = [m for m in members if m != "__abacus" and m not in declared]
    assert missing == []
