"""Who is asking, and what they may do: the principal behind a request.

Every admin route and page asks :func:`current` for the :class:`Principal` of its request and
compares its :class:`Role` with what the route needs (``viewer`` reads, ``editor`` changes
experiments, ``admin`` also manages keys and the workspace). A principal comes from
``Authorization: Bearer <key>``, from a browser session opened at ``/login``, or, with no key
configured at all (the service then listens on loopback only), it is the local admin.

A browser session authorises a change only on the page forms, and only with the form's CSRF
token (:func:`csrf_token`, checked by :func:`csrf_valid`): the token is derived from the
session's secret cookie, which another site can neither read nor set, and the middleware
refuses a change whose ``Origin`` is another site's as well. The JSON API takes changes only
with a bearer key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import HTTPConnection

from service.api.auth import SESSION_COOKIE, AdminKey, session_key_id

__all__ = ["CSRF_FIELD", "Principal", "Role", "csrf_token", "csrf_valid", "current", "resolve"]

CSRF_FIELD = "csrf_token"


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a name for the audit trail, a role, and how they proved it."""

    name: str
    role: Role
    key_id: str | None
    via: str  # "bearer", "session" or "open" (no key configured)

    def may(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


_LOCAL = Principal(name="local", role=Role.ADMIN, key_id=None, via="open")


async def resolve(connection: HTTPConnection, secret: str) -> Principal | None:
    """The principal a key ``secret`` stands for (at ``/login``), or None if it is no key."""
    key: AdminKey | None = connection.app.state.admin_key
    if key is not None and key.matches(secret):
        return Principal(name="admin", role=Role.ADMIN, key_id=key.id, via="bearer")
    return None


async def current(connection: HTTPConnection) -> Principal | None:
    """The principal of a request, or None when it proves nobody."""
    key: AdminKey | None = connection.app.state.admin_key
    if key is None:
        return _LOCAL
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return await resolve(connection, given)
    cookie = connection.cookies.get(SESSION_COOKIE)
    if cookie is None:
        return None
    key_id = await session_key_id(connection.app.state.store, cookie)
    if key_id is None or key_id != key.id:
        return None
    return Principal(name="admin", role=Role.ADMIN, key_id=key_id, via="session")


def csrf_token(connection: HTTPConnection) -> str:
    """The token a page form of this session must send back in :data:`CSRF_FIELD`."""
    cookie = connection.cookies.get(SESSION_COOKIE, "")
    return hashlib.sha256(b"abacus csrf" + cookie.encode("utf-8", "replace")).hexdigest()


def csrf_valid(connection: HTTPConnection, given: str) -> bool:
    """Whether a form's token belongs to this request's session (always, with no key set)."""
    if connection.app.state.admin_key is None:
        return True
    if SESSION_COOKIE not in connection.cookies:
        return False
    return hmac.compare_digest(csrf_token(connection), given)
