"""Admin endpoints behind the API key: experiment definitions, lifecycle and results."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from experiments.definitions import MAX_FORCED_VISITORS, Experiment, ExperimentPatch, ExperimentSpec
from experiments.errors import InvalidDefinitionError
from experiments.limits import KEY_PATTERN, KEY_RULE
from experiments.store import Store
from service import changes
from service.api.deps import Actor, Admin, Definitions, StoreDep
from service.readout.build import build_results
from service.readout.model import ExperimentResults

__all__ = ["router"]

router = APIRouter(prefix="/v1/experiments", tags=["admin"], dependencies=[Admin])


@router.post("", status_code=201, response_model=Experiment, summary="Create an experiment")
async def create(
    spec: ExperimentSpec, store: StoreDep, definitions: Definitions, actor: Actor
) -> Experiment:
    return await changes.create(store, definitions, spec, actor)


@router.get("", response_model=list[Experiment], summary="List experiments")
async def list_all(store: StoreDep) -> list[Experiment]:
    _, experiments = await store.definitions()
    return sorted(experiments.values(), key=lambda e: (e.created_at or 0, e.key))


@router.get("/{key}", response_model=Experiment, summary="One experiment's definition")
async def get_one(key: str, store: StoreDep) -> Experiment:
    return await store.get_experiment(key)


@router.patch(
    "/{key}",
    response_model=Experiment,
    summary="Change a definition or its status (draft -> running -> paused -> stopped)",
)
async def patch(
    key: str, body: ExperimentPatch, store: StoreDep, definitions: Definitions, actor: Actor
) -> Experiment:
    return await changes.patch(store, definitions, key, body, actor)


class ForcedVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(pattern=KEY_PATTERN, description=KEY_RULE)


@router.put(
    "/{key}/forced/{visitor_id}",
    response_model=Experiment,
    summary=f"Pin a visitor to a variant for QA (not recorded; at most {MAX_FORCED_VISITORS})",
)
async def force(
    key: str,
    visitor_id: str,
    body: ForcedVariant,
    store: StoreDep,
    definitions: Definitions,
    actor: Actor,
) -> Experiment:
    return await changes.force(store, definitions, key, visitor_id, body.variant, actor)


@router.delete(
    "/{key}/forced/{visitor_id}", response_model=Experiment, summary="Unpin a QA visitor"
)
async def unforce(
    key: str, visitor_id: str, store: StoreDep, definitions: Definitions, actor: Actor
) -> Experiment:
    return await changes.unforce(store, definitions, key, visitor_id, actor)


@router.delete("/{key}", status_code=204, summary="Delete an experiment and all its data")
async def delete(key: str, store: StoreDep, definitions: Definitions, actor: Actor) -> Response:
    await changes.delete(store, definitions, key, actor)
    return Response(status_code=204)


@router.get("/{key}/results", response_model=ExperimentResults, summary="The statistical read-out")
async def results(
    key: str,
    store: StoreDep,
    dimension: Annotated[
        str | None,
        Query(description="one of the experiment's dimensions: adds the per-slice comparison"),
    ] = None,
) -> ExperimentResults:
    experiment = await store.get_experiment(key)
    return await read_out(store, experiment, dimension)


async def read_out(
    store: Store, experiment: Experiment, dimension: str | None = None
) -> ExperimentResults:
    """The read-out of ``experiment`` (with the breakdown by ``dimension`` when given)."""
    breakdown = None
    if dimension is not None:
        names = [d.name for d in experiment.dimensions]
        if dimension not in names:
            raise InvalidDefinitionError(
                f"dimension: {dimension!r} is not a dimension of experiment "
                f"{experiment.key!r}; allowed: {names or 'none (the experiment declares none)'}"
            )
        breakdown = (dimension, await store.dimension_totals(experiment, dimension))
    totals = await store.totals(experiment)
    daily = await store.daily_totals(experiment)
    return await run_in_threadpool(
        partial(build_results, breakdown=breakdown), experiment, totals, daily, time.time()
    )
