"""The audit trail's entries: who changed what, when, from what to what.

An entry is written in the same script as the change it records (see
:mod:`experiments.store.definitions` and :mod:`experiments.store.access`), so a change is
never kept without its entry nor an entry without its change. What an entry holds is decided
here, from values: :func:`definition_change` names the action a new definition is (``start``,
``ramp``, ``stop``, ...) and keeps only the fields that differ.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from experiments.definitions import Experiment, Status

__all__ = [
    "AUDIT_MAX_ENTRIES",
    "EXPERIMENT_AUDIT_MAX_ENTRIES",
    "Action",
    "AuditActor",
    "AuditEntry",
    "definition_change",
]

EXPERIMENT_AUDIT_MAX_ENTRIES = 500
"""Entries kept per experiment key (the oldest are dropped past this)."""
AUDIT_MAX_ENTRIES = 5000
"""Entries kept in the workspace's trail (every experiment, key and share link)."""

Action = Literal[
    "create",
    "edit",
    "start",
    "pause",
    "resume",
    "ramp",
    "reweight",
    "stop",
    "archive",
    "unarchive",
    "force",
    "unforce",
    "delete",
    "key.create",
    "key.revoke",
    "share_link.create",
    "share_link.revoke",
]

_LIFECYCLE: dict[tuple[Status, Status], Action] = {
    (Status.DRAFT, Status.RUNNING): "start",
    (Status.RUNNING, Status.PAUSED): "pause",
    (Status.PAUSED, Status.RUNNING): "resume",
    (Status.DRAFT, Status.STOPPED): "stop",
    (Status.RUNNING, Status.STOPPED): "stop",
    (Status.PAUSED, Status.STOPPED): "stop",
}

_UNTRACKED = {"generation"}


class AuditActor(BaseModel):
    """Who made a change: the key's name and role, and its id (none for the open service and
    for the service itself, role ``system``: the bandit loop re-weighting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: Literal["viewer", "editor", "admin", "system"]
    key_id: str | None


class AuditEntry(BaseModel):
    """One change. ``before`` and ``after`` hold the fields that changed (the whole definition
    for a create or a delete, the record for a key or share link); ``null`` where there was
    nothing before or is nothing after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(description="when, in seconds since the epoch (UTC)")
    actor: AuditActor
    action: Action
    experiment: str | None = Field(description="the experiment key, when the change is to one")
    target: str | None = Field(
        default=None, description="the API key id or share link id a change is to"
    )
    before: dict[str, JsonValue] | None
    after: dict[str, JsonValue] | None


def _fields(experiment: Experiment) -> dict[str, JsonValue]:
    data: dict[str, JsonValue] = experiment.model_dump(mode="json", exclude=_UNTRACKED)
    return data


def definition_change(
    old: Experiment | None, new: Experiment | None
) -> tuple[Action, dict[str, JsonValue] | None, dict[str, JsonValue] | None]:
    """The action that turns ``old`` into ``new`` and the fields it changed, before and after.

    No ``old`` is a create, no ``new`` a delete (both keep the whole definition). A status
    move names the lifecycle step; otherwise a change of ``archived`` archives, of the QA pins
    alone forces or unforces, of the coverage alone ramps, and anything else edits (a bandit's
    step names itself ``reweight``: see :mod:`service.bandit`).
    """
    if old is None:
        if new is None:
            raise ValueError("definition_change needs an old or a new definition, got neither")
        return "create", None, _fields(new)
    if new is None:
        return "delete", _fields(old), None
    before, after = _fields(old), _fields(new)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    before_changed = {k: before.get(k) for k in changed}
    after_changed = {k: after.get(k) for k in changed}
    action: Action = "edit"
    if old.status is not new.status:
        action = _LIFECYCLE.get((old.status, new.status), "edit")
    elif "archived" in changed:
        action = "archive" if after.get("archived") else "unarchive"
    elif changed == ["forced"]:
        action = "force" if len(new.forced) > len(old.forced) else "unforce"
    elif changed == ["coverage"]:
        action = "ramp"
    return action, before_changed, after_changed
