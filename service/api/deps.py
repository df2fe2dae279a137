"""Dependencies handed to routes: the store, the definitions cache, the admin check.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which on the
assignment path costs more than the Redis round trip.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from experiments.store import Store
from service.api.auth import SESSION_COOKIE, AdminKey, session_key_id
from service.api.definitions_cache import DefinitionCache
from service.settings import Settings

__all__ = ["Admin", "Definitions", "SettingsDep", "StoreDep", "is_admin"]


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _definitions(request: Request) -> DefinitionCache:
    cache: DefinitionCache = request.app.state.definitions
    return cache


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def is_admin(request: Request) -> bool:
    """Whether the request may see admin data.

    Always with no key configured (the service then listens on loopback only); otherwise with
    ``Authorization: Bearer <key>``, or, for reading (GET/HEAD), an open browser session
    (:mod:`service.api.auth`). The cookie is SameSite=Strict and never authorises a change.
    """
    key: AdminKey | None = request.app.state.admin_key
    if key is None or key.matches_bearer(request):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None or request.method not in {"GET", "HEAD"}:
        return False
    return await session_key_id(request.app.state.store, cookie) == key.id


async def _require_admin(request: Request) -> None:
    if not await is_admin(request):
        raise HTTPException(
            status_code=401,
            detail="admin endpoints need the header 'Authorization: Bearer <ABACUS_ADMIN_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


StoreDep = Annotated[Store, Depends(_store)]
Definitions = Annotated[DefinitionCache, Depends(_definitions)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Admin = Depends(_require_admin)
