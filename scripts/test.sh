#!/usr/bin/env bash
# Install everything the test suite needs into .venv (and Debian's chromium, wrk and
# redis-server, whose binaries make the test Redis Cluster), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1 \
  || ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk redis-server >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk redis-server >/dev/null
  else
    echo "no root: chromium, wrk and redis-server not installed: browser and cluster tests will skip" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# GrowthBook's JavaScript SDK from the npm registry, for the compatibility test in Chromium; it
# is never committed (.cache/ is git-ignored) and its test skips with a reason when it is absent
GB_NPM=.cache/npm/growthbook
if [ ! -f "$GB_NPM/package/dist/bundles/index.js" ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$GB_NPM"
    (cd "$GB_NPM" && npm pack --silent "@growthbook/growthbook@^1.8" >/dev/null \
      && tar xzf growthbook-growthbook-*.tgz) \
      || echo "could not fetch @growthbook/growthbook from npm: its browser test will skip" >&2
  else
    echo "no npm: @growthbook/growthbook not fetched, its browser test will skip" >&2
  fi
fi
.venv/bin/python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy experiments service stats bench examples tests
# pytest includes the live-service checks in tests/e2e: schemathesis against a real uvicorn
# (test_schemathesis.py), SIGKILL of the service and its Redis mid-load (test_kill9.py) and
# the `abacus serve` supervisor (test_supervisor.py).
.venv/bin/python -m pytest "$@"
