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

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from experiments.definitions import Experiment, ExperimentPatch, Status
from experiments.errors import AbacusError, ExperimentNotFoundError
from experiments.store import Store
from service import changes
from service.api.app import STATUS_OF, errors_message, field_errors
from service.api.definitions_cache import DefinitionCache
from service.api.deps import Definitions, EditorForm, StoreDep
from service.api.principal import CSRF_FIELD, Principal, Role, csrf_token, csrf_valid, current
from service.forms import FormState, form_of, read_patch, read_spec
from service.report.html import confirm_html, experiment_form_html, refused_html

__all__ = ["router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

_TARGET: dict[str, Status] = {
    "start": Status.RUNNING,
    "pause": Status.PAUSED,
    "resume": Status.RUNNING,
    "stop": Status.STOPPED,
}
CONFIRMED = ("start", "stop", "delete")
"""The changes that cannot be undone, asked for twice."""


@dataclass(frozen=True)
class Change:
    """A posted form, checked: who sent it, its fields, and where changes are written."""

    request: Request
    store: Store
    definitions: DefinitionCache
    actor: Principal
    values: dict[str, str]

    def form(self, form: FormState, draft: Experiment | None, status: int) -> Response:
        """The create or edit form again, with ``form``'s values and errors."""
        html = experiment_form_html(form, draft, csrf_token(self.request))
        return HTMLResponse(html, status_code=status)

    async def apply(self, key: str, action: str, patch: ExperimentPatch | None) -> Response:
        """Ask first for what cannot be undone; then make the change (``patch``, or the delete
        when None), or say why it was refused."""
        experiment = await _experiment(self.store, key)
        if isinstance(experiment, Response):
            return experiment
        if action in CONFIRMED and self.values.get("confirm") != "yes":
            fields = {k: v for k, v in self.values.items() if k not in {CSRF_FIELD, "confirm"}}
            path, token = self.request.url.path, csrf_token(self.request)
            return HTMLResponse(confirm_html(experiment, action, fields, path, token))
        try:
            if patch is None:
                await changes.delete(self.store, self.definitions, key, self.actor)
                return RedirectResponse("/", status_code=303)
            await changes.patch(self.store, self.definitions, key, patch, self.actor)
        except AbacusError as exc:
            return HTMLResponse(refused_html(str(exc), key), status_code=_status_of(exc))
        return _report(key)


async def _change(
    request: Request, store: StoreDep, definitions: Definitions, actor: EditorForm
) -> Change:
    """The posted form; a session's post without its CSRF token is refused with 403."""
    values = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), True))
    if actor.via != "bearer" and not csrf_valid(request, values.get(CSRF_FIELD, "")):
        raise HTTPException(
            status_code=403,
            detail=f"{CSRF_FIELD}: missing or not this session's; allowed: the token of the "
            "form this service served (reload the page and try again)",
        )
    return Change(request, store, definitions, actor, values)


ChangeForm = Annotated[Change, Depends(_change)]


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


@router.post("/new", summary="Create an experiment from the form")
async def create(change: ChangeForm) -> Response:
    parsed = read_spec(change.values)
    if "more" in change.values:
        return change.form(parsed.form.with_more_rows(), None, 200)
    if parsed.model is None:
        return change.form(parsed.form, None, 422)
    try:
        created = await changes.create(change.store, change.definitions, parsed.model, change.actor)
    except AbacusError as exc:
        return change.form(parsed.form.with_message(str(exc)), None, _status_of(exc))
    return _report(created.key)


async def _experiment(store: Store, key: str) -> Experiment | Response:
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
    html = experiment_form_html(form_of(experiment), experiment, csrf_token(request))
    return HTMLResponse(html)


@router.post("/experiments/{key}/edit", summary="Save the edit of a draft")
async def edit(key: str, change: ChangeForm) -> Response:
    experiment = await _experiment(change.store, key)
    if isinstance(experiment, Response):
        return experiment
    parsed = read_patch({**change.values, "key": key}, experiment)
    if "more" in change.values:
        return change.form(parsed.form.with_more_rows(), experiment, 200)
    if parsed.model is None:
        return change.form(parsed.form, experiment, 422)
    try:
        await changes.patch(change.store, change.definitions, key, parsed.model, change.actor)
    except AbacusError as exc:
        return change.form(parsed.form.with_message(str(exc)), experiment, _status_of(exc))
    return _report(key)


@router.post("/experiments/{key}/status", summary="Start, pause, resume or stop")
async def status(key: str, change: ChangeForm) -> Response:
    action = change.values.get("action", "")
    if action not in _TARGET:
        raise HTTPException(
            status_code=422,
            detail=f"action: must be one of {sorted(_TARGET)}, got {action[:40]!r}",
        )
    winner = (change.values.get("winner") or None) if action == "stop" else None
    return await change.apply(key, action, ExperimentPatch(status=_TARGET[action], winner=winner))


@router.post("/experiments/{key}/coverage", summary="Ramp the coverage")
async def coverage(key: str, change: ChangeForm) -> Response:
    try:
        patch = ExperimentPatch.model_validate({"coverage": change.values.get("coverage", "")})
    except ValidationError as exc:
        return HTMLResponse(refused_html(_message(exc), key), status_code=422)
    return await change.apply(key, "ramp", patch)


@router.post("/experiments/{key}/archive", summary="Archive or bring back")
async def archive(key: str, change: ChangeForm) -> Response:
    patch = ExperimentPatch(archived=change.values.get("archived", "true") != "false")
    return await change.apply(key, "archive", patch)


@router.post("/experiments/{key}/delete", summary="Delete an experiment and its data")
async def delete(key: str, change: ChangeForm) -> Response:
    return await change.apply(key, "delete", None)
