"""The worked examples in examples/ run as scripts and recover the true lifts they simulate."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["buyakilt", "uk_tool_centre"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_as_a_script(name: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-W", "error", f"examples/{name}.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stderr == ""
    last = completed.stdout.strip().splitlines()[-1]
    assert last.startswith("True lift inside") and "False" not in last


def test_buyakilt_recovers_the_published_lifts() -> None:
    example = _load("buyakilt")
    assert example.TRUE_RELATIVE_LIFTS["conversion"] == 0.26
    assert example.TRUE_RELATIVE_LIFTS["revenue"] == 0.761
    assert example.TRUE_RELATIVE_LIFTS["cart_visits"] == 0.1976
    table = example.analyse(example.simulate())
    assert all(example.recovered(table).values())
    filters = table[table.variant == "filters"].set_index("metric")
    assert (filters.pvalue < 0.05).all()


def test_uk_tool_centre_recovers_the_published_lift() -> None:
    example = _load("uk_tool_centre")
    assert example.TRUE_RELATIVE_LIFTS["engagement"] == 0.27
    frame = example.simulate()
    table = example.analyse(frame)
    sequential, fixed = example.monitor(frame)
    assert all(example.recovered(table, sequential).values())
    cuped_row = table[(table.metric == "engagement_cuped") & (table.variant != "control")]
    assert float(cuped_row.variance_reduction.iloc[0]) > 0.2
    assert sequential.pvalue < 0.05
    assert len(fixed) == len(sequential.pvalues) == example.DAYS


def _within_99_9_percent(rows, truths: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    """|estimate - truth| below 3.29 standard errors (read off the 95% interval)."""
    for metric, truth in truths.items():
        se = (rows.at[metric, "relative_ci_high"] - rows.at[metric, "relative_ci_low"]) / (2 * 1.96)
        assert abs(rows.at[metric, "relative_lift"] - truth) < 3.29 * se, metric


def test_simulators_encode_exactly_the_stated_lifts() -> None:
    """With ten times the visitors the estimates are tight and centred on the stated lifts."""
    buyakilt = _load("buyakilt")
    table = buyakilt.analyse(buyakilt.simulate(seed=1, visitors=400_000))
    filters = table[table.variant == "filters"].set_index("metric")
    assert ((filters.relative_ci_high - filters.relative_ci_low) < 0.2).all()
    _within_99_9_percent(filters, buyakilt.TRUE_RELATIVE_LIFTS)
    uk = _load("uk_tool_centre")
    table = uk.analyse(uk.simulate(seed=1, visitors_per_day=4_000))
    _within_99_9_percent(
        table[table.variant != "control"].set_index("metric"), uk.TRUE_RELATIVE_LIFTS
    )
