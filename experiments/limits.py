"""The limits and input rules every part of Abacus applies, each written once.

The definitions and the HTTP schemas validate against these patterns, the store sizes its
windows by these durations, and the JavaScript SDK has them injected when it is served
(``GET /sdk.js``), so a rule cannot drift between copies. Each pattern comes with its rule in
words, for error messages and the OpenAPI descriptions.
"""

from __future__ import annotations

__all__ = [
    "DEDUP_WINDOW_SECONDS",
    "EVENT_ID_PATTERN",
    "EVENT_ID_RULE",
    "EVENT_NAME_PATTERN",
    "EVENT_NAME_RULE",
    "KEY_PATTERN",
    "KEY_RULE",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_BYTES",
    "MAX_ATTRIBUTE_VALUE_CHARACTERS",
    "MAX_EVENT_AGE_SECONDS",
    "MAX_EVENT_SKEW_SECONDS",
    "SDK_QUEUE_MAX_AGE_SECONDS",
    "VISITOR_ID_MAX_LENGTH",
    "VISITOR_ID_PATTERN",
    "VISITOR_ID_RULE",
]

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Experiment keys, variant keys and metric names."""
KEY_RULE = "1-64 of a-z, 0-9, - and _, starting with a letter or digit"

VISITOR_ID_MAX_LENGTH = 200
VISITOR_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
VISITOR_ID_RULE = "1-200 characters, no control characters"

EVENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
EVENT_NAME_RULE = "1-64 of A-Z, a-z, 0-9, _ . : and -, starting with a letter or digit"

EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
EVENT_ID_RULE = "1-128 of A-Z, a-z, 0-9, _ . : and -"

DEDUP_WINDOW_SECONDS = 7 * 86400
"""How long an event id is remembered, so a retry within it counts once."""

MAX_EVENT_AGE_SECONDS = DEDUP_WINDOW_SECONDS
"""How old an event's timestamp may be when it arrives: no older than the dedup window, so a
retried event can never outlive the memory of its id."""

MAX_EVENT_SKEW_SECONDS = 600
"""How far ahead of the server clock an event's timestamp may be (clients' clocks drift)."""

SDK_QUEUE_MAX_AGE_SECONDS = MAX_EVENT_AGE_SECONDS - 86400
"""How long the browser SDK keeps retrying a queued event: a day less than the server accepts,
so a late delivery is not refused for its age."""
MAX_ATTRIBUTES = 50
"""How many attributes one assignment may carry (they are copied into every running
experiment's log with each first exposure)."""

MAX_ATTRIBUTE_VALUE_CHARACTERS = 256
"""How long one attribute value (or one item of a list value) may be, in characters."""

MAX_ATTRIBUTES_BYTES = 4096
"""How large the attributes may be as a whole, in bytes of compact UTF-8 JSON."""
