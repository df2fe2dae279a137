"""The audit trail over HTTP: one experiment's changes (any role) and the workspace's (admins).

Entries are newest first. An experiment's trail outlives the experiment: after a delete it
still tells who deleted it and what it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from experiments.audit import AUDIT_MAX_ENTRIES, EXPERIMENT_AUDIT_MAX_ENTRIES, AuditEntry
from service.api.deps import AdminOnly, StoreDep, Viewer

__all__ = ["router"]

router = APIRouter(tags=["audit"])


@router.get(
    "/v1/experiments/{key}/audit",
    response_model=list[AuditEntry],
    summary="Who changed an experiment, when, and from what to what (newest first)",
)
async def experiment_audit(
    key: str,
    store: StoreDep,
    actor: Viewer,
    limit: Annotated[int, Query(ge=1, le=EXPERIMENT_AUDIT_MAX_ENTRIES)] = 100,
) -> list[AuditEntry]:
    entries = await store.audit_entries(key, limit=limit)
    if not entries:
        await store.get_experiment(key)  # 404 for a key that never had an experiment
    return entries


@router.get(
    "/v1/audit",
    response_model=list[AuditEntry],
    summary="Every change in the workspace: experiments, keys, share links (newest first)",
)
async def workspace_audit(
    store: StoreDep,
    actor: AdminOnly,
    limit: Annotated[int, Query(ge=1, le=AUDIT_MAX_ENTRIES)] = 100,
) -> list[AuditEntry]:
    return await store.audit_entries(limit=limit)
