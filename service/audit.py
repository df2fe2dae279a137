"""Audit entries made from a request's principal: who (name, role, key id), when, what.

The entries themselves, and which action a definition change is, are in
:mod:`experiments.audit`; this module only fills in the actor and the time.
"""

from __future__ import annotations

import time

from pydantic import JsonValue

from experiments.audit import Action, AuditActor, AuditEntry, definition_change
from experiments.definitions import Experiment
from service.api.principal import Principal

__all__ = ["BANDIT_LOOP", "actor_of", "definition_entry", "entry"]

BANDIT_LOOP = AuditActor(name="bandit loop", role="system", key_id=None)
"""Who re-weights a bandit whose period is over when no one asked."""


def actor_of(principal: Principal | AuditActor) -> AuditActor:
    if isinstance(principal, AuditActor):
        return principal
    return AuditActor(name=principal.name, role=principal.role.value, key_id=principal.key_id)


def entry(
    principal: Principal | AuditActor,
    action: Action,
    *,
    experiment: str | None = None,
    target: str | None = None,
    before: dict[str, JsonValue] | None = None,
    after: dict[str, JsonValue] | None = None,
) -> AuditEntry:
    """An entry of ``action`` by ``principal``, made now."""
    return AuditEntry(
        at=time.time(),
        actor=actor_of(principal),
        action=action,
        experiment=experiment,
        target=target,
        before=before,
        after=after,
    )


def definition_entry(
    principal: Principal | AuditActor,
    old: Experiment | None,
    new: Experiment | None,
    *,
    action: Action | None = None,
) -> AuditEntry:
    """The entry of a definition going from ``old`` to ``new`` (either may be None), named
    ``action`` or else as :func:`experiments.audit.definition_change` names it."""
    named, before, after = definition_change(old, new)
    action = action or named
    either = new or old
    key = None if either is None else either.key
    return entry(principal, action, experiment=key, before=before, after=after)
