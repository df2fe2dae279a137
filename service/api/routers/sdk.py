"""What the browser SDK needs from the service: the script, the public definition snapshot it
decides from locally, and the demo shop that shows how a site integrates both.

``GET /sdk.js`` serves ``service/static/sdk.js`` with the input rules of
:mod:`experiments.limits` filled in, gzipped when the browser accepts it, with an ``ETag``;
``GET /sdk.mjs`` is the same script as an ES module (``import abacus from ".../sdk.mjs"``) and
``GET /sdk.d.ts`` its TypeScript declarations.
``GET /v1/definitions`` is public and cacheable: it holds, per running, paused or stopped
experiment, only what bucketing needs (key, seed, hash version, coverage, variant keys and
weights, bucket ranges, status, winner, and what targeting reads: condition, hash attribute,
namespace, holdout, QA-pinned visitors), never names, hypotheses, metrics or results. Drafts are
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
from pydantic import BaseModel, ConfigDict, JsonValue

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
    "sdk_module_source",
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
    # targeting, mutual exclusion, holdouts, QA forcing (what decide() reads)
    condition: dict[str, JsonValue] | None = None
    hash_attribute: str = "id"
    namespace: tuple[str, float, float] | None = None
    holdout: str | None = None
    forced: dict[str, str] = {}


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
        condition=experiment.condition or None,
        hash_attribute=experiment.hash_attribute,
        namespace=None if experiment.namespace is None else experiment.namespace.as_tuple(),
        holdout=experiment.holdout,
        forced=experiment.forced,
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


_MODULE_PRELUDE = b"globalThis.__abacusModuleUrl = import.meta.url;\n"
_MODULE_EXPORTS = b"""
const abacus = globalThis.abacus;
export default abacus;
export const init = abacus.init, assign = abacus.assign, track = abacus.track,
  flush = abacus.flush, visitorId = abacus.visitorId, pending = abacus.pending,
  definitions = abacus.definitions, hideUntilAssigned = abacus.hideUntilAssigned,
  bucketing = abacus.bucketing, targeting = abacus.targeting;
"""


def sdk_module_source() -> bytes:
    """The SDK as an ES module: the same script, its default export ``window.abacus``."""
    return _MODULE_PRELUDE + sdk_source() + _MODULE_EXPORTS


def _script(body: bytes) -> _Script:
    return _Script(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=_etag(body))


@cache
def _sdk_script() -> _Script:
    """The served script, built once per process (package data does not change at run time)."""
    return _script(sdk_source())


@cache
def _sdk_module() -> _Script:
    return _script(sdk_module_source())


@cache
def _sdk_types() -> _Script:
    return _script(files("service").joinpath("static", "sdk.d.ts").read_bytes())


@router.get(
    "/sdk.js",
    summary="The browser SDK (dependency-free JavaScript)",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}, 304: {"description": "not modified"}},
)
async def sdk_js(request: Request) -> Response:
    return _serve(request, _sdk_script(), "text/javascript; charset=utf-8")


@router.get(
    "/sdk.mjs",
    summary="The browser SDK as an ES module",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}, 304: {"description": "not modified"}},
)
async def sdk_mjs(request: Request) -> Response:
    return _serve(request, _sdk_module(), "text/javascript; charset=utf-8")


@router.get(
    "/sdk.d.ts",
    summary="TypeScript declarations of the browser SDK",
    response_class=Response,
    responses={
        200: {"content": {"application/typescript": {}}},
        304: {"description": "not modified"},
    },
)
async def sdk_types(request: Request) -> Response:
    return _serve(request, _sdk_types(), "application/typescript; charset=utf-8")


def _serve(request: Request, script: _Script, media_type: str) -> Response:
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
    return Response(body, media_type=media_type, headers=headers)


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
