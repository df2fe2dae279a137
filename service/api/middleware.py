"""The outermost layer of the app: which hosts and origins may talk to it, and page headers.

- **Host allow-list.** A request whose ``Host`` is not allowed gets 400 before any route runs.
  Without an admin key the service listens on loopback and answers only loopback names, so a
  page that rebinds its own DNS name to 127.0.0.1 cannot reach it.
- **CORS on the public routes only** (:data:`PUBLIC_PATHS` and :data:`PUBLIC_PREFIXES`:
  assignment, exposures, tracking, the SDK and its definitions, GrowthBook's features payload,
  health). Everything else answers no CORS headers, so another site's script
  can neither read admin data nor pass a preflight for a change; a change that carries an
  ``Origin`` other than the service's own is refused with 403 whatever its content type.
- **Headers on everything else**: ``Cache-Control: no-store`` (admin data stays out of caches),
  ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``, and on the marketer's
  pages a ``Content-Security-Policy`` that allows no script at all (they have none).

The public routes pay one set lookup for this; the CORS middleware itself only works on
requests that carry an ``Origin``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

__all__ = [
    "PAGE_CSP",
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "Guard",
    "HostAllowList",
    "host_name",
    "public_cors",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset(
    {
        *("/v1/assign", "/v1/exposures", "/v1/track", "/v1/track/batch", "/v1/definitions"),
        *("/sdk.js", "/sdk.mjs", "/sdk.d.ts", "/healthz"),
    }
)
"""The routes any website may call from a browser (CORS)."""
PUBLIC_PREFIXES = ("/api/features/",)
"""Public routes with a path parameter: GrowthBook SDKs fetch ``/api/features/CLIENT_KEY``."""

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The report pages are HTML with inline styles and inline SVG: nothing else may load."""

_COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def _is_page(path: str) -> bool:
    return path in {"/", "/login", "/new"} or path.startswith(("/experiments/", "/share/"))


def host_name(host: str) -> str:
    """``Host`` without its port, lower case; ``[::1]:8000`` gives ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostAllowList:
    """The ``Host`` names a service answers (``*``: any), compared without port or case."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.any = "*" in hosts
        self.names = frozenset(h.lower() for h in hosts)

    def allows(self, host: str) -> bool:
        return self.any or host in self.names


def public_cors(app: ASGIApp, cors_origins: list[str]) -> CORSMiddleware:
    """The CORS rules of the public routes: simple GETs and POSTs with a JSON body."""
    return CORSMiddleware(
        app,
        allow_origins=cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )


class Guard:
    """Host allow-list, CORS for :data:`PUBLIC_PATHS` only, security headers elsewhere."""

    def __init__(self, app: ASGIApp, *, hosts: tuple[str, ...], cors_origins: list[str]) -> None:
        self.app = app
        self.cors = public_cors(app, cors_origins)
        self.hosts = HostAllowList(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = port = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host, port = host_name(value.decode("latin-1")), _port(value.decode("latin-1"))
                break
        if not self.hosts.allows(host):
            allowed = ", ".join(sorted(self.hosts.names))
            await _refuse(scope, receive, send, 400, "bad_request", "Host", host, allowed)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.cors(scope, receive, send)
            return
        raw_origin = next((v for n, v in scope["headers"] if n == b"origin"), None)
        origin = None if raw_origin is None else raw_origin.decode("latin-1")
        changes = scope["method"] not in {"GET", "HEAD"}
        if origin is not None and changes and not _same_origin(origin, host, port):
            allowed = "this service's own pages (no cross-site changes)"
            await _refuse(scope, receive, send, 403, "forbidden", "Origin", origin, allowed)
            return
        extra = [*_COMMON_HEADERS]
        if _is_page(path):
            extra.append((b"content-security-policy", PAGE_CSP.encode()))

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(n, v) for n, v in extra if n not in present]
                if b"cache-control" not in present:
                    added.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, with_headers)


def _port(host: str) -> str:
    """The explicit port of a ``Host`` header, or ""."""
    host = host.strip()
    tail = host[host.find("]") + 1 :] if host.startswith("[") else host
    return tail.rsplit(":", 1)[1] if tail.count(":") == 1 else ""


def _same_origin(origin: str, host: str, port: str) -> bool:
    """Whether ``Origin`` names this service: the same host name, and the same port when the
    ``Host`` header names one (another port of the same host is another site's page; behind a
    proxy that drops the port, the names alone are compared)."""
    parts = urlsplit(origin)
    if host_name(parts.netloc) != host:
        return False
    if not port:
        return True
    try:
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    return str(origin_port) == port


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    header: str,
    value: str,
    allowed: str,
) -> None:
    message = f"{header} {value!r} is not allowed; allowed: {allowed}"
    if header == "Host":
        message += " (set ABACUS_ALLOWED_HOSTS to the names this service is reached by)"
    body = {
        "error": code,
        "message": message,
        "details": [{"field": header, "message": "not allowed", "value": value[:200]}],
    }
    await JSONResponse(body, status_code=status)(scope, receive, send)
