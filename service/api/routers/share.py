"""Share links: made, listed and revoked by editors and admins; opened by anyone holding one.

``GET /share/TOKEN`` renders that one experiment's report read-only: no History, no forms, no
link into the service's other pages. It grants nothing else: the dashboard, other reports and
the API still need a key. A token that was not issued here answers 404, an expired or revoked
one 410, and neither shows any of the report. The report page's form (a signed-in editor's
session, with its CSRF token) makes a link too.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from experiments.errors import ConflictError, ExperimentNotFoundError
from experiments.store import ShareLinkRecord, Store
from service import sharing
from service.api.deps import Editor, EditorForm, StoreDep
from service.api.principal import CSRF_FIELD, Principal, csrf_valid
from service.api.routers.pages import report_page
from service.audit import entry
from service.report.html import share_message_html

__all__ = ["api_router", "page_router"]

api_router = APIRouter(prefix="/v1/experiments", tags=["share links"])
page_router = APIRouter(tags=["pages"], include_in_schema=False)

LinkId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="16 hex digits")]


class NewShareLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in_seconds: int = Field(
        default=sharing.DEFAULT_SECONDS,
        ge=sharing.MIN_SECONDS,
        le=sharing.MAX_SECONDS,
        strict=True,
        description=f"from {sharing.MIN_SECONDS} (1 h) to {sharing.MAX_SECONDS} (90 days); "
        f"default {sharing.DEFAULT_SECONDS} (7 days)",
    )


class ShareLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    url: str = Field(description="the path of the read-only report: /share/TOKEN")
    experiment: str
    generation: int = Field(
        description="the experiment's generation: a re-created one is not shown"
    )
    created_at: float
    created_by: str
    expires_at: float
    expired: bool


def _public(record: ShareLinkRecord) -> dict[str, JsonValue]:
    return {"id": record.id, "expires_at": record.expires_at, "created_by": record.created_by}


async def _link(store: Store, record: ShareLinkRecord, now: float) -> ShareLink:
    secret = await sharing.workspace_secret(store)
    return ShareLink(
        **record.model_dump(), url=sharing.url_of(secret, record), expired=record.expires_at <= now
    )


async def create_link(store: Store, key: str, seconds: int, actor: Principal) -> ShareLink:
    """A new link to experiment ``key``'s report, valid for ``seconds``."""
    experiment = await store.get_experiment(key)  # 404 for an unknown experiment
    now = time.time()
    record = ShareLinkRecord(
        id=sharing.new_id(),
        experiment=key,
        generation=experiment.generation,
        created_at=now,
        expires_at=float(int(now + seconds)),
        created_by=actor.name,
    )
    audit = entry(
        actor, "share_link.create", experiment=key, target=record.id, after=_public(record)
    )
    if not await store.add_share_link(record, audit):  # 64 random bits: never in practice
        raise ConflictError(f"a share link with id {record.id!r} already exists; retry")
    return await _link(store, record, now)


@api_router.post(
    "/{key}/share-links",
    status_code=201,
    response_model=ShareLink,
    summary="Make a read-only, expiring link to one experiment's report",
)
async def create(
    key: str, store: StoreDep, actor: Editor, body: NewShareLink | None = None
) -> ShareLink:
    seconds = (body or NewShareLink()).expires_in_seconds
    return await create_link(store, key, seconds, actor)


@api_router.get(
    "/{key}/share-links", response_model=list[ShareLink], summary="An experiment's share links"
)
async def list_all(key: str, store: StoreDep, actor: Editor) -> list[ShareLink]:
    now = time.time()
    return [await _link(store, r, now) for r in await store.share_links(key)]


@api_router.delete("/{key}/share-links/{link_id}", status_code=204, summary="Revoke a share link")
async def revoke(key: str, link_id: LinkId, store: StoreDep, actor: Editor) -> Response:
    record = await store.share_link(link_id)
    missing = HTTPException(
        status_code=404, detail=f"no share link {link_id!r} of experiment {key!r}"
    )
    if record is None or record.experiment != key:
        raise missing
    audit = entry(
        actor, "share_link.revoke", experiment=key, target=link_id, before=_public(record)
    )
    if not await store.remove_share_link(record, audit):
        raise missing
    return Response(status_code=204)


_GONE = {
    sharing.Check.FORGED: (404, "No such share link", "This link was not made by this service."),
    sharing.Check.EXPIRED: (410, "This share link has expired", "Ask for a new link."),
    sharing.Check.REVOKED: (410, "This share link was revoked", "Ask for a new link."),
}


@page_router.get("/share/{token}", response_class=HTMLResponse)
async def shared_report(request: Request, token: str, store: StoreDep) -> HTMLResponse:
    checked = await sharing.check(store, token, now=time.time())
    if checked.record is None:
        status, title, message = _GONE[checked.outcome]
        return HTMLResponse(share_message_html(title, message), status_code=status)
    try:
        experiment = await store.get_experiment(checked.record.experiment)
    except ExperimentNotFoundError:
        experiment = None
    if experiment is None or experiment.generation != checked.record.generation:
        title, message = "No such report", "The experiment of this link was deleted."
        return HTMLResponse(share_message_html(title, message), status_code=404)
    return await report_page(request, store, experiment, None)


@page_router.post("/experiments/{key}/share-links", response_class=HTMLResponse)
async def create_from_report(
    request: Request, key: str, store: StoreDep, actor: EditorForm
) -> HTMLResponse:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    if not csrf_valid(request, form.get(CSRF_FIELD, [""])[0]):
        raise HTTPException(
            status_code=403,
            detail=f"{CSRF_FIELD}: missing or not this session's; reload the report and retry",
        )
    days = form.get("expires_in_days", ["7"])[0]
    allowed = {"1": 1, "7": 7, "30": 30, "90": 90}
    if days not in allowed:
        raise HTTPException(
            status_code=422, detail=f"expires_in_days must be one of 1, 7, 30, 90; got {days!r}"
        )
    link = await create_link(store, key, allowed[days] * 86400, actor)
    expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(link.expires_at))
    message = f"Anyone with this link can read this report, and nothing else, until {expires}."
    url = str(request.base_url).rstrip("/") + link.url
    page = share_message_html("Share link made", message, link=url, back=f"/experiments/{key}")
    return HTMLResponse(page, status_code=201)
