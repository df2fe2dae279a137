"""``abacus report`` and ``abacus results`` against the live service.

The report file must be self-contained: opened with no server behind it, it shows its charts and
asks nothing of the network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from service.demo.casestudies import UK_TOOL_CENTRE
from service.demo.simulation import load_demo
from tests.conftest import ADMIN_KEY, LiveServer, StoreRunner


@pytest.fixture
def loaded(live_server: LiveServer, store: StoreRunner) -> LiveServer:
    store(lambda s: load_demo(s, seed=2024, scale=0.1, studies=[UK_TOOL_CENTRE]))
    return live_server


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)


def test_abacus_report_writes_one_self_contained_file(
    loaded: LiveServer, admin_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", UK_TOOL_CENTRE.key, "--out", str(out), "--url", loaded.url]) == 0
    assert f"wrote the report of {UK_TOOL_CENTRE.key}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert page.count('<svg class="chart"') == 2
    assert "Remove the filter menu from the product page" in page
    # Nothing to fetch: no scripts, stylesheets, images or links to the service.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page), re.findall(
        r'(?:src|href)="[^"]*"', page
    )
    assert "All experiments" not in page


@pytest.mark.browser
def test_the_report_file_renders_offline_in_chromium(
    loaded: LiveServer, admin_env: None, tmp_path: Path, page: Any, artifacts_dir: Path
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", UK_TOOL_CENTRE.key, "--out", str(out), "--url", loaded.url]) == 0
    loaded.stop()  # no service behind the file any more
    page.set_viewport_size({"width": 1200, "height": 900})
    page.set_content(out.read_text(encoding="utf-8"), wait_until="load")
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    for index in range(2):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 100
    page.screenshot(path=str(artifacts_dir / "report-file-uk-tool-centre.png"), full_page=True)
    assert page.console_errors == []
    assert page.outside_requests == []


def test_abacus_results_prints_the_read_out(
    loaded: LiveServer, admin_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", UK_TOOL_CENTRE.key, "--url", loaded.url]) == 0
    out = capsys.readouterr().out
    assert "Remove the filter menu from the product page (uk-tool-centre)" in out
    assert "engagement rate (primary)" in out
    assert "Without filter menu raised engagement rate by" in out
    assert "no-filter-menu" in out and "control" in out
    assert re.search(r"\[(Winning|Inconclusive)\] ", out)
    assert "Progress:" in out

    assert main(["results", UK_TOOL_CENTRE.key, "--json", "--url", loaded.url]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["experiment"] == UK_TOOL_CENTRE.key
    assert sum(results["srm"]["visitors"].values()) == 1680


def test_the_cli_names_an_unknown_experiment(
    loaded: LiveServer, admin_env: None, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="error 404"):
        main(["report", "nope", "--out", str(tmp_path / "x.html"), "--url", loaded.url])
    assert not (tmp_path / "x.html").exists()


def test_abacus_results_breaks_down_by_a_dimension(
    live_server: LiveServer,
    store: StoreRunner,
    admin_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from service.demo.casestudies import BUYAKILT

    store(lambda s: load_demo(s, seed=2024, scale=0.02, studies=[BUYAKILT]))
    args = ["results", BUYAKILT.key, "--dimension", "device", "--url", live_server.url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Breakdown by device" in out and "not for picking winners" in out
    for device in ("mobile", "desktop", "tablet"):
        assert device in out
    assert "Lower is better." in out  # the refunds guardrail
    assert main([*args, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {s["value"] for s in results["breakdown"]["slices"]} == {"mobile", "desktop", "tablet"}
    with pytest.raises(SystemExit, match="'colour' is not a dimension"):
        main(["results", BUYAKILT.key, "--dimension", "colour", "--url", live_server.url])
