"""The compact encodings of what the store keeps per visitor and per log entry.

Redis keeps a small hash or a stream node as one packed list of strings and integers, so every
byte of a field or value counts a million times over. What is packed:

- a visitor id in canonical UUID form (lowercase, 36 characters) becomes ``\\x01`` plus its 16
  bytes in unpadded base64url (23 characters); any other id is kept as it is. Visitor ids cannot
  hold control characters, so the two forms never meet;
- an assignment is one integer, ``exposed_ms * 32 + variant`` (at most 20 variants), which the
  server stores as an 8-byte integer;
- a log entry is one stream field holding its kind, variant index, time (milliseconds in base 36),
  visitor and the rest, separated by ``\\x1f`` (a control character: in no visitor id, event name
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
    "LogEntry",
    "activity_entry",
    "assignment_of",
    "day_of",
    "decode_activity",
    "decode_log",
    "event_id_digest",
    "event_tail",
    "exposure_tail",
    "pack_assignment",
    "pack_visitor",
    "unpack_visitor",
]

SEP = "\x1f"
_UUID_MARK = "\x01"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_VARIANTS = 32


def day_of(ms: int) -> str:
    """The UTC day ``YYYYMMDD`` of a time in milliseconds since the epoch."""
    return _day_of_epoch_day(ms // 86_400_000)


@lru_cache(maxsize=4096)
def _day_of_epoch_day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, UTC).strftime("%Y%m%d")


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
    """``(variant_index, exposed_ms)`` of a stored assignment."""
    exposed_ms, variant = divmod(int(raw), MAX_VARIANTS)
    return variant, exposed_ms


def event_id_digest(visitor_id: str, event_id: str) -> str:
    """What the dedup windows remember of an event id: it counts once per visitor."""
    data = f"{visitor_id}\x00{event_id}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _base36(n: int) -> str:
    out = []
    while n:
        n, rest = divmod(n, 36)
        out.append(_DIGITS[rest])
    return "".join(reversed(out)) or "0"


def exposure_tail(packed_visitor: str, exposed_ms: int, attributes_json: str) -> str:
    """An exposure's log entry after ``x`` and the variant (added by the script)."""
    tail = f"{SEP}{_base36(exposed_ms)}{SEP}{packed_visitor}"
    return tail if attributes_json == "{}" else f"{tail}{SEP}{attributes_json}"


def event_tail(packed_visitor: str, timestamp_ms: int, event: str, value_text: str) -> str:
    """A credited event's log entry after ``e`` and the variant (added by the script)."""
    return f"{SEP}{_base36(timestamp_ms)}{SEP}{packed_visitor}{SEP}{event}{SEP}{value_text}"


def activity_entry(packed_visitor: str, timestamp_ms: int, event: str, value_text: str) -> str:
    return f"{_base36(timestamp_ms)}{SEP}{packed_visitor}{SEP}{event}{SEP}{value_text}"


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


def decode_log(packed: str) -> LogEntry:
    """An entry written by assign.lua (``x...``) or track.lua (``e...``)."""
    kind = packed[0]
    if kind == "x":
        variant, ts, visitor, *attributes = packed[1:].split(SEP, 3)
        return LogEntry(
            "exposure",
            int(variant),
            unpack_visitor(visitor),
            int(ts, 36),
            None,
            None,
            attributes[0] if attributes else "{}",
        )
    if kind == "e":
        variant, ts, visitor, event, value = packed[1:].split(SEP, 4)
        return LogEntry(
            "event", int(variant), unpack_visitor(visitor), int(ts, 36), event, value, None
        )
    raise ValueError(f"log entry must start with 'x' or 'e', got {packed[:8]!r}")


def decode_activity(packed: str) -> tuple[str, int, str, str]:
    """``(visitor_id, timestamp_ms, event, value)`` of an activity log entry."""
    ts, visitor, event, value = packed.split(SEP, 3)
    return unpack_visitor(visitor), int(ts, 36), event, value
