"""Dependencies handed to routes: the store, the definitions cache, the admin check.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which on the
assignment path costs more than the Redis round trip.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from experiments.store import Store
from service.definitions_cache import DefinitionCache
from service.settings import Settings

__all__ = ["Admin", "Definitions", "SettingsDep", "StoreDep"]


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _definitions(request: Request) -> DefinitionCache:
    cache: DefinitionCache = request.app.state.definitions
    return cache


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _require_admin(request: Request) -> None:
    """Bearer-key check; with no key configured the service listens on loopback only."""
    key: str | None = request.app.state.settings.admin_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPException(
            status_code=401,
            detail="admin endpoints need the header 'Authorization: Bearer <ABACUS_ADMIN_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


StoreDep = Annotated[Store, Depends(_store)]
Definitions = Annotated[DefinitionCache, Depends(_definitions)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Admin = Depends(_require_admin)
