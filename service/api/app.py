"""The FastAPI application factory: lifespan (Redis), middleware, error mapping, routers."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from experiments.embedded import EmbeddedRedis
from experiments.errors import (
    AbacusError,
    ConflictError,
    ExperimentNotFoundError,
    InvalidDefinitionError,
    StoreUnavailableError,
)
from experiments.keys import Keyspace
from experiments.store import Store, connect
from service import __version__
from service.api.auth import AdminKey
from service.api.definitions_cache import DefinitionCache
from service.api.metrics import Metrics
from service.api.middleware import Guard
from service.api.schemas import error_responses
from service.settings import Settings

__all__ = [
    "YOUNG_COLLECTION_THRESHOLD",
    "FieldError",
    "create_app",
    "error_response",
    "errors_message",
    "field_errors",
]

log = logging.getLogger("abacus")

STATUS_OF: dict[type[AbacusError], int] = {
    ExperimentNotFoundError: 404,
    InvalidDefinitionError: 422,
    ConflictError: 409,
    StoreUnavailableError: 503,
}
"""The HTTP status of each domain error."""

ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}
"""The ``error`` code of every error body, by HTTP status (anything else: ``"error"``)."""


RETRY_AFTER = {"Retry-After": "1"}
"""The header of every 503: the store is briefly unavailable, retry after a second."""


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    return {"error": code, "message": message, "details": details or []}


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        # a lone surrogate cannot be written as UTF-8: show it escaped
        return value[:200].encode("utf-8", "backslashreplace").decode()
    if isinstance(value, int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value[:20]]
    return str(value)[:200]


@dataclass(frozen=True)
class FieldError:
    """One problem of a request: the field (dotted path), what is wrong, the value given."""

    field: str
    message: str
    value: Any

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "value": self.value}


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic's errors as the API reports them (the 422 body's ``details``); the page forms
    show the same ones next to their fields."""
    details = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in {"body", "query", "path"}]
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "malformed")
            at = loc[-1] if loc else 0
            details.append(
                FieldError("body", f"is not valid JSON ({reason} at character {at})", None)
            )
            continue
        message = err.get("msg", "")
        if err.get("type") == "string_unicode":
            message = "must be valid Unicode text (a lone surrogate has no UTF-8 encoding)"
        details.append(FieldError(".".join(loc) or "body", message, _jsonable(err.get("input"))))
    return details


def errors_message(details: Sequence[FieldError]) -> str:
    """The one-line ``message`` of an error body listing ``details``."""
    return "; ".join(f"{d.field}: {d.message}" for d in details)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = field_errors(exc.errors())
    body = error_body(ERROR_CODES[422], errors_message(details), [d.as_json() for d in details])
    return JSONResponse(body, status_code=422)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (routes of one path may be several)."""
    methods = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return ", ".join(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        message = (
            f"method {request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        )
    return JSONResponse(
        error_body(ERROR_CODES.get(exc.status_code, "error"), message),
        status_code=exc.status_code,
        headers=headers,
    )


async def _abacus_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AbacusError)
    return error_response(exc)


def error_response(exc: AbacusError) -> JSONResponse:
    """The answer to a domain error: its status from :data:`STATUS_OF`, the error body."""
    status = next((s for t, s in STATUS_OF.items() if isinstance(exc, t)), 500)
    headers = RETRY_AFTER if status == 503 else None
    return JSONResponse(
        error_body(ERROR_CODES.get(status, "error"), str(exc)), status_code=status, headers=headers
    )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not they declare a length.

    A declared length is refused before the body is read. An undeclared one is counted while the
    route reads it; going over raises an HTTPException, which FastAPI passes through its body
    parsing untouched, so the usual error handler answers in the usual JSON shape.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = JSONResponse(self._body(int(value)), status_code=413)
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise StarletteHTTPException(413, detail=self._body(seen)["message"])
            return message

        await self.app(scope, limited, send)

    def _body(self, size: int) -> Any:
        return error_body(
            ERROR_CODES[413],
            f"request body must be at most {self.max_bytes} bytes, got {size}",
            [{"field": "body", "message": "too large", "value": size}],
        )


async def _adopt_unversioned(store: Store) -> None:
    try:
        if adopted := await store.adopt_unversioned():
            log.warning(
                "experiments stored by the first store layout now count from zero "
                "(their earlier data is not read): %s",
                ", ".join(adopted),
            )
    except StoreUnavailableError as exc:
        log.warning("checking for definitions of the first store layout failed: %s", exc)


async def _reclaim_deleted(store: Store) -> None:
    try:
        if pending := await store.reclaim_deleted():
            log.info("reclaimed the data of %d deleted experiments", pending)
    except StoreUnavailableError as exc:
        log.warning("reclaiming deleted experiments failed (retried at next start): %s", exc)


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations (net of frees) between two young-generation collections while serving."""


@contextmanager
def _collector_tuned_for_serving() -> Iterator[None]:
    """The garbage collector set for a serving process, as it was again afterwards.

    What the process holds once started (modules, schemas, routes: ~180,000 objects) lives as
    long as it does: frozen, full collections no longer walk it. And the 64 requests in flight
    allocate and free far more than the default 700 objects between collections, so each
    young collection walked them all again. Measured in process (``bench/inprocess_cost.py``,
    4,000 tracks): 84 ms of collections with the heap frozen (358 ms before), none at this
    threshold; ``GET /v1/assign`` went from about 140 µs of CPU per request to about 87 µs with
    the heap frozen.

    Only when the app runs on the process's main thread: a server process of its own (uvicorn,
    ``abacus serve``, each of its workers). An app run in a thread of another program (a test
    client's portal thread) leaves that program's collector as it is: freezing would also freeze
    whatever garbage the host program has not collected yet.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def create_app(settings: Settings | None = None, *, fast_routes: bool = True) -> FastAPI:
    """Build the application. Redis is opened by the lifespan, never at import.

    ``fast_routes``: the hot routes are answered by :mod:`service.api.fast` before FastAPI
    sees them (False serves them through FastAPI alone: the reference the tests compare with).
    """
    from service.api.fast import FrontedAPI

    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.data_dir).start()
            url = embedded.url
            log.info("embedded redis-server, data in %s", embedded.data_dir)
        client = connect(
            url, cluster=settings.redis_cluster, timeout_seconds=settings.redis_timeout_seconds
        )
        metrics = Metrics()
        store = Store(
            client,
            Keyspace(settings.key_prefix),
            log_max_length=settings.log_max_length,
            on_activity_failure=metrics.activity_log_failures.inc,
            timeout_seconds=settings.redis_timeout_seconds,
        )
        app.state.settings = settings
        app.state.admin_key = (
            None if settings.admin_key is None else AdminKey.of(settings.admin_key)
        )
        app.state.store = store
        app.state.metrics = metrics
        app.state.definitions = DefinitionCache(store, ttl_seconds=settings.definitions_ttl_seconds)
        await _adopt_unversioned(store)
        # finish deletes an earlier process left half done (their data is already unreachable)
        reclaim = asyncio.create_task(_reclaim_deleted(store))
        bandits = None
        if settings.bandit_interval_seconds > 0:
            from service.bandit import run_loop

            bandits = asyncio.create_task(run_loop(store, settings.bandit_interval_seconds))
        from service.notify import Notifier

        app.state.notifier = Notifier(store)
        app.state.notifier.start(settings.notify_interval_seconds)
        try:
            with _collector_tuned_for_serving():
                yield
        finally:
            reclaim.cancel()
            if bandits is not None:
                bandits.cancel()
            await app.state.notifier.aclose()
            await app.state.definitions.aclose()
            await client.aclose()
            if embedded is not None:
                embedded.stop()

    app = FrontedAPI(
        title="Abacus",
        summary="A/B-testing engine: assignment, tracking and statistical read-outs",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(AbacusError, _abacus_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Guard, hosts=settings.hosts, cors_origins=list(settings.cors_origins))

    from service.api.routers import (
        admin,
        audit,
        bandit,
        export,
        forms,
        growthbook,
        keys,
        pages,
        public,
        sdk,
        share,
        workspace,
    )

    app.add_route("/v1/assign", public.assign_one, methods=["GET"], include_in_schema=False)
    every = (400, 405)  # a Host not allowed; a method the path does not serve
    app.include_router(public.router, responses=error_responses(*every, 422))
    admin_errors = error_responses(*every, 401, 403, 404, 409, 413, 422, 503)
    app.include_router(admin.router, responses=admin_errors)
    app.include_router(export.router, responses=admin_errors)
    app.include_router(bandit.router, responses=admin_errors)
    app.include_router(sdk.router, responses=error_responses(*every, 422, 503))
    app.include_router(growthbook.router, responses=error_responses(*every, 404, 422, 503))
    app.include_router(growthbook.admin_router, responses=admin_errors)
    app.include_router(keys.router, responses=admin_errors)
    app.include_router(share.api_router, responses=admin_errors)
    app.include_router(audit.router, responses=admin_errors)
    app.include_router(workspace.router, responses=admin_errors)
    app.include_router(pages.router)
    app.include_router(share.page_router)
    app.include_router(forms.router)
    _document_plain_routes(app, {("/v1/assign", "get"): public.ASSIGN_ONE_OPENAPI})
    _offline_docs(app)
    if fast_routes:
        app.serve_hot_routes(settings)
    return app


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from assets shipped in a Python package.

    ``fastapi-offline`` carries Swagger UI's and ReDoc's bundles, served here under
    ``/docs-assets``, so the docs work on a machine with no internet access.
    """
    from importlib.resources import files

    assets = str(files("fastapi_offline").joinpath("static"))
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Abacus API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="Abacus API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)


def _errors_are_json(schema: dict[str, Any]) -> None:
    """An HTML route's error answers are JSON too: document them so (FastAPI uses the route's)."""
    for operation in (o for item in schema.get("paths", {}).values() for o in item.values()):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            if status.startswith(("4", "5")) and "text/html" in content:
                content["application/json"] = content.pop("text/html")


def _document_plain_routes(app: FastAPI, operations: dict[tuple[str, str], object]) -> None:
    """Add plain Starlette routes (which FastAPI cannot describe) to the OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for (path, method), operation in operations.items():
                schema.setdefault("paths", {}).setdefault(path, {})[method] = operation
            _errors_are_json(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
