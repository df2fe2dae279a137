"""The marketer's pages: ``/`` lists every experiment, ``/experiments/KEY`` is one's report.

They show the same data as the admin results endpoint, so they sit behind the same check: any
key, whatever its role (open on loopback when no admin key is configured); an editor also gets
the buttons of :mod:`service.api.routers.forms`. The dashboard's search, filters and sort come
from its GET parameters (:class:`service.report.dashboard.DashboardQuery`). A browser cannot
send a bearer header, so ``/login`` trades a key for a server-side session
(:mod:`service.api.auth`: random token, HttpOnly, SameSite=Strict cookie, expiry, revoked by
``/logout`` and with its key, sign-ins rate-limited per client); a page asked for without one
redirects there. The report adds its History (the experiment's audit trail) for a signed-in
reader, and the share-link form for an editor or admin. Computing the read-out and drawing the
charts is CPU work, so it runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from experiments.definitions import Experiment
from experiments.errors import ExperimentNotFoundError
from experiments.store import SliceTotals, Store, VariantTotals
from service.api.app import ERROR_CODES, error_body
from service.api.auth import (
    LOGIN_MAX_FAILURES,
    LOGIN_WINDOW_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    AdminKey,
    close_session,
    open_session,
)
from service.api.deps import StoreDep
from service.api.principal import Principal, Role, csrf_token, current, resolve
from service.readout.build import build_results
from service.readout.model import ExperimentResults
from service.report.dashboard import DashboardQuery
from service.report.history import AccessView, history_rows
from service.report.html import dashboard_html, login_html, not_found_html, report_html

__all__ = ["HISTORY_ROWS", "report_page", "router"]

HISTORY_ROWS = 50
"""How many of an experiment's latest changes its report lists."""

router = APIRouter(tags=["pages"], include_in_schema=False)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(value: str) -> str:
    # only a path on this site: no scheme, no host, no protocol-relative //host
    return value if value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "/") -> HTMLResponse:
    return HTMLResponse(login_html(_safe_next(next)))


def _too_many(retry_after_seconds: float) -> Response:
    seconds = max(1, math.ceil(retry_after_seconds))
    message = (
        f"too many failed sign-ins from this address (at most {LOGIN_MAX_FAILURES} in "
        f"{LOGIN_WINDOW_SECONDS} s): retry in {seconds} s"
    )
    return JSONResponse(
        error_body(ERROR_CODES[429], message),
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


@router.post("/login")
async def login(request: Request, store: StoreDep) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = form.get("key", [""])[0]
    target = _safe_next(form.get("next", ["/"])[0])
    key: AdminKey | None = request.app.state.admin_key
    if key is None:
        return RedirectResponse(target, status_code=303)
    client = request.client.host if request.client else "unknown"
    if await store.failures(client) >= LOGIN_MAX_FAILURES:
        return _too_many(LOGIN_WINDOW_SECONDS)
    principal = await resolve(request, given)
    if principal is None or principal.key_id is None:
        failures, left_seconds = await store.count_failure(
            client, window_seconds=LOGIN_WINDOW_SECONDS
        )
        if failures >= LOGIN_MAX_FAILURES:
            return _too_many(left_seconds)
        message = "That is not a valid key (it may have been revoked)."
        return HTMLResponse(login_html(target, message), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        await open_session(store, principal.key_id),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, store: StoreDep) -> Response:
    if (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
        await close_session(store, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


Data = tuple[list[VariantTotals], list[tuple[str, list[VariantTotals]]]]


async def _data(store: Store, experiment: Experiment) -> Data:
    return await store.totals(experiment), await store.daily_totals(experiment)


def _results(experiment: Experiment, data: Data, now: float) -> ExperimentResults:
    totals, daily = data
    return build_results(experiment, totals, daily, now)


def _dashboard(
    experiments: list[Experiment],
    data: list[Data],
    now: float,
    query: DashboardQuery,
    editor: bool,
    signed_in: bool,
) -> str:
    items = [(e, _results(e, d, now)) for e, d in zip(experiments, data, strict=True)]
    return dashboard_html(items, query, editor=editor, signed_in=signed_in)


def _report(
    experiment: Experiment,
    data: Data,
    now: float,
    breakdown: tuple[str, list[SliceTotals]] | None,
    access: AccessView | None,
) -> str:
    totals, daily = data
    results = build_results(experiment, totals, daily, now, breakdown=breakdown)
    csrf = None if access is None else access.csrf
    return report_html(experiment, results, standalone=access is None, access=access, csrf=csrf)


def _editor(principal: Principal | None) -> bool:
    """Whether the page shows the buttons that change experiments."""
    return principal is not None and principal.may(Role.EDITOR)


@router.get("/", response_class=HTMLResponse, summary="Every experiment at a glance")
async def dashboard(
    request: Request, store: StoreDep, query: Annotated[DashboardQuery, Query()]
) -> Response:
    principal = await current(request)
    if principal is None:
        return _to_login(request)
    _, by_key = await store.definitions()
    experiments = sorted(by_key.values(), key=lambda e: (-(e.created_at or 0), e.key))
    data = list(await asyncio.gather(*(_data(store, e) for e in experiments)))
    editor = _editor(principal)
    signed_in = principal.via == "session"
    html = await run_in_threadpool(
        _dashboard, experiments, data, time.time(), query, editor, signed_in
    )
    return HTMLResponse(html)


@router.get("/experiments/{key}", response_class=HTMLResponse, summary="One experiment's report")
async def report(request: Request, key: str, store: StoreDep) -> Response:
    principal = await current(request)
    if principal is None:
        return _to_login(request)
    try:
        experiment = await store.get_experiment(key)
    except ExperimentNotFoundError:
        return HTMLResponse(not_found_html(key), status_code=404)
    history = history_rows(await store.audit_entries(key, limit=HISTORY_ROWS))
    csrf = csrf_token(request) if _editor(principal) else None
    access = AccessView(history, csrf, signed_in=principal.via == "session")
    return await report_page(request, store, experiment, access)


async def report_page(
    request: Request, store: Store, experiment: Experiment, access: AccessView | None
) -> HTMLResponse:
    """The report of ``experiment``; without ``access`` it is read-only with no links back (a
    share link's page)."""
    names = [d.name for d in experiment.dimensions]
    # the breakdown asked for, else the first dimension; an unknown name shows none
    dimension = request.query_params.get("dimension", names[0] if names else None)
    breakdown = None
    if dimension in names:
        breakdown = (dimension, await store.dimension_totals(experiment, dimension))
    data = await _data(store, experiment)
    html = await run_in_threadpool(_report, experiment, data, time.time(), breakdown, access)
    return HTMLResponse(html)
