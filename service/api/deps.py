"""Dependencies handed to routes: the store, the definitions cache, the role checks.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which on the
assignment path costs more than the Redis round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from experiments.store import Store
from service.api.definitions_cache import DefinitionCache
from service.api.principal import Principal, Role, current
from service.settings import Settings

__all__ = [
    "Actor",
    "Admin",
    "AdminOnly",
    "Definitions",
    "Editor",
    "EditorForm",
    "SettingsDep",
    "StoreDep",
    "Viewer",
    "require",
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


def _unauthorised() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="admin endpoints need the header 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require(role: Role, *, from_session: bool = False) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that answers 401 without a principal and 403 below ``role``.

    A browser session counts for reading; for a change only where ``from_session`` is set (the
    page forms, which check their CSRF token themselves).
    """

    async def check(request: Request) -> Principal:
        principal = await current(request)
        changes = request.method not in {"GET", "HEAD"}
        if principal is None or (principal.via == "session" and changes and not from_session):
            raise _unauthorised()
        if not principal.may(role):
            raise HTTPException(
                status_code=403,
                detail=f"this needs the role {role.value!r} or higher; "
                f"key {principal.name!r} has the role {principal.role.value!r}",
            )
        request.state.principal = principal
        return principal

    return check


async def _by_method(request: Request) -> Principal:
    """Reading needs a viewer, a change an editor."""
    needed = Role.VIEWER if request.method in {"GET", "HEAD"} else Role.EDITOR
    return await require(needed)(request)


StoreDep = Annotated[Store, Depends(_store)]
Definitions = Annotated[DefinitionCache, Depends(_definitions)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Admin = Depends(_by_method)
"""Reads for any role, changes for an editor or admin (the default of the admin routers)."""
Actor = Annotated[Principal, Depends(_by_method)]
"""The principal of a route under :data:`Admin` (checked once per request)."""
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Editor = Annotated[Principal, Depends(require(Role.EDITOR))]
AdminOnly = Annotated[Principal, Depends(require(Role.ADMIN))]
EditorForm = Annotated[Principal, Depends(require(Role.EDITOR, from_session=True))]
"""An editor or admin posting a page form (a session counts; the route checks the CSRF token)."""
