"""The dashboard and report pages on the real app and Redis: access, empty and degenerate data."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

from experiments.assignment import decide
from experiments.definitions import Experiment
from experiments.keys import Keyspace
from experiments.store import Store, connect
from service.loops import run_sync
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.service.conftest import AUTH, BUYAKILT, create_running


def _text(page: str) -> str:
    """The visible text of a page: scripts and charts dropped, tags removed, entities decoded."""
    page = re.sub(r"<(style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _page(client: TestClient, path: str) -> str:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _no_fake_numbers(text: str) -> None:
    for token in ("nan", "NaN", "inf", "None", "null"):
        assert not re.search(rf"\b{token}\b", text), token


def _assign(client: TestClient, key: str, visitors: list[str]) -> None:
    for visitor in visitors:
        response = client.get("/v1/assign", params={"experiment": key, "visitor_id": visitor})
        assert response.status_code == 200, response.text


def _visitors_in(definition: dict[str, Any], variant: int, count: int) -> list[str]:
    experiment = Experiment.model_validate({**definition, "status": "running"})
    found = [f"v{i}" for i in range(2000) if decide(experiment, f"v{i}").variant_index == variant]
    return found[:count]


def test_pages_without_the_key_redirect_to_sign_in(client: TestClient) -> None:
    for path in ("/", "/experiments/anything"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"
    assert "Sign in to Abacus" in _text(client.get("/login?next=/").text)


def test_sign_in_gives_a_read_only_session(client: TestClient) -> None:
    wrong = client.post("/login", data={"key": "guess", "next": "/"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert "That is not a valid key" in wrong.text
    assert "abacus_session" not in wrong.headers.get("set-cookie", "")
    response = client.post(
        "/login", data={"key": ADMIN_KEY, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # never an off-site redirect
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN_KEY not in cookie
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.get("/v1/experiments").status_code == 200  # reading the API works too
    # but the session never authorises a change
    response = client.post("/v1/experiments", json={"key": "x"})
    assert response.status_code == 401
    client.post("/logout")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_unknown_experiment_is_a_404_page(client: TestClient) -> None:
    response = client.get("/experiments/no-such-thing", headers=AUTH)
    assert response.status_code == 404
    assert "No experiment “no-such-thing”" in _text(response.text)


def test_the_dashboard_without_experiments_says_how_to_start(client: TestClient) -> None:
    text = _text(_page(client, "/"))
    assert "No experiments yet" in text
    assert "abacus demo" in text


def test_an_experiment_with_no_traffic_shows_not_enough_data(client: TestClient) -> None:
    response = client.post("/v1/experiments", json=BUYAKILT, headers=AUTH)
    assert response.status_code == 201
    text = _text(_page(client, "/experiments/buyakilt-filters"))
    assert "Not enough data yet for filters: no visitors in control and filters yet." in text
    assert "Not enough data to plan yet" in text
    assert "not started" in text
    assert "Winning" not in text and "Inconclusive" not in text
    _no_fake_numbers(text)
    row = re.search(r'<tr data-experiment="buyakilt-filters">.*?</tr>', _page(client, "/"), re.S)
    assert row is not None
    assert "Not enough data" in _text(row.group(0))


def test_one_empty_variant_shows_not_enough_data(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    _assign(client, "buyakilt-filters", _visitors_in(BUYAKILT, 0, 5))
    text = _text(_page(client, "/experiments/buyakilt-filters"))
    assert "Not enough data yet for filters: no visitors in filters yet." in text
    assert "Sample ratio mismatch" not in text
    _no_fake_numbers(text)


def test_zero_conversions_show_not_enough_data(client: TestClient) -> None:
    create_running(client, BUYAKILT)
    _assign(client, "buyakilt-filters", [f"visitor-{i}" for i in range(40)])
    page = _page(client, "/experiments/buyakilt-filters")
    text = _text(page)
    assert "Not enough data yet for filters: no conversions yet in either variant." in text
    assert "Not enough data yet for a daily chart: it needs two days with data." in text
    assert text.count("not enough data") >= 5  # the filters row of every metric's table
    _no_fake_numbers(text)
    # The lift chart is still drawn, with every row marked as having no data.
    assert page.count('<svg class="chart"') == 1


def test_a_sample_ratio_mismatch_puts_a_banner_over_every_verdict(
    client: TestClient, settings: Settings
) -> None:
    create_running(client, BUYAKILT)
    definition = client.get("/v1/experiments/buyakilt-filters", headers=AUTH).json()
    experiment = Experiment.model_validate(definition)
    _skew(settings, experiment)
    client.post(
        "/v1/track/batch",
        json={
            "events": [
                {"visitor_id": f"s{i}", "event": "purchase", "value": 30.0}
                for i in range(0, 450, 7)
            ]
        },
    )
    page = _page(client, "/experiments/buyakilt-filters")
    text = _text(page)
    assert 'role="alert"' in page
    assert "Sample ratio mismatch: do not trust these results" in text
    assert "What to do:" in text
    assert "Winning" not in text and "Losing" not in text and "Inconclusive" not in text
    # once in the verdict, once per metric's table (wide screens) and once per metric's
    # compact list (phones: the same rows, shown instead of the table by the page's CSS)
    assert text.count("SRM problem") == 1 + 2 * len(BUYAKILT["metrics"])
    assert page.count('<ul class="compact narrow-only">') == len(BUYAKILT["metrics"])
    dashboard = _text(_page(client, "/"))
    assert "SRM problem" in dashboard


def _skew(settings: Settings, experiment: Experiment) -> None:
    """300 visitors recorded in control and 150 in filters, against a 50/50 split."""

    async def write() -> None:
        assert settings.redis_url is not None
        client = connect(settings.redis_url, cluster=settings.redis_cluster)
        store = Store(client, Keyspace(settings.key_prefix))
        now_ms = int((experiment.started_at or 0) * 1000) + 1000
        for i in range(450):
            await store.record_exposure(experiment, f"s{i}", 0 if i < 300 else 1, now_ms=now_ms)
        await client.aclose()

    run_sync(write)


def test_an_experiment_without_metrics_renders(client: TestClient) -> None:
    definition = {**BUYAKILT, "key": "no-metrics", "metrics": []}
    create_running(client, definition)
    _assign(client, "no-metrics", [f"v{i}" for i in range(10)])
    text = _text(_page(client, "/experiments/no-metrics"))
    assert "The experiment has no primary metric." in text
    _no_fake_numbers(text)
    assert "Not enough data" in _text(_page(client, "/"))
