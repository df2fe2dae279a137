"""The marketer's pages: ``/`` lists every experiment, ``/experiments/KEY`` is one's report.

They show the same data as the admin results endpoint, so they sit behind the same admin check
(open on loopback when no admin key is configured). Computing the read-out and drawing the
charts is CPU work, so it runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from experiments.definitions import Experiment
from experiments.errors import ExperimentNotFoundError
from experiments.store import Store, VariantTotals
from service.deps import Admin, StoreDep
from service.report import dashboard_html, not_found_html, report_html
from service.results import build_results

__all__ = ["router"]

router = APIRouter(tags=["pages"], dependencies=[Admin], include_in_schema=False)

Data = tuple[list[VariantTotals], list[tuple[str, list[VariantTotals]]]]


async def _data(store: Store, experiment: Experiment) -> Data:
    return await store.totals(experiment), await store.daily_totals(experiment)


def _results(experiment: Experiment, data: Data, now: float) -> dict[str, Any]:
    totals, daily = data
    return build_results(experiment, totals, daily, now)


def _dashboard(experiments: list[Experiment], data: list[Data], now: float) -> str:
    items = [(e, _results(e, d, now)) for e, d in zip(experiments, data, strict=True)]
    return dashboard_html(items)


def _report(experiment: Experiment, data: Data, now: float) -> str:
    return report_html(experiment, _results(experiment, data, now))


@router.get("/", response_class=HTMLResponse, summary="Every experiment at a glance")
async def dashboard(store: StoreDep) -> HTMLResponse:
    _, by_key = await store.definitions()
    experiments = sorted(by_key.values(), key=lambda e: (-(e.created_at or 0), e.key))
    data = list(await asyncio.gather(*(_data(store, e) for e in experiments)))
    html = await run_in_threadpool(_dashboard, experiments, data, time.time())
    return HTMLResponse(html)


@router.get("/experiments/{key}", response_class=HTMLResponse, summary="One experiment's report")
async def report(key: str, store: StoreDep) -> HTMLResponse:
    try:
        experiment = await store.get_experiment(key)
    except ExperimentNotFoundError:
        return HTMLResponse(not_found_html(key), status_code=404)
    data = await _data(store, experiment)
    html = await run_in_threadpool(_report, experiment, data, time.time())
    return HTMLResponse(html)
