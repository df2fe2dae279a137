"""What the browser SDK needs from the service: the script, the public definition snapshot it
decides from locally, and the demo shop that shows how a site integrates both.

``GET /sdk.js`` serves ``service/static/sdk.js`` with the input rules of
:mod:`experiments.limits` filled in, gzipped when the browser accepts it, with an ``ETag``.
``GET /v1/definitions`` is public and cacheable: it holds, per running, paused or stopped
experiment, only what bucketing needs (key, seed, hash version, coverage, variant keys and
weights, bucket ranges, status, winner), never names, hypotheses, metrics or results. Drafts are
left out. ``GET /demo/shop`` renders the Buyakilt category page of the case study
(:mod:`service.demo.shop`).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from experiments import limits
from experiments.definitions import Experiment, Status
from experiments.errors import ExperimentNotFoundError, StoreUnavailableError
from service.api.deps import Definitions
from service.demo.casestudies import BUYAKILT
from service.demo.shop import shop_html

__all__ = [
    "DefinitionSnapshot",
    "PublicDefinition",
    "public_definition",
    "router",
    "sdk_source",
    "snapshot_of",
]

router = APIRouter(tags=["sdk"])

SDK_MAX_AGE_SECONDS = 300
# How long a browser or CDN may reuse the snapshot: a stopped experiment reaches pages that
# decide locally within this delay (plus the service's own one-second definitions cache).
DEFINITIONS_MAX_AGE_SECONDS = 30
DEMO_EXPERIMENT = BUYAKILT.key


class PublicVariant(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    weight: float


class PublicDefinition(BaseModel):
    """The part of a definition a browser needs to bucket a visitor, and nothing else."""

    model_config = ConfigDict(frozen=True)

    key: str
    seed: str
    hash_version: int
    coverage: float
    variants: list[PublicVariant]
    ranges: list[tuple[float, float]]
    status: Status
    winner: str | None


class DefinitionSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    experiments: list[PublicDefinition]


def public_definition(experiment: Experiment) -> PublicDefinition:
    return PublicDefinition(
        key=experiment.key,
        seed=experiment.seed,
        hash_version=experiment.hash_version,
        coverage=experiment.coverage,
        variants=[PublicVariant(key=v.key, weight=v.weight) for v in experiment.variants],
        ranges=list(experiment.ranges),
        status=experiment.status,
        winner=experiment.winner,
    )


def snapshot_of(experiments: dict[str, Experiment]) -> DefinitionSnapshot:
    """Every experiment a page may meet (all but drafts), ordered by key."""
    return DefinitionSnapshot(
        experiments=[
            public_definition(e)
            for _, e in sorted(experiments.items())
            if e.status is not Status.DRAFT
        ]
    )


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in given.split(",")}
    return etag in tags or "*" in tags


@dataclass(frozen=True)
class _Script:
    body: bytes
    gzipped: bytes
    etag: str


LIMITS_MARKER = b"__ABACUS_LIMITS__"
"""Where ``sdk.js`` takes the rules of :mod:`experiments.limits`."""


def _limits_json() -> bytes:
    return orjson.dumps(
        {
            "key_pattern": limits.KEY_PATTERN,
            "event_name_pattern": limits.EVENT_NAME_PATTERN,
            "event_id_pattern": limits.EVENT_ID_PATTERN,
            "visitor_id_pattern": limits.VISITOR_ID_PATTERN,
            "visitor_id_rule": limits.VISITOR_ID_RULE,
            "sdk_queue_max_age_seconds": limits.SDK_QUEUE_MAX_AGE_SECONDS,
        }
    )


def sdk_source() -> bytes:
    """``service/static/sdk.js`` with the patterns and limits of :mod:`experiments.limits`."""
    template = files("service").joinpath("static", "sdk.js").read_bytes()
    if template.count(LIMITS_MARKER) != 1:
        raise RuntimeError(f"sdk.js must hold {LIMITS_MARKER.decode()} exactly once")
    return template.replace(LIMITS_MARKER, _limits_json())


@cache
def _sdk_script() -> _Script:
    """The served script, built once per process (package data does not change at run time)."""
    body = sdk_source()
    return _Script(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=_etag(body))


@router.get(
    "/sdk.js",
    summary="The browser SDK (dependency-free JavaScript)",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}, 304: {"description": "not modified"}},
)
async def sdk_js(request: Request) -> Response:
    script = _sdk_script()
    headers = {
        "Cache-Control": f"public, max-age={SDK_MAX_AGE_SECONDS}",
        "ETag": script.etag,
        "Vary": "Accept-Encoding",
    }
    if _not_modified(request, script.etag):
        return Response(status_code=304, headers=headers)
    body = script.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = script.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/v1/definitions",
    summary="Public snapshot of experiment definitions for deciding in the browser",
    response_class=Response,
    responses={
        200: {"model": DefinitionSnapshot, "content": {"application/json": {}}},
        304: {"description": "not modified (If-None-Match matched the ETag)"},
    },
)
async def definitions(request: Request, cache: Definitions) -> Response:
    snapshot = snapshot_of(await cache.all())
    body = snapshot.model_dump_json().encode()
    etag = _etag(body)
    headers = {"Cache-Control": f"public, max-age={DEFINITIONS_MAX_AGE_SECONDS}", "ETag": etag}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/demo/shop", response_class=HTMLResponse, summary="Demo shop using the browser SDK")
async def demo_shop(
    cache: Definitions,
    mode: Annotated[
        Literal["local", "server"], Query(description="where the SDK decides")
    ] = "local",
) -> HTMLResponse:
    state: str
    try:
        state = (await cache.get(DEMO_EXPERIMENT)).status.value
    except ExperimentNotFoundError:
        state = "missing"
    except StoreUnavailableError:
        state = "unknown"  # no definitions cached yet: the SDK decides from what it can reach
    page = shop_html(DEMO_EXPERIMENT, state=state, mode=mode)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
