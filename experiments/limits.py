"""The limits and input rules every part of Abacus applies, each written once.

The service validates requests against these, the store sizes its windows by them, and the
JavaScript SDK has them injected when it is served, so a rule cannot drift between copies.
"""

from __future__ import annotations

__all__ = [
    "DEDUP_WINDOW_SECONDS",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_BYTES",
    "MAX_ATTRIBUTE_VALUE_CHARACTERS",
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

MAX_ATTRIBUTES = 50
"""How many attributes one assignment may carry (they are copied into every running
experiment's log with each first exposure)."""

MAX_ATTRIBUTE_VALUE_CHARACTERS = 256
"""How long one attribute value (or one item of a list value) may be, in characters."""

MAX_ATTRIBUTES_BYTES = 4096
"""How large the attributes may be as a whole, in bytes of compact UTF-8 JSON."""
