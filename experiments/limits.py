"""The limits and input rules every part of Abacus applies, each written once.

The service validates requests against these, the store sizes its windows by them, and the
JavaScript SDK has them injected when it is served, so a rule cannot drift between copies.
"""

from __future__ import annotations

__all__ = [
    "DEDUP_WINDOW_SECONDS",
    "MAX_EVENT_AGE_SECONDS",
    "MAX_EVENT_SKEW_SECONDS",
]

DEDUP_WINDOW_SECONDS = 7 * 86400
"""How long an event id is remembered, so a retry within it counts once."""

MAX_EVENT_AGE_SECONDS = DEDUP_WINDOW_SECONDS
"""How old an event's timestamp may be when it arrives: no older than the dedup window, so a
retried event can never outlive the memory of its id."""

MAX_EVENT_SKEW_SECONDS = 600
"""How far ahead of the server clock an event's timestamp may be (clients' clocks drift)."""
