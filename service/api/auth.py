"""Who may see admin data: the keys, browser sessions and the sign-in rate limit.

A key is only ever compared as a SHA-256 digest with :func:`hmac.compare_digest`, so the
comparison takes the same time whatever the guess and however long it is. A browser cannot
send a bearer header, so ``/login`` trades the key for a session: a random token in an
HttpOnly, SameSite=Strict cookie, remembered server-side (in Redis, by the token's digest) for
:data:`SESSION_SECONDS`. Each session records which key it belongs to (the key's
:attr:`AdminKey.id`, a digest that reveals nothing of the key): logging out closes that one
session, and :func:`close_sessions` closes every session of a key. Sign-ins are limited per
client address: after :data:`LOGIN_MAX_FAILURES` wrong keys within
:data:`LOGIN_WINDOW_SECONDS`, ``/login`` answers 429 until the window ends, without looking at
the key. Keys made through ``POST /v1/keys`` (:func:`new_api_key`) are kept the same way: the
store holds the digest and derives nothing from the secret but the digest and the id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from experiments.store import Store

__all__ = [
    "API_KEY_PATTERN",
    "LOGIN_MAX_FAILURES",
    "LOGIN_WINDOW_SECONDS",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "AdminKey",
    "close_session",
    "close_sessions",
    "new_api_key",
    "open_session",
    "session_key_id",
]

SESSION_COOKIE = "abacus_session"
SESSION_SECONDS = 12 * 3600
LOGIN_WINDOW_SECONDS = 300
LOGIN_MAX_FAILURES = 10

API_KEY_PREFIX = "abk_"
API_KEY_PATTERN = re.compile(r"^abk_[A-Za-z0-9_-]{43}$")
"""What a stored key's secret looks like: anything else is not looked up in the store."""

_COOKIE = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class AdminKey:
    """A key kept only as its digest; ``id`` names it in sessions and logs."""

    digest: bytes
    id: str

    @classmethod
    def of(cls, secret: str) -> AdminKey:
        digest = _digest(secret)
        return cls(digest=digest, id=hashlib.sha256(b"abacus key id" + digest).hexdigest()[:16])

    def matches(self, given: str) -> bool:
        return hmac.compare_digest(_digest(given), self.digest)

    @property
    def hex_digest(self) -> str:
        return self.digest.hex()

    def matches_bearer(self, connection: HTTPConnection) -> bool:
        """Whether the request carries ``Authorization: Bearer <this key>``."""
        scheme, _, given = connection.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.matches(given)


def new_api_key() -> str:
    """A new key's secret: 256 random bits, shown to its owner once and never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def _parts(cookie: str) -> tuple[str, str] | None:
    match = _COOKIE.fullmatch(cookie)
    if match is None:
        return None
    return match.group(1), hashlib.sha256(match.group(2).encode()).hexdigest()


async def open_session(store: Store, key_id: str) -> str:
    """Open a session of the key ``key_id`` names and return the cookie value that names it."""
    token = secrets.token_urlsafe(32)
    await store.open_session(
        key_id, hashlib.sha256(token.encode()).hexdigest(), ttl_seconds=SESSION_SECONDS
    )
    return f"{key_id}.{token}"


async def session_key_id(store: Store, cookie: str) -> str | None:
    """The id of the key whose open session ``cookie`` names, or None."""
    parts = _parts(cookie)
    if parts is None or not await store.session_valid(*parts):
        return None
    return parts[0]


async def close_session(store: Store, cookie: str) -> None:
    """Close the session ``cookie`` names (nothing if it names none)."""
    if (parts := _parts(cookie)) is not None:
        await store.close_session(*parts)


async def close_sessions(store: Store, key: AdminKey | str) -> None:
    """Close every session of ``key`` (a key, or a key's id)."""
    await store.close_sessions(key if isinstance(key, str) else key.id)
