"""Dependencies handed to routes: the store, the definitions cache, the admin check.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which on the
assignment path costs more than the Redis round trip.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from experiments.store import Store
from service.api.definitions_cache import DefinitionCache
from service.settings import Settings

__all__ = [
    "SESSION_COOKIE",
    "Admin",
    "Definitions",
    "SettingsDep",
    "StoreDep",
    "is_admin",
    "session_token",
]


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _definitions(request: Request) -> DefinitionCache:
    cache: DefinitionCache = request.app.state.definitions
    return cache


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SESSION_COOKIE = "abacus_session"


def session_token(admin_key: str) -> str:
    """The read-only browser session value for ``admin_key`` (never the key itself)."""
    return hmac.new(admin_key.encode(), b"abacus read-only session", hashlib.sha256).hexdigest()


def is_admin(request: Request) -> bool:
    """Whether the request may see admin data.

    Always with no key configured (the service then listens on loopback only); otherwise with
    ``Authorization: Bearer <key>``, or, for reading (GET/HEAD), the browser session cookie set
    by ``/login``. The cookie is SameSite=Strict and never authorises a change.
    """
    key: str | None = request.app.state.settings.admin_key
    if key is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), key.encode()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return request.method in {"GET", "HEAD"} and hmac.compare_digest(
        cookie.encode(), session_token(key).encode()
    )


async def _require_admin(request: Request) -> None:
    if not is_admin(request):
        raise HTTPException(
            status_code=401,
            detail="admin endpoints need the header 'Authorization: Bearer <ABACUS_ADMIN_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


StoreDep = Annotated[Store, Depends(_store)]
Definitions = Annotated[DefinitionCache, Depends(_definitions)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Admin = Depends(_require_admin)
