"""Who is asking, and what they may do: the principal behind a request.

Every admin route and page asks :func:`current` for the :class:`Principal` of its request and
compares its :class:`Role` with what the route needs (``viewer`` reads, ``editor`` changes
experiments, ``admin`` also manages keys and the workspace). A principal comes from
``Authorization: Bearer <key>``, from a browser session opened at ``/login``, or, with no key
configured at all (the service then listens on loopback only), it is the local admin. A key is
``ABACUS_ADMIN_KEY`` (the bootstrap admin) or one made through ``POST /v1/keys``; a stored key
is looked up in the store on every request, never cached, so a revoked key and every session
opened with it prove nobody from the next request on.

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

from experiments.store import ApiKeyRecord, Store
from service.api.auth import API_KEY_PATTERN, SESSION_COOKIE, AdminKey, session_key_id

__all__ = [
    "BOOTSTRAP_NAME",
    "CSRF_FIELD",
    "Principal",
    "Role",
    "csrf_token",
    "csrf_valid",
    "current",
    "resolve",
]

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


BOOTSTRAP_NAME = "admin"
"""The name ``ABACUS_ADMIN_KEY`` goes by in the audit trail and in key listings."""


def _of(record: ApiKeyRecord, via: str) -> Principal:
    return Principal(name=record.name, role=Role(record.role), key_id=record.id, via=via)


async def resolve(connection: HTTPConnection, secret: str) -> Principal | None:
    """The principal a key ``secret`` stands for (a bearer key, or one given at ``/login``),
    or None if it is no key."""
    key: AdminKey | None = connection.app.state.admin_key
    if key is not None and key.matches(secret):
        return Principal(name=BOOTSTRAP_NAME, role=Role.ADMIN, key_id=key.id, via="bearer")
    if API_KEY_PATTERN.fullmatch(secret) is None:
        return None
    given = AdminKey.of(secret)
    record = await connection.app.state.store.api_key(given.id)
    if record is None or not hmac.compare_digest(record.digest, given.hex_digest):
        return None
    return _of(record, "bearer")


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
    store: Store = connection.app.state.store
    key_id = await session_key_id(store, cookie)
    if key_id is None:
        return None
    if key_id == key.id:
        return Principal(name=BOOTSTRAP_NAME, role=Role.ADMIN, key_id=key_id, via="session")
    record = await store.api_key(key_id)
    return None if record is None else _of(record, "session")


def csrf_token(connection: HTTPConnection) -> str:
    """The token a page form of this session must send back in :data:`CSRF_FIELD`."""
    cookie = connection.cookies.get(SESSION_COOKIE, "")
    return hashlib.sha256(b"abacus csrf" + cookie.encode("utf-8", "replace")).hexdigest()


def csrf_valid(connection: HTTPConnection, given: str) -> bool:
    """Whether a form's token belongs to this request's session (always, with no key set, and
    for a request that proved a bearer key: no browser adds that header on its own)."""
    if connection.app.state.admin_key is None:
        return True
    principal: Principal | None = getattr(connection.state, "principal", None)
    if principal is not None and principal.via == "bearer":
        return True
    if SESSION_COOKIE not in connection.cookies:
        return False
    return hmac.compare_digest(csrf_token(connection), given)
