"""The notebooks run top to bottom (nbclient, the ``python3`` kernel) against a live service.

The analysis notebook asserts inside itself that the numbers it recomputes from the raw events
equal the service's read-out (visitors, totals, lifts, intervals, p-values within 1e-9), so an
error in any cell, that check included, fails the test. It runs twice: on Buyakilt traffic with
a ``device`` attribute and returning shoppers (pre-exposure history, for the segment and CUPED
sections), and on the demo exactly as ``abacus serve --demo`` loads it. The SQL notebook checks
the same way that its DuckDB totals equal the read-out. Notebooks are kept without outputs in
the repository.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from experiments.assignment import decide
from experiments.definitions import Experiment, Status, transition
from experiments.embedded import EmbeddedRedis
from experiments.store import Store, TrackEvent, TrackOutcome, encode_attributes
from service.demo.casestudies import BUYAKILT
from service.demo.simulation import load_demo
from tests.conftest import ADMIN_KEY, LiveServer
from tests.support.store import StoreRunner

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DAY_MS = 86_400_000
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARE = (0.55, 0.35, 0.10)
DEVICE_RATE = {"mobile": 0.8, "desktop": 1.3, "tablet": 1.0}  # conversion relative to average
FILTERS_LIFT = {"mobile": 1.15, "desktop": 1.40, "tablet": 1.20}  # filters help desktop most


async def _buyakilt_with_devices(store: Store, *, visitors: int, seed: int, end_ms: int) -> None:
    """Buyakilt over 28 days: devices at assignment, and a purchase history for some shoppers.

    Each shopper has a propensity to buy (gamma, mean 1) that drives both the 30 days before
    exposure (purchases and cart views the site tracked before the shopper entered the test)
    and the test itself, so the history predicts the outcome, as it does for real returning
    customers; filters lift conversion by device and order values by 40%.
    """
    rng = np.random.default_rng(seed)
    start_ms = end_ms - 28 * DAY_MS
    draft = Experiment.model_validate({**BUYAKILT.definition, "created_at": start_ms / 1000})
    experiment = transition(draft, Status.RUNNING, now=start_ms / 1000)
    experiment = await store.create_experiment(experiment)
    ids = [f"shopper-{i:06d}" for i in range(visitors)]
    variant = np.array([decide(experiment, v).variant_index for v in ids])
    arrival = np.sort(rng.integers(start_ms, end_ms - 3_600_000, visitors))
    device = rng.choice(len(DEVICES), visitors, p=DEVICE_SHARE)
    propensity = rng.gamma(0.3, 1 / 0.3, visitors)
    await store.record_exposure_batch(
        experiment,
        [
            (ids[i], int(variant[i]), int(arrival[i]), encode_attributes({"device": DEVICES[d]}))
            for i, d in enumerate(device.tolist())
        ],
    )
    events: list[TrackEvent] = []

    def add(i: int, event: str, value: float, ms: int) -> None:
        events.append(TrackEvent(ids[i], event, value, repr(value), int(min(ms, end_ms - 1))))

    for i in range(visitors):
        name = DEVICES[device[i]]
        for _ in range(rng.poisson(0.5 * propensity[i])):  # purchases before the test
            add(
                i,
                "purchase",
                round(float(rng.lognormal(4.7, 0.5)), 2),
                arrival[i] - 1 - int(rng.integers(0, 30 * DAY_MS)),
            )
        for _ in range(rng.poisson(1.5 * propensity[i])):
            add(i, "cart_view", 0.0, arrival[i] - 1 - int(rng.integers(0, 30 * DAY_MS)))
        lift = FILTERS_LIFT[name] if variant[i] == 1 else 1.0
        rate = min(0.9, 0.03 * propensity[i] * DEVICE_RATE[name] * lift)
        if rng.random() < rate:
            for _ in range(1 + rng.poisson(0.2)):
                value = rng.lognormal(4.7, 0.5) * (1.4 if variant[i] == 1 else 1.0)
                add(
                    i,
                    "purchase",
                    round(float(value), 2),
                    arrival[i] + int(rng.exponential(DAY_MS / 24)),
                )
        for _ in range(rng.poisson(0.4 * propensity[i] * (1.2 if variant[i] == 1 else 1.0))):
            add(i, "cart_view", 0.0, arrival[i] + int(rng.exponential(DAY_MS / 24)))
    for lo in range(0, len(events), 2_000):
        batch = events[lo : lo + 2_000]
        outcomes = await store.track([experiment], batch)
        assert all(o[experiment.key] is not TrackOutcome.NOT_EXPOSED for o in outcomes)


def _load(redis_url: str, prefix: str, traffic: str) -> None:
    async def run(store: Store) -> None:
        end_ms = int(time.time() * 1000)
        if traffic == "devices":
            await _buyakilt_with_devices(store, visitors=20_000, seed=7, end_ms=end_ms)
        else:
            await load_demo(store, seed=2024, scale=0.25, studies=[BUYAKILT], end_ms=end_ms)

    StoreRunner(redis_url, prefix)(run)


@pytest.fixture
def jupyter_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Jupyter's own directories in a temporary place, and no platformdirs migration notice.

    The kernel starts in ``notebooks/``; the checkout goes on its path so that ``stats`` and
    ``service`` import whether or not the project is installed into the environment.
    """
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))


def _execute(name: str) -> nbformat.NotebookNode:
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    if os.environ.get("ABACUS_KEEP_EXECUTED"):  # to look at the outputs: a directory to write to
        nbformat.write(notebook, Path(os.environ["ABACUS_KEEP_EXECUTED"]) / name)
    executed: nbformat.NotebookNode = notebook
    return executed


def _text(notebook: nbformat.NotebookNode) -> str:
    out = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            out.append(output.get("text", ""))
            out.append(json.dumps(output.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.fixture
def served(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis, key_prefix: str
) -> Iterator[LiveServer]:
    _load(redis_server.url, key_prefix, request.param)
    server = LiveServer(
        {
            "ABACUS_REDIS_URL": redis_server.url,
            "ABACUS_KEY_PREFIX": key_prefix,
            "ABACUS_ADMIN_KEY": ADMIN_KEY,
        }
    ).start()
    yield server
    server.stop()


@pytest.mark.parametrize("served", ["devices", "demo"], indirect=True)
def test_analysis_notebook_reproduces_the_read_out(
    served: LiveServer, jupyter_env: None, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    monkeypatch.setenv("ABACUS_URL", served.url)
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("ABACUS_EXPERIMENT", raising=False)
    notebook = _execute("buyakilt_analysis.ipynb")
    text = _text(notebook)
    assert "all equal to the service's read-out" in text
    assert _images(notebook) >= 4
    # both the generated traffic and the demo give each exposure a device segment
    for device in ("mobile", "desktop", "tablet"):
        assert device in text
    assert "one segment only" not in text
    if request.node.callspec.params["served"] == "devices":
        assert "of visitors have pre-exposure activity" in text
        assert "CUPED with the visitors' earlier activity cut the variance by up to" in text
    else:
        assert "CUPED changed nothing: the log holds no pre-exposure activity" in text


@pytest.mark.parametrize("served", ["demo"], indirect=True)
def test_sql_notebook_totals_equal_the_read_out(
    served: LiveServer, jupyter_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DuckDB notebook asserts inside itself that its SQL totals equal the read-out."""
    monkeypatch.setenv("ABACUS_URL", served.url)
    monkeypatch.setenv("ABACUS_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("ABACUS_EXPERIMENT", raising=False)
    notebook = _execute("sql_analysis.ipynb")
    text = _text(notebook)
    assert _images(notebook) == 2  # the lift and the cumulative lift
    assert "10 SQL totals (and every variant's visitors) equal the service's read-out" in text
    assert "recomputed from SQL and equal to the service's" in text
    assert "devices: desktop, mobile, tablet" in text
    assert "return_on_traffic" in text


def test_planning_notebook_runs(jupyter_env: None) -> None:
    notebook = _execute("planning.ipynb")
    text = _text(notebook)
    assert "visitors per variant" in text and _images(notebook) == 1


def test_notebooks_are_kept_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
