"""``abacus keys`` against a live service: create shows the secret once, list never, revoke."""

from __future__ import annotations

import re

import httpx
import pytest

from service.cli import main
from tests.conftest import ADMIN_KEY, LiveServer


def test_keys_create_list_and_revoke_from_the_cli(
    live_server: LiveServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("ABACUS_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    url = ["--url", live_server.url]
    assert main(["keys", "create", "board", "--role", "viewer", *url]) == 0
    out = capsys.readouterr().out
    secret_match = re.search(r"abk_[A-Za-z0-9_-]{43}", out)
    id_match = re.search(r"id ([0-9a-f]{16})", out)
    assert secret_match is not None and id_match is not None, out
    assert "only time the key is shown" in out
    secret, key_id = secret_match.group(0), id_match.group(1)
    assert main(["keys", "list", *url]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "board" in listing and "viewer" in listing
    assert "ABACUS_ADMIN_KEY (bootstrap)" in listing and secret not in listing
    # the new key works for the CLI too (ABACUS_KEY wins), and its role holds
    monkeypatch.setenv("ABACUS_KEY", secret)
    assert main(["experiments", "list", *url]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit, match="error 403: this needs the role 'admin'"):
        main(["keys", "list", *url])
    monkeypatch.delenv("ABACUS_KEY")
    assert main(["keys", "revoke", key_id, *url]) == 0
    assert f"revoked key {key_id}" in capsys.readouterr().out
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{live_server.url}/v1/experiments", headers=headers).status_code == 401
    with pytest.raises(SystemExit, match="error 404"):
        main(["keys", "revoke", key_id, *url])
    with pytest.raises(SystemExit, match="error 422"):
        main(["keys", "create", "bad<name>", "--role", "viewer", *url])
    with pytest.raises(SystemExit):
        main(["keys", "revoke", *url])  # needs an id
