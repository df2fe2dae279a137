"""The marketer's pages: ``/`` lists every experiment, ``/experiments/KEY`` is one's report.

They show the same data as the admin results endpoint, so they sit behind the same admin check
(open on loopback when no admin key is configured). A browser cannot send a bearer header, so
``/login`` trades the admin key for a read-only, HttpOnly, SameSite=Strict session cookie; a
page asked for without it redirects there. Computing the read-out and drawing the
charts is CPU work, so it runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from experiments.definitions import Experiment
from experiments.errors import ExperimentNotFoundError
from experiments.store import SliceTotals, Store, VariantTotals
from service.api.deps import SESSION_COOKIE, SettingsDep, StoreDep, is_admin, session_token
from service.readout.build import build_results
from service.readout.model import ExperimentResults
from service.report.html import dashboard_html, login_html, not_found_html, report_html

__all__ = ["router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

SESSION_SECONDS = 12 * 3600


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(value: str) -> str:
    # only a path on this site: no scheme, no host, no protocol-relative //host
    return value if value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "/") -> HTMLResponse:
    return HTMLResponse(login_html(_safe_next(next)))


@router.post("/login")
async def login(request: Request, settings: SettingsDep) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = form.get("key", [""])[0]
    target = _safe_next(form.get("next", ["/"])[0])
    key = settings.admin_key
    if key is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(given.encode(), key.encode()):
        return HTMLResponse(login_html(target, "That is not the admin key."), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_token(key),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


Data = tuple[list[VariantTotals], list[tuple[str, list[VariantTotals]]]]


async def _data(store: Store, experiment: Experiment) -> Data:
    return await store.totals(experiment), await store.daily_totals(experiment)


def _results(experiment: Experiment, data: Data, now: float) -> ExperimentResults:
    totals, daily = data
    return build_results(experiment, totals, daily, now)


def _dashboard(experiments: list[Experiment], data: list[Data], now: float) -> str:
    items = [(e, _results(e, d, now)) for e, d in zip(experiments, data, strict=True)]
    return dashboard_html(items)


def _report(
    experiment: Experiment, data: Data, now: float, breakdown: tuple[str, list[SliceTotals]] | None
) -> str:
    totals, daily = data
    return report_html(
        experiment, build_results(experiment, totals, daily, now, breakdown=breakdown)
    )


@router.get("/", response_class=HTMLResponse, summary="Every experiment at a glance")
async def dashboard(request: Request, store: StoreDep) -> Response:
    if not is_admin(request):
        return _to_login(request)
    _, by_key = await store.definitions()
    experiments = sorted(by_key.values(), key=lambda e: (-(e.created_at or 0), e.key))
    data = list(await asyncio.gather(*(_data(store, e) for e in experiments)))
    html = await run_in_threadpool(_dashboard, experiments, data, time.time())
    return HTMLResponse(html)


@router.get("/experiments/{key}", response_class=HTMLResponse, summary="One experiment's report")
async def report(request: Request, key: str, store: StoreDep) -> Response:
    if not is_admin(request):
        return _to_login(request)
    try:
        experiment = await store.get_experiment(key)
    except ExperimentNotFoundError:
        return HTMLResponse(not_found_html(key), status_code=404)
    names = [d.name for d in experiment.dimensions]
    # the breakdown asked for, else the first dimension; an unknown name shows none
    dimension = request.query_params.get("dimension", names[0] if names else None)
    breakdown = None
    if dimension in names:
        breakdown = (dimension, await store.dimension_totals(experiment, dimension))
    data = await _data(store, experiment)
    html = await run_in_threadpool(_report, experiment, data, time.time(), breakdown)
    return HTMLResponse(html)
