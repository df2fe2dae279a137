"""The compact encodings of what the store keeps per visitor and per log entry.

Redis keeps a small hash or a stream node as one packed list of strings and integers, so every
byte of a field or value counts a million times over. What is packed:

- a visitor id in canonical UUID form (lowercase, 36 characters) becomes ``\\x01`` plus its 16
  bytes in unpadded base64url (23 characters); any other id is kept as it is. Visitor ids cannot
  hold control characters, so the two forms never meet;
- an assignment is one integer, ``exposed_ms * 32 + variant`` (at most 20 variants), which the
  server stores as an 8-byte integer;
- a log entry is one stream field: its kind (a letter, upper case when the visitor is a packed
  UUID), the variant (one base-32 digit), the time (milliseconds, 7 base-64 digits), the visitor
  (22 characters when packed, else ended by ``\\x1f``) and the rest (attributes JSON, or the
  event and its value separated by ``\\x1f``: a control character, in no visitor id, event name
  or number, and escaped inside JSON);
- an event id is remembered as a 64-bit digest of (visitor, event id), 16 hex characters.

Everything here is a pure function; the Lua scripts only copy these strings and read the
assignment integer.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

__all__ = [
    "SEP",
    "SLICE_DIGITS",
    "LogEntry",
    "activity_entry",
    "assignment_of",
    "day_of",
    "decode_activity",
    "decode_log",
    "event_entry",
    "event_id_digest",
    "exposure_entry",
    "pack_assignment",
    "pack_visitor",
    "slices_of",
    "unpack_visitor",
]

SEP = "\x1f"
_UUID_MARK = "\x01"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_VARIANTS = 32  # the assignment packs the variant in 5 bits, the log in one digit


def day_of(ms: int) -> str:
    """The UTC day ``YYYYMMDD`` of a time in milliseconds since the epoch."""
    return _day_of_epoch_day(ms // 86_400_000)


@lru_cache(maxsize=4096)
def _day_of_epoch_day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, UTC).strftime("%Y%m%d")


@lru_cache(maxsize=8192)  # one request packs its visitor once per experiment and log
def pack_visitor(visitor_id: str) -> str:
    if len(visitor_id) == 36 and _UUID.fullmatch(visitor_id):
        raw = bytes.fromhex(visitor_id.replace("-", ""))
        return _UUID_MARK + base64.urlsafe_b64encode(raw)[:22].decode()
    if visitor_id.startswith(_UUID_MARK):
        raise ValueError(f"visitor_id must not start with a control character, got {visitor_id!r}")
    return visitor_id


def unpack_visitor(packed: str) -> str:
    if len(packed) == 23 and packed.startswith(_UUID_MARK):
        h = base64.urlsafe_b64decode(packed[1:] + "==").hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return packed


def pack_assignment(exposed_ms: int, variant_index: int) -> int:
    return exposed_ms * MAX_VARIANTS + variant_index


def assignment_of(raw: str | int) -> tuple[int, int]:
    """``(variant_index, exposed_ms)`` of a stored assignment (its slices, if any, ignored)."""
    number = raw.partition(":")[0] if isinstance(raw, str) else raw
    exposed_ms, variant = divmod(int(number), MAX_VARIANTS)
    return variant, exposed_ms


SLICE_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
"""One character per slice index of a dimension (at most 50 values plus "other")."""


def slices_of(raw: str | int) -> str:
    """The slice characters a stored assignment carries, one per dimension ('' for none)."""
    return raw.partition(":")[2] if isinstance(raw, str) else ""


def event_id_digest(visitor_id: str, event_id: str) -> str:
    """What the dedup windows remember of an event id: it counts once per visitor."""
    data = f"{visitor_id}\x00{event_id}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


_B64 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}
_TIME_WIDTH = 7  # 64**7 ms: until the year 2109
VARIANT_DIGITS = "0123456789abcdefghijklmnopqrstuv"
VARIANT_PLACEHOLDER = "?"


_PAIRS = [a + b for a in _B64 for b in _B64]  # 12 bits per lookup: this runs on every write


def _time(ms: int) -> str:
    if not 0 <= ms < 64**_TIME_WIDTH:
        raise ValueError(f"timestamp_ms must be in [0, 64**7), got {ms}")
    return (
        _B64[ms >> 36] + _PAIRS[(ms >> 24) & 4095] + _PAIRS[(ms >> 12) & 4095] + _PAIRS[ms & 4095]
    )


def _untime(text: str) -> int:
    ms = 0
    for char in text:
        ms = ms * 64 + _B64_VALUE[char]
    return ms


def _entry(kind: str, variant: str, ms: int, packed_visitor: str, rest: str) -> str:
    """``kind variant time visitor rest``: a packed UUID visitor is 22 characters after an
    upper-case kind; any other visitor ends at a separator after a lower-case kind."""
    if packed_visitor.startswith(_UUID_MARK):
        return f"{kind.upper()}{variant}{_time(ms)}{packed_visitor[1:]}{rest}"
    return f"{kind}{variant}{_time(ms)}{packed_visitor}{SEP}{rest}"


def exposure_entry(
    packed_visitor: str, variant_index: int, exposed_ms: int, attributes_json: str
) -> str:
    """An exposure's log entry (attributes left out when empty)."""
    rest = "" if attributes_json == "{}" else attributes_json
    return _entry("x", VARIANT_DIGITS[variant_index], exposed_ms, packed_visitor, rest)


def event_entry(packed_visitor: str, timestamp_ms: int, event: str, value_text: str) -> str:
    """A credited event's log entry; track.lua puts the variant in place of the placeholder."""
    rest = f"{event}{SEP}{value_text}"
    return _entry("e", VARIANT_PLACEHOLDER, timestamp_ms, packed_visitor, rest)


def activity_entry(packed_visitor: str, timestamp_ms: int, event: str, value_text: str) -> str:
    return _entry("a", "", timestamp_ms, packed_visitor, f"{event}{SEP}{value_text}")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decoded entry of an experiment shard's log (``kind`` is exposure or event)."""

    kind: str
    variant_index: int
    visitor_id: str
    timestamp_ms: int
    event: str | None
    value: str | None
    attributes: str | None


def _split(packed: str, start: int) -> tuple[int, str, str]:
    """``(timestamp_ms, visitor_id, rest)`` of an entry whose time begins at ``start``."""
    ms = _untime(packed[start : start + _TIME_WIDTH])
    body = packed[start + _TIME_WIDTH :]
    if packed[0].isupper():
        return ms, unpack_visitor(_UUID_MARK + body[:22]), body[22:]
    visitor, _, rest = body.partition(SEP)
    return ms, visitor, rest


def decode_log(packed: str) -> LogEntry:
    """An entry written by assign.lua (``x``) or track.lua (``e``)."""
    kind = packed[0].lower()
    variant = VARIANT_DIGITS.index(packed[1])
    ms, visitor, rest = _split(packed, 2)
    if kind == "x":
        return LogEntry("exposure", variant, visitor, ms, None, None, rest or "{}")
    if kind == "e":
        event, value = rest.split(SEP, 1)
        return LogEntry("event", variant, visitor, ms, event, value, None)
    raise ValueError(f"log entry must start with x or e, got {packed[:8]!r}")


def decode_activity(packed: str) -> tuple[str, int, str, str]:
    """``(visitor_id, timestamp_ms, event, value)`` of an activity log entry."""
    ms, visitor, rest = _split(packed, 1)
    event, value = rest.split(SEP, 1)
    return visitor, ms, event, value
