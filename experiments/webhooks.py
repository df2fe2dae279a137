"""The workspace webhook as values: its settings, its events, its retry policy, its signature.

A workspace has at most one webhook URL. The service POSTs a JSON event to it when an
experiment's sample-ratio check fails, a guardrail is harmed or the primary metric becomes
significant on the always-valid test (``service/notify.py`` finds them); each attempt is kept
as a :class:`DeliveryAttempt`. Everything here is pure: the clock, the random jitter and the
HTTP client are the caller's.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DELIVERY_LOG_LENGTH",
    "MAX_URL_LENGTH",
    "MIN_SECRET_LENGTH",
    "SIGNATURE_HEADER",
    "DeliveryAttempt",
    "EventKind",
    "RetryPolicy",
    "Webhook",
    "WebhookSpec",
    "WebhookView",
    "sign",
]

MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
DELIVERY_LOG_LENGTH = 200
"""How many delivery attempts the log keeps (the oldest are dropped)."""
SIGNATURE_HEADER = "X-Abacus-Signature"


class EventKind(StrEnum):
    SRM = "srm"
    GUARDRAIL_HARMED = "guardrail_harmed"
    PRIMARY_SIGNIFICANT = "primary_significant"
    PING = "ping"


def _check_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters, got {len(url)}")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("must be an http:// or https:// URL without spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in [0, 65535]
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"must be an http:// or https:// URL with a host, got scheme {parts.scheme!r}"
            + ("" if parts.hostname else " and no host")
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password; use the secret to sign")
    if parts.fragment:
        raise ValueError("must not have a #fragment (it is never sent)")
    return url


class WebhookSpec(BaseModel):
    """What an admin sends to ``PUT /v1/workspace/webhook``; replaces the previous settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="where events are POSTed: an http:// or https:// URL with a host, "
        f"at most {MAX_URL_LENGTH} characters; redirects are not followed",
        examples=["https://hooks.example.com/abacus"],
    )
    secret: str | None = Field(
        default=None,
        description=f"{MIN_SECRET_LENGTH}-{MAX_SECRET_LENGTH} printable characters without "
        "spaces; when set, every body is signed in the X-Abacus-Signature header "
        "(sha256=<HMAC-SHA256 of the body>). Left out: events are sent unsigned.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _check_url(url)

    @field_validator("secret")
    @classmethod
    def _secret(cls, secret: str | None) -> str | None:
        if secret is None:
            return None
        if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or any(
            c.isspace() or not c.isprintable() for c in secret
        ):
            raise ValueError(
                f"must be {MIN_SECRET_LENGTH}-{MAX_SECRET_LENGTH} printable characters without "
                f"spaces, got {len(secret)} characters"
            )
        return secret


class Webhook(BaseModel):
    """The stored settings (the secret included: it is needed to sign)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: str | None
    updated_at: float

    def view(self) -> WebhookView:
        return WebhookView(
            url=self.url, secret_set=self.secret is not None, updated_at=self.updated_at
        )


class WebhookView(BaseModel):
    """The settings as ``GET /v1/workspace/webhook`` shows them: never the secret itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret_set: bool
    updated_at: float


class DeliveryAttempt(BaseModel):
    """One POST of one event to the webhook, as the delivery log keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: str
    """The event's id: every attempt of one event carries the same."""
    event: EventKind
    experiment: str | None
    metric: str | None
    url: str
    attempt: int
    """1 for the first POST, 2 for the first retry, ..."""
    max_attempts: int
    at: datetime
    status_code: int | None
    """The receiver's HTTP status, or ``None`` when there was no answer."""
    outcome: Literal["delivered", "retrying", "failed"]
    error: str | None
    """Why the attempt failed (``None`` when delivered)."""
    retry_in_seconds: float | None
    """How long until the next attempt, when there is one."""
    duration_ms: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: the wait before retry ``n`` (1-based) is
    ``min(cap, base * 2**(n-1))`` shortened by a random share of at most ``jitter``.

    With ``jitter < 0.5`` each wait is longer than the one before until the cap: the shortest
    next wait, ``(1 - jitter) * 2 * d``, exceeds the longest current one, ``d``.
    """

    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    jitter: float = 0.25
    timeout_seconds: float = 10.0
    """How long one attempt may take (connecting, sending and the answer)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"jitter must be in [0, 0.5), got {self.jitter}")
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError(
                f"base_seconds must be > 0 and cap_seconds >= base_seconds, got "
                f"{self.base_seconds} and {self.cap_seconds}"
            )
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")

    def delay_seconds(self, retry: int, draw: float, retry_after: float | None = None) -> float:
        """The wait before retry ``retry`` given a uniform ``draw`` in [0, 1); a receiver's
        ``Retry-After`` lengthens it, up to the cap."""
        full: float = min(self.cap_seconds, self.base_seconds * 2.0 ** (retry - 1))
        wait = full * (1 - self.jitter * draw)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap_seconds))
        return wait


def sign(secret: str, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
