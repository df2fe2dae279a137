"""The Lua scripts of the store and their KEYS/ARGV layout, declared once.

Each script's header names its KEYS and ARGV in order (``-- KEYS: ...`` and ``-- ARGV: ...``,
a trailing ``...`` marking a variable tail); the tuples below are the same layout in Python, and
``tests/experiments/test_store.py`` checks that the two agree. A call is built by filling the
tuple, so a key or argument cannot land in the wrong position unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import NamedTuple

__all__ = [
    "ACCESS",
    "ACTIVITY",
    "ASSIGN",
    "ATTEMPT",
    "BANDIT_PERIOD",
    "DEDUP_PARTS",
    "DIMENSION",
    "EXPOSED",
    "PUT_DEFINITION",
    "SCRIPTS",
    "SECRET",
    "SESSION",
    "TRACK",
    "AccessArgs",
    "AccessKeys",
    "ActivityArgs",
    "ActivityKeys",
    "AssignArgs",
    "AssignKeys",
    "AttemptArgs",
    "AttemptKeys",
    "BanditPeriodArgs",
    "BanditPeriodKeys",
    "DimensionArgs",
    "DimensionKeys",
    "EventIdKeys",
    "PutDefinitionArgs",
    "PutDefinitionKeys",
    "ScriptSpec",
    "SecretArgs",
    "SecretKeys",
    "SessionArgs",
    "SessionKeys",
    "TrackArgs",
    "TrackEventArgs",
    "TrackEventKeys",
    "TrackKeys",
]

DEDUP_PARTS = 4
"""The dedup window is cut into this many parts; a script reads the current part and the
``DEDUP_PARTS`` before it (five ``ids`` keys), so an id is remembered for at least the window
and at most ``1 + 1 / DEDUP_PARTS`` times it."""


class AssignKeys(NamedTuple):
    assign: str
    agg: str
    day: str
    days: str
    log: str


class AssignArgs(NamedTuple):
    visitor: str
    variant: int
    assignment: int
    day: str
    log_max_length: int
    log_entry: str
    slices: str


class DimensionKeys(NamedTuple):
    registry: str


class DimensionArgs(NamedTuple):
    dimension: int
    value: str
    max_values: int


class TrackKeys(NamedTuple):
    agg: str
    days: str
    log: str


class TrackArgs(NamedTuple):
    log_max_length: int
    expire_at_ms: int
    dimensions: int


class TrackEventKeys(NamedTuple):
    """The KEYS of one event of a track call (after the shard's dimension aggregates); the
    state slices of the plan's other events follow, then, for an event with an id, its
    :class:`EventIdKeys`."""

    assign: str
    day: str
    state: str


class EventIdKeys(NamedTuple):
    """The visitor's slice of the event-id window parts, newest first (the first is written,
    all are read): KEYS of an event with an id, in track.lua and activity.lua."""

    ids0: str
    ids1: str
    ids2: str
    ids3: str
    ids4: str


class TrackEventArgs(NamedTuple):
    """The ARGV of one event of a track call (after the plans)."""

    plan: int
    visitor: str
    value: str
    timestamp_ms: int
    day: str
    event_id: str
    log_entry: str


class ActivityKeys(NamedTuple):
    log: str


class ActivityArgs(NamedTuple):
    expire_at_ms: int
    log_max_length: int


class PutDefinitionKeys(NamedTuple):
    definitions: str
    audit: str
    audit_all: str


class PutDefinitionArgs(NamedTuple):
    key: str
    expected_json: str
    expected_generation: int
    new_json: str
    generation_field: str
    deleted_prefix: str
    expected_version: str = ""
    audit_entry: str = ""
    audit_max: int = 0
    audit_all_max: int = 0


class AccessKeys(NamedTuple):
    records: str
    audit: str
    audit_all: str


class AccessArgs(NamedTuple):
    op: str
    id: str
    record_json: str
    audit_entry: str
    audit_max: int
    audit_all_max: int


class SecretKeys(NamedTuple):
    secret: str


class SecretArgs(NamedTuple):
    candidate: str


class SessionKeys(NamedTuple):
    session: str
    epoch: str


class SessionArgs(NamedTuple):
    op: str
    ttl_ms: int


class AttemptKeys(NamedTuple):
    counter: str


class AttemptArgs(NamedTuple):
    window_ms: int


class BanditPeriodKeys(NamedTuple):
    definitions: str
    audit: str
    audit_all: str


class BanditPeriodArgs(NamedTuple):
    key: str
    expected_json: str
    expected_generation: int
    new_json: str
    generation_field: str
    history_field: str
    expected_history: str
    new_history: str
    audit_entry: str = ""
    audit_max: int = 0
    audit_all_max: int = 0


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """One script: its file, its KEYS and ARGV names in order, and the names of variable tails."""

    file: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    extra_keys: str | None = None
    extra_args: str | None = None

    @property
    def source(self) -> str:
        return files("experiments").joinpath("lua", self.file).read_text()

    def layout(self) -> tuple[list[str], list[str]]:
        """The KEYS and ARGV names in order, a variable tail written ``name...``."""
        keys, args = list(self.keys), list(self.args)
        if self.extra_keys:
            keys.append(self.extra_keys + "...")
        if self.extra_args:
            args.append(self.extra_args + "...")
        return keys, args


ASSIGN = ScriptSpec("assign.lua", AssignKeys._fields, AssignArgs._fields, "dimension_aggs")
TRACK = ScriptSpec("track.lua", TrackKeys._fields, TrackArgs._fields, "more_keys", "plans")
EXPOSED = ScriptSpec("exposed.lua", (), (), "assign", "visitor")
DIMENSION = ScriptSpec("dimension.lua", DimensionKeys._fields, DimensionArgs._fields)
ACTIVITY = ScriptSpec(
    "activity.lua", ActivityKeys._fields, ActivityArgs._fields, "event_ids", "events"
)
PUT_DEFINITION = ScriptSpec(
    "put_definition.lua", PutDefinitionKeys._fields, PutDefinitionArgs._fields
)
SESSION = ScriptSpec("session.lua", SessionKeys._fields, SessionArgs._fields)
ATTEMPT = ScriptSpec("attempt.lua", AttemptKeys._fields, AttemptArgs._fields)
BANDIT_PERIOD = ScriptSpec("bandit_period.lua", BanditPeriodKeys._fields, BanditPeriodArgs._fields)
ACCESS = ScriptSpec("access.lua", AccessKeys._fields, AccessArgs._fields)
SECRET = ScriptSpec("secret.lua", SecretKeys._fields, SecretArgs._fields)
SCRIPTS = (
    *(ASSIGN, TRACK, EXPOSED, ACTIVITY, PUT_DEFINITION, DIMENSION, SESSION, ATTEMPT, BANDIT_PERIOD),
    *(ACCESS, SECRET),
)

TRACK_STATE_OFFSET = TrackEventKeys._fields.index("state")
"""Where an event's state slice sits among its keys (counted from its assign key)."""
TRACK_OTHERS_OFFSET = len(TrackEventKeys._fields)
"""Where the state slices of other events (read by ratio metrics) follow an event's keys."""
