"""The hot routes, answered in front of FastAPI: assignment and tracking.

Profiled under load (``bench/profile_assign.py``), a ``GET /v1/assign`` spent more of its time
in the layers around the route than in it: FastAPI's own ``__call__`` (a telemetry check that
reads the environment on every request), Starlette's middleware stack and route table, the
CORS and body-limit middleware, FastAPI's request machinery. :class:`FastFront` answers
``GET``/``POST /v1/assign``, ``POST /v1/track`` and ``POST /v1/track/batch`` as a plain ASGI
app: it reads the query or the body, validates it with the routes' own rules (the pydantic
models of :mod:`service.api.schemas`, the patterns of :mod:`experiments.limits`), runs the
routes' own code (:mod:`service.api.routers.public`, whose Redis calls are coalesced) and
writes pre-encoded JSON with the CORS headers :class:`~service.api.middleware.Guard` gives these
paths, computed by the same CORS rules. An exposure is recorded before its answer is sent.

Whatever it would not answer with a 2xx goes to the FastAPI app as it came, a body already
read replayed: a ``Host`` not allowed, a preflight, a body too large or not JSON, invalid input,
an unknown experiment. So every error body, status and header there is the app's own, and the
routes stay declared in FastAPI, so ``/openapi.json`` is unchanged. A store failure while
writing is the one error answered here, with the body of the app's error table
(:func:`service.api.app.error_response`), so a write is never attempted twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, State
from starlette.responses import Response

from experiments.bounded import BoundedDict
from experiments.errors import AbacusError, StoreUnavailableError
from service.api.app import error_response
from service.api.middleware import HostAllowList, host_name, public_cors
from service.api.routers import public
from service.api.schemas import AssignRequest, BatchTrackRequest, TrackRequest
from service.settings import Settings

__all__ = ["FastFront", "FrontedAPI"]

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
Answer = tuple[int, bytes, RawHeaders]
"""Status, body and headers (CORS headers are added on the way out)."""
Model = TypeVar("Model", bound=BaseModel)

_JSON = (b"content-type", b"application/json")
_MAX_ORIGINS = 256
"""Distinct ``Origin`` (and ``Host``) values whose CORS headers (and verdict) are kept (each
cache is emptied past it)."""


def _json(body: bytes) -> Answer:
    return 200, body, [(b"content-length", b"%d" % len(body)), _JSON]


def _of(response: Response) -> Answer:
    return response.status_code, bytes(response.body), list(response.raw_headers)


def _parse(model: type[Model], body: bytes) -> Model | None:
    """``body`` as ``model``, or None when FastAPI would refuse it (it then answers)."""
    try:
        return model.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI reads the body as JSON (``application/json``; it also reads
    ``application/*+json``, which is left to it)."""
    if content_type is None:
        return False  # FastAPI's strict content type: a body without one is not JSON
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


class FastFront:
    """Answers the hot routes of ``app``; hands every other request to it unchanged."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.state: State = app.state
        self.app_call = partial(FastAPI.__call__, app)
        self.hosts = HostAllowList(settings.hosts)
        self.cors = public_cors(app, list(settings.cors_origins))
        self.max_body_bytes = settings.max_body_bytes
        self._cors_headers: BoundedDict[bytes | None, RawHeaders] = BoundedDict(_MAX_ORIGINS)
        self._hosts_seen: BoundedDict[bytes | None, bool] = BoundedDict(_MAX_ORIGINS)
        self.routes: dict[tuple[str, str], Callable[[Scope, bytes], Awaitable[Answer | None]]] = {
            ("GET", "/v1/assign"): self._assign_one,
            ("POST", "/v1/assign"): self._assign_many,
            ("POST", "/v1/track"): self._track,
            ("POST", "/v1/track/batch"): self._track_batch,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes[(scope["method"], scope["path"])]
        host = origin = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"host" and host is None:
                host = value
            elif name == b"origin" and origin is None:
                origin = value
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"content-length" and length is None:
                length = value
        allowed = self._hosts_seen.get(host)
        if allowed is None:
            allowed = self._host_allowed(host)
        if not allowed:
            await self.app_call(scope, receive, send)
            return
        body = b""
        received: list[Message] | None = None  # a POST's messages, replayed to the app
        if scope["method"] == "POST":
            if not _is_json(content_type) or (
                length is not None and (not length.isdigit() or int(length) > self.max_body_bytes)
            ):
                await self.app_call(scope, receive, send)
                return
            read, received = await self._read(receive)
            if read is None:
                await self.app_call(scope, _replay(received, receive), send)
                return
            body = read
        answer = await route(scope, body)
        if answer is None:
            replayed = receive if received is None else _replay(received, receive)
            await self.app_call(scope, replayed, send)
            return
        status, content, headers = answer
        cors = self._cors_headers.get(origin)
        headers += await self._cors_for(origin) if cors is None else cors
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _host_allowed(self, host: bytes | None) -> bool:
        """Whether the allow-list takes ``host`` (the raw header), remembered per value."""
        allowed = self.hosts.allows(host_name(host.decode("latin-1")) if host else "")
        return self._hosts_seen.put(host, allowed)

    async def _read(self, receive: Receive) -> tuple[bytes | None, list[Message]]:
        """The whole body and the messages it came in; None past the size limit or on a
        disconnect (the app then answers from the replayed messages)."""
        received: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None, received
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, received
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), received

    async def _cors_for(self, origin: bytes | None) -> RawHeaders:
        """The headers the public routes' CORS rules add to an answer to ``origin``."""
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        sent: list[Message] = []

        async def keep(message: Message) -> None:
            sent.append(message)

        request = Headers(raw=[] if origin is None else [(b"origin", origin)])
        await self.cors.send(start, keep, request)
        headers: RawHeaders = list(sent[0]["headers"])
        return self._cors_headers.put(origin, headers)

    # -- the routes: None hands the request to the FastAPI app --------------------------------

    async def _assign_one(self, scope: Scope, body: bytes) -> Answer | None:
        experiment, visitor_id, problems = public.assign_one_params(scope["query_string"])
        if problems:
            return None
        try:
            answer = await public.assign_one_answer(self.state, experiment, visitor_id)
        except AbacusError:
            return None
        return _json(orjson.dumps(answer))

    async def _assign_many(self, scope: Scope, body: bytes) -> Answer | None:
        request = _parse(AssignRequest, body)
        if request is None:
            return None
        try:
            answer = await public.assign_many_answer(self.state, request)
        except AbacusError:
            return None
        return _json(orjson.dumps(answer))

    async def _track(self, scope: Scope, body: bytes) -> Answer | None:
        request = _parse(TrackRequest, body)
        if request is None:
            return None
        return await self._record([request], batch=False)

    async def _track_batch(self, scope: Scope, body: bytes) -> Answer | None:
        request = _parse(BatchTrackRequest, body)
        if request is None:
            return None
        return await self._record(request.events, batch=True)

    async def _record(self, requests: list[TrackRequest], *, batch: bool) -> Answer | None:
        try:
            events, running = await public.prepare_track(self.state, requests, batch=batch)
        except AbacusError:
            return None  # nothing written yet
        try:
            outcomes = await public.record_track(self.state, running, events)
        except StoreUnavailableError as exc:
            return _of(error_response(exc))
        failed = public.partly_unavailable(outcomes)
        if failed is not None:
            return _of(failed)
        encoded = public.encoded_track_responses(outcomes)
        return _json(b"[" + b",".join(encoded) + b"]" if batch else encoded[0])


def _replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` with the messages already read given again first."""
    pending = list(received)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class FrontedAPI(FastAPI):
    """The FastAPI app, with :class:`FastFront` answering the hot routes before it."""

    front: FastFront | None = None

    def serve_hot_routes(self, settings: Settings) -> None:
        self.front = FastFront(self, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if (
            front is not None
            and scope["type"] == "http"
            and (scope["method"], scope["path"]) in front.routes
        ):
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
