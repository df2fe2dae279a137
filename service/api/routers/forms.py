"""The page forms: create, edit a draft, start, pause, resume, ramp, stop, archive, delete.

Plain HTML forms posted as ``application/x-www-form-urlencoded``, so they work without
JavaScript. Every change goes through :mod:`service.changes`, like the admin API's, and is
checked by the same models: a form's problems are the API's 422/409 messages, shown next to
the fields with what was typed kept. Start, stop and delete are asked twice: without
``confirm=yes`` the route answers a page saying what the change will do, whose button posts it
again with ``confirm=yes``. Each POST needs an editor (a session counts) and, from a session,
the form's CSRF token (:func:`service.api.principal.csrf_valid`), else 403.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from experiments.definitions import Experiment, ExperimentPatch, Status
from experiments.errors import AbacusError, ExperimentNotFoundError
from service import changes
from service.api.app import STATUS_OF, errors_message, field_errors
from service.api.deps import Definitions, StoreDep, require
from service.api.principal import CSRF_FIELD, Principal, Role, csrf_token, csrf_valid, current
from service.forms import FormState, form_of, read_patch, read_spec
from service.report.html import confirm_html, experiment_form_html, refused_html

__all__ = ["router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

EditorForm = Annotated[Principal, Depends(require(Role.EDITOR, from_session=True))]
Action = Literal["start", "pause", "resume", "stop"]

_TARGET: dict[str, Status] = {
    "start": Status.RUNNING,
    "pause": Status.PAUSED,
    "resume": Status.RUNNING,
    "stop": Status.STOPPED,
}
CONFIRMED = ("start", "stop", "delete")
"""The changes that cannot be undone, asked for twice."""


async def _fields(request: Request, principal: Principal) -> dict[str, str]:
    """The posted form; a session's post without its CSRF token is refused with 403."""
    values = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), True))
    if principal.via != "bearer" and not csrf_valid(request, values.get(CSRF_FIELD, "")):
        raise HTTPException(
            status_code=403,
            detail=f"{CSRF_FIELD}: missing or not this session's; allowed: the token of the "
            "form this service served (reload the page and try again)",
        )
    return values


def _message(exc: ValidationError) -> str:
    """The ``message`` the API's 422 body carries for ``exc``."""
    return errors_message(field_errors(exc.errors()))


def _status_of(exc: AbacusError) -> int:
    return next((s for t, s in STATUS_OF.items() if isinstance(exc, t)), 500)


def _report(key: str) -> RedirectResponse:
    return RedirectResponse(f"/experiments/{key}", status_code=303)


async def _page_editor(request: Request) -> Principal | Response:
    """The editor asking for a form page, or the answer for anyone else."""
    principal = await current(request)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if not principal.may(Role.EDITOR):
        return HTMLResponse(
            refused_html("Only an editor can change experiments.", None), status_code=403
        )
    return principal


@router.get("/new", response_class=HTMLResponse, summary="The form that creates an experiment")
async def new_form(request: Request) -> Response:
    principal = await _page_editor(request)
    if isinstance(principal, Response):
        return principal
    return HTMLResponse(experiment_form_html(form_of(None), None, csrf_token(request)))


def _form(form: FormState, request: Request, draft: Experiment | None, status: int) -> Response:
    html = experiment_form_html(form, draft, csrf_token(request))
    return HTMLResponse(html, status_code=status)


@router.post("/new", summary="Create an experiment from the form")
async def create(
    request: Request, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    parsed = read_spec(values)
    if "more" in values:
        return _form(parsed.form.with_more_rows(), request, None, 200)
    if parsed.model is None:
        return _form(parsed.form, request, None, 422)
    try:
        created = await changes.create(store, definitions, parsed.model, actor)
    except AbacusError as exc:
        return _form(parsed.form.with_message(str(exc)), request, None, _status_of(exc))
    return _report(created.key)


async def _experiment(store: StoreDep, key: str) -> Experiment | Response:
    try:
        return await store.get_experiment(key)
    except ExperimentNotFoundError as exc:
        return HTMLResponse(refused_html(str(exc), None), status_code=404)


@router.get("/experiments/{key}/edit", response_class=HTMLResponse, summary="Edit a draft")
async def edit_form(request: Request, key: str, store: StoreDep) -> Response:
    principal = await _page_editor(request)
    if isinstance(principal, Response):
        return principal
    experiment = await _experiment(store, key)
    if isinstance(experiment, Response):
        return experiment
    return _form(form_of(experiment), request, experiment, 200)


@router.post("/experiments/{key}/edit", summary="Save the edit of a draft")
async def edit(
    request: Request, key: str, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    experiment = await _experiment(store, key)
    if isinstance(experiment, Response):
        return experiment
    parsed = read_patch({**values, "key": key}, experiment)
    if "more" in values:
        return _form(parsed.form.with_more_rows(), request, experiment, 200)
    if parsed.model is None:
        return _form(parsed.form, request, experiment, 422)
    try:
        await changes.patch(store, definitions, key, parsed.model, actor)
    except AbacusError as exc:
        return _form(parsed.form.with_message(str(exc)), request, experiment, _status_of(exc))
    return _report(key)


async def _apply(
    request: Request,
    store: StoreDep,
    definitions: Definitions,
    actor: Principal,
    values: dict[str, str],
    key: str,
    action: str,
    patch: ExperimentPatch | None,
) -> Response:
    """Ask first for what cannot be undone; then make the change, or say why it was refused."""
    experiment = await _experiment(store, key)
    if isinstance(experiment, Response):
        return experiment
    if action in CONFIRMED and values.get("confirm") != "yes":
        fields = {k: v for k, v in values.items() if k not in {CSRF_FIELD, "confirm"}}
        html = confirm_html(experiment, action, fields, request.url.path, csrf_token(request))
        return HTMLResponse(html)
    try:
        if patch is None:
            await changes.delete(store, definitions, key, actor)
            return RedirectResponse("/", status_code=303)
        await changes.patch(store, definitions, key, patch, actor)
    except AbacusError as exc:
        return HTMLResponse(refused_html(str(exc), key), status_code=_status_of(exc))
    return _report(key)


@router.post("/experiments/{key}/status", summary="Start, pause, resume or stop")
async def status(
    request: Request, key: str, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    action = values.get("action", "")
    if action not in _TARGET:
        raise HTTPException(
            status_code=422,
            detail=f"action: must be one of {sorted(_TARGET)}, got {action[:40]!r}",
        )
    winner = values.get("winner") or None if action == "stop" else None
    try:
        patch = ExperimentPatch(status=_TARGET[action], winner=winner)
    except ValidationError as exc:
        return HTMLResponse(refused_html(_message(exc), key), status_code=422)
    return await _apply(request, store, definitions, actor, values, key, action, patch)


@router.post("/experiments/{key}/coverage", summary="Ramp the coverage")
async def coverage(
    request: Request, key: str, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    try:
        patch = ExperimentPatch.model_validate({"coverage": values.get("coverage", "")})
    except ValidationError as exc:
        return HTMLResponse(refused_html(_message(exc), key), status_code=422)
    return await _apply(request, store, definitions, actor, values, key, "ramp", patch)


@router.post("/experiments/{key}/archive", summary="Archive or bring back")
async def archive(
    request: Request, key: str, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    patch = ExperimentPatch(archived=values.get("archived", "true") != "false")
    return await _apply(request, store, definitions, actor, values, key, "archive", patch)


@router.post("/experiments/{key}/delete", summary="Delete an experiment and its data")
async def delete(
    request: Request, key: str, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Response:
    values = await _fields(request, actor)
    return await _apply(request, store, definitions, actor, values, key, "delete", None)
