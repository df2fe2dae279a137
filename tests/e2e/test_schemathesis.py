"""Schemathesis against the live service: generated requests for every operation, every check.

A real uvicorn on loopback with the embedded Redis and an admin key; a fixed number of examples
per operation and a fixed seed keep the run bounded (about a minute here). It fails on any 5xx,
on any answer whose status, content type, headers or body the OpenAPI schema does not
describe, and on every other check schemathesis has. One setting is stated rather than left at
its default: a schema-valid request may be answered 422 when it breaks a rule JSON Schema cannot
express (unique variant keys, weights summing to 1, a timestamp within the last seven days).
The webhook points at a receiver on loopback and its ``PUT`` is left out, so no generated URL
is ever sent to (its validation has its own tests in ``tests/service/test_notify.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, RedisTarget
from tests.service.conftest import BUYAKILT
from tests.support.live_server import LiveServer
from tests.support.webhook_receiver import Receiver

EXAMPLES_PER_OPERATION = 20
KEY = "schema-test"

CONFIG = f"""
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path-regex = "^/v1/experiments/\\\\{{key\\\\}}"
parameters = {{ key = "{KEY}" }}

[[operations]]
include-path = "/v1/assign"
include-method = "GET"
parameters = {{ experiment = "{KEY}" }}

[[operations]]
include-path = "/v1/workspace/webhook"
include-method = "PUT"
enabled = false
"""


def _schemathesis() -> str | None:
    beside = Path(sys.executable).parent / "schemathesis"
    return str(beside) if beside.exists() else shutil.which("schemathesis")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    redis_server: RedisTarget, tmp_path: Path
) -> None:
    command = _schemathesis()
    if command is None:
        pytest.skip("schemathesis is not installed (it is in the test extras)")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {**redis_server.env(), "ABACUS_KEY_PREFIX": "schema", "ABACUS_ADMIN_KEY": ADMIN_KEY}
    with Receiver() as receiver, LiveServer(env) as server:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        hook = httpx.put(
            server.url + "/v1/workspace/webhook", json={"url": receiver.url}, headers=auth
        )
        assert hook.status_code == 200, hook.text
        created = httpx.post(
            server.url + "/v1/experiments", json={**BUYAKILT, "key": KEY}, headers=auth
        )
        assert created.status_code == 201, created.text
        run = subprocess.run(
            [
                command,
                "--config-file",
                str(config),
                "run",
                server.url + "/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "2026",
                "--header",
                f"Authorization: Bearer {ADMIN_KEY}",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "Tested:" in output
