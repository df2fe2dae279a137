"""The ``abacus`` command against a live service."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from service.cli import main
from tests.conftest import ADMIN_KEY, LiveServer
from tests.service.conftest import BUYAKILT


def test_experiment_lifecycle_from_the_cli(
    live_server: LiveServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)
    definition = tmp_path / "buyakilt.json"
    definition.write_text(json.dumps(BUYAKILT))
    url = ["--url", live_server.url]
    assert main(["experiments", "create", str(definition), *url]) == 0
    assert "created buyakilt-filters (draft)" in capsys.readouterr().out
    assert main(["experiments", "start", "buyakilt-filters", *url]) == 0
    assert "is now running" in capsys.readouterr().out
    assert main(["experiments", "list", *url]) == 0
    listing = capsys.readouterr().out
    assert "buyakilt-filters" in listing and "running" in listing
    assert main(["experiments", "stop", "buyakilt-filters", "--winner", "filters", *url]) == 0
    assert "is now stopped" in capsys.readouterr().out
    got = httpx.get(
        f"{live_server.url}/v1/experiments/buyakilt-filters",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert (got["status"], got["winner"]) == ("stopped", "filters")
    with pytest.raises(SystemExit, match="error 409: status cannot go from 'stopped'"):
        main(["experiments", "start", "buyakilt-filters", *url])


def test_cli_reports_a_missing_admin_key(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ABACUS_ADMIN_KEY", raising=False)
    with pytest.raises(SystemExit, match="error 401"):
        main(["experiments", "list", "--url", live_server.url])


def test_serve_refuses_public_host_without_admin_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ABACUS_ADMIN_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "ABACUS_ADMIN_KEY is not set" in capsys.readouterr().err


def test_bandit_show_and_step_from_the_cli(
    live_server: LiveServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)
    definition = tmp_path / "bandit.json"
    definition.write_text(json.dumps({**BUYAKILT, "key": "kilt-bandit", "allocation": "bandit"}))
    url = ["--url", live_server.url]
    assert main(["experiments", "create", str(definition), *url]) == 0
    assert main(["experiments", "start", "kilt-bandit", *url]) == 0
    capsys.readouterr()
    assert main(["bandit", "step", "kilt-bandit", *url]) == 0
    assert "not due yet; weights stay: control 50.0%, filters 50.0%" in capsys.readouterr().out
    assert main(["bandit", "step", "kilt-bandit", "--force", *url]) == 0
    out = capsys.readouterr().out
    assert "kilt-bandit re-weighted" in out and "open" in out
    assert main(["bandit", "show", "kilt-bandit", *url]) == 0
    assert "not comparable yet" in capsys.readouterr().out
    with pytest.raises(
        SystemExit, match="error 422: experiment 'buyakilt-filters' is not a bandit"
    ):
        definition.write_text(json.dumps(BUYAKILT))
        main(["experiments", "create", str(definition), *url])
        main(["bandit", "show", "buyakilt-filters", *url])
