"""Share links: signed, expiring, revocable tokens that open one experiment's report.

A token is ``ID.EXPERIMENT.EXPIRES.SIGNATURE``: the link's random id, the experiment key, the
expiry (whole seconds since the epoch) and an HMAC-SHA256 of the three under the workspace
secret (kept in the store, made once, the first writer winning). The signature makes a token
that was not issued worthless without a store lookup; the stored record (by id) makes an
issued one revocable. A link opens its report read-only and grants nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from experiments.limits import KEY_PATTERN
from experiments.store import ShareLinkRecord, Store

__all__ = [
    "DEFAULT_SECONDS",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "Check",
    "Checked",
    "check",
    "new_id",
    "sign",
    "url_of",
    "workspace_secret",
]

MIN_SECONDS = 3600
MAX_SECONDS = 90 * 86400
DEFAULT_SECONDS = 7 * 86400

_TOKEN = re.compile(
    r"^([0-9a-f]{16})\.(" + KEY_PATTERN.strip("^$") + r")\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$"
)


class Check(StrEnum):
    VALID = "valid"
    FORGED = "forged"  # not a token this workspace signed
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Checked:
    outcome: Check
    record: ShareLinkRecord | None


def new_id() -> str:
    """A new link's id: 64 random bits, in hex."""
    return secrets.token_hex(8)


async def workspace_secret(store: Store) -> bytes:
    """The workspace's signing secret, made now if there is none yet."""
    return (await store.workspace_secret(secrets.token_hex(32))).encode()


def _signature(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, b"abacus share link:" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def sign(secret: bytes, record: ShareLinkRecord) -> str:
    """The token of ``record``."""
    payload = f"{record.id}.{record.experiment}.{int(record.expires_at)}"
    return f"{payload}.{_signature(secret, payload)}"


def url_of(secret: bytes, record: ShareLinkRecord) -> str:
    return f"/share/{sign(secret, record)}"


async def check(store: Store, token: str, *, now: float) -> Checked:
    """Whether ``token`` opens a report now, and the link's record if it was issued."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return Checked(Check.FORGED, None)
    link_id, experiment, expires, signature = match.groups()
    secret = await workspace_secret(store)
    payload = f"{link_id}.{experiment}.{expires}"
    if not hmac.compare_digest(_signature(secret, payload), signature):
        return Checked(Check.FORGED, None)
    if int(expires) <= now:
        return Checked(Check.EXPIRED, None)
    record = await store.share_link(link_id)
    if record is None:
        return Checked(Check.REVOKED, None)
    if record.experiment != experiment or int(record.expires_at) != int(expires):
        return Checked(Check.FORGED, None)
    return Checked(Check.VALID, record)
