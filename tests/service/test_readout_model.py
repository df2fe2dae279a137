"""The typed read-out: a real build from real store totals goes through the strict model.

Traffic goes through the HTTP API into the session's real Redis; the totals come back from the
store, ``build_results`` turns them into :class:`ExperimentResults`, and its JSON must parse
back into the same value with unknown fields forbidden. A field renamed or dropped on either
side must fail validation, not read as missing.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from rich.console import Console

import service.readout.build as build
import service.readout.verdicts as verdicts
import service.report.charts as charts
from experiments.definitions import Experiment
from experiments.store import Store, VariantTotals
from service.readout.build import build_results
from service.readout.model import ExperimentResults, VerdictKind
from service.report.html import report_html
from service.report.terminal import results_renderables
from tests.service.conftest import AUTH, BUYAKILT, create_running
from tests.support.store import StoreRunner

Stored = tuple[Experiment, list[VariantTotals], list[tuple[str, list[VariantTotals]]]]


def _traffic(client: TestClient) -> None:
    """160 visitors through the API; a purchase or a cart view for some of them."""
    create_running(client, BUYAKILT)
    for i in range(160):
        visitor = f"v{i}"
        assigned = client.get(
            "/v1/assign", params={"experiment": BUYAKILT["key"], "visitor_id": visitor}
        )
        assert assigned.status_code == 200, assigned.text
        if i % 4 == 0:
            body = {"visitor_id": visitor, "event": "purchase", "value": 20 + i % 7}
            assert client.post("/v1/track", json=body).status_code == 200
        if i % 3 == 0:
            body = {"visitor_id": visitor, "event": "cart_view"}
            assert client.post("/v1/track", json=body).status_code == 200


def _stored(store: StoreRunner) -> Stored:
    async def work(s: Store) -> Stored:
        experiment = await s.get_experiment(BUYAKILT["key"])
        return experiment, await s.totals(experiment), await s.daily_totals(experiment)

    return store(work)


@pytest.fixture
def built(client: TestClient, store: StoreRunner) -> ExperimentResults:
    _traffic(client)
    experiment, totals, daily = _stored(store)
    return build_results(experiment, totals, daily, time.time())


def _models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """``model`` and every model its fields hold, however deeply nested."""
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for field in current.model_fields.values():
            todo += [t for t in _types(field.annotation) if issubclass(t, BaseModel)]


def _types(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type):
        yield annotation
    for argument in getattr(annotation, "__args__", ()):
        yield from _types(argument)


def test_every_model_of_the_read_out_is_frozen_and_forbids_extra_fields() -> None:
    models = list(_models(ExperimentResults))
    assert len(models) >= 7  # results, srm, progress, metric, variant, series point, verdict
    for model in models:
        assert model.model_config.get("extra") == "forbid", model
        assert model.model_config.get("frozen") is True, model


def test_a_real_build_round_trips_through_the_strict_model(
    client: TestClient, built: ExperimentResults
) -> None:
    payload = json.loads(built.model_dump_json())
    assert ExperimentResults.model_validate(payload) == built
    conversion = built.metrics[0]
    assert (conversion.name, conversion.primary) == ("conversion", True)
    assert sum(row.visitors for row in conversion.variants) == 160
    assert sum(row.total for row in conversion.variants) == 40
    treatment = conversion.treatments[0]
    assert treatment.pvalue is not None and treatment.relative_ci is not None
    assert treatment.verdict is not None and conversion.control.verdict is None
    # The endpoint serves the same read-out (only the clock-dependent parts may differ).
    response = client.get(f"/v1/experiments/{BUYAKILT['key']}/results", headers=AUTH)
    served = ExperimentResults.model_validate_json(response.content)
    assert served.metrics == built.metrics
    assert (served.srm, served.verdict) == (built.srm, built.verdict)


@pytest.mark.parametrize("where", ["row", "metric", "srm", "top"])
def test_a_renamed_field_fails_loudly(built: ExperimentResults, where: str) -> None:
    payload = json.loads(built.model_dump_json())
    holder, old, new = {
        "row": (payload["metrics"][0]["variants"][1], "pvalue", "p_value"),
        "metric": (payload["metrics"][0], "primary", "is_primary"),
        "srm": (payload["srm"], "mismatch", "sample_ratio_mismatch"),
        "top": (payload, "verdict", "overall_verdict"),
    }[where]
    holder[new] = holder.pop(old)
    with pytest.raises(ValidationError) as raised:
        ExperimentResults.model_validate(payload)
    found = {(e["type"], str(e["loc"][-1])) for e in raised.value.errors()}
    assert ("extra_forbidden", new) in found
    assert ("missing", old) in found


def test_a_missing_field_fails_loudly_on_both_sides(built: ExperimentResults) -> None:
    payload = json.loads(built.model_dump_json())
    del payload["metrics"][1]["variants"][1]["significant"]
    with pytest.raises(ValidationError, match="significant"):
        ExperimentResults.model_validate(payload)
    # The build cannot leave one out either: no field has a default.
    row = built.metrics[0].control.model_dump()
    del row["adjusted_pvalue"]
    with pytest.raises(ValidationError, match="adjusted_pvalue"):
        type(built.metrics[0].control)(**row)


def test_openapi_names_the_results_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/experiments/{key}/results"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ExperimentResults"}
    components = spec["components"]["schemas"]
    results = components["ExperimentResults"]
    assert results["additionalProperties"] is False
    assert {"srm", "progress", "metrics", "verdict"} <= set(results["required"])
    assert {"VariantResult", "MetricResults", "SRMCheck", "Verdict"} <= set(components)
    assert "pvalue" in components["VariantResult"]["required"]


def test_each_verdict_is_decided_once_per_build_and_never_by_the_pages(
    client: TestClient, store: StoreRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _traffic(client)
    experiment, totals, daily = _stored(store)
    calls: list[str | None] = []
    decide = verdicts.comparison_verdict

    def counted(*args: Any, **kwargs: Any) -> Any:
        verdict = decide(*args, **kwargs)
        calls.append(verdict.variant)
        return verdict

    monkeypatch.setattr(build, "comparison_verdict", counted)
    results = build_results(experiment, totals, daily, time.time())
    treatments = sum(len(m.treatments) for m in results.metrics)
    assert len(calls) == treatments == len(BUYAKILT["metrics"])
    report_html(experiment, results)
    Console(file=io.StringIO()).print(results_renderables(experiment, results))
    assert len(calls) == treatments
    assert results.verdict.kind in set(VerdictKind)


def test_the_terminal_read_out_draws_no_chart(
    built: ExperimentResults, store: StoreRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = _stored(store)[0]

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("a chart was drawn")

    for name in ("lift_chart", "sequence_chart"):
        monkeypatch.setattr(charts, name, refuse)
    monkeypatch.setattr("service.report.html.lift_chart", refuse)
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(results_renderables(experiment, built))
    assert "conversion rate (primary)" in console.export_text()
    with pytest.raises(AssertionError, match="a chart was drawn"):
        report_html(experiment, built)
