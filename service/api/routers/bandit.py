"""Bandit endpoints behind the API key: a bandit's periods and read-out, and its step."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query

from service import bandit
from service.api.deps import Actor, Admin, Definitions, StoreDep

__all__ = ["router"]

router = APIRouter(prefix="/v1/experiments", tags=["bandit"], dependencies=[Admin])


@router.get(
    "/{key}/bandit",
    response_model=bandit.BanditReport,
    summary="A bandit's periods (weights, visitors, conversions) and period-weighted read-out",
)
async def report(key: str, store: StoreDep) -> bandit.BanditReport:
    return await bandit.readout(store, key)


@router.post(
    "/{key}/bandit/step",
    response_model=bandit.BanditReport,
    summary="Close a bandit's period if it is over (or with force) and re-weight its variants",
)
async def step(
    key: str,
    store: StoreDep,
    definitions: Definitions,
    actor: Actor,
    force: bool = Query(default=False, description="close the period even if it is not over"),
) -> bandit.BanditReport:
    result = await bandit.step(store, key, time.time(), force=force, actor=actor)
    if result.stepped:
        definitions.invalidate()
    return result
