"""Admin endpoints behind the API key: experiment definitions, lifecycle and results."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from experiments.definitions import (
    MAX_FORCED_VISITORS,
    Experiment,
    ExperimentPatch,
    ExperimentSpec,
    Status,
    apply_patch,
    transition,
)
from experiments.errors import InvalidDefinitionError
from experiments.exclusion import check_holdout, check_start
from experiments.limits import KEY_PATTERN, KEY_RULE
from experiments.store import Store
from service.api.deps import Admin, Definitions, StoreDep
from service.readout.build import build_results
from service.readout.model import ExperimentResults

__all__ = ["router"]

router = APIRouter(prefix="/v1/experiments", tags=["admin"], dependencies=[Admin])


@router.post("", status_code=201, response_model=Experiment, summary="Create an experiment")
async def create(spec: ExperimentSpec, store: StoreDep, definitions: Definitions) -> Experiment:
    experiment = Experiment.model_validate({**spec.model_dump(), "created_at": time.time()})
    if experiment.holdout is not None:
        check_holdout(experiment, (await store.definitions())[1])
    created = await store.create_experiment(experiment)
    definitions.invalidate()
    return created


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
    key: str, body: ExperimentPatch, store: StoreDep, definitions: Definitions
) -> Experiment:
    current = await store.get_experiment(key)
    updated = apply_patch(current, body)
    if body.status is not None and body.status is not current.status:
        updated = transition(updated, body.status, now=time.time(), winner=body.winner)
    elif body.winner is not None:
        raise InvalidDefinitionError(
            f"winner is set only together with status 'stopped', got winner {body.winner!r} "
            f"with status {current.status.value!r}"
        )
    await _write(store, current, updated)
    definitions.invalidate()
    return updated


async def _write(store: Store, current: Experiment, updated: Experiment) -> None:
    """Replace the definition; one going live is checked against all the others first, and
    written only if none changed meanwhile (so two starts cannot both take one range)."""
    if updated.status is Status.RUNNING and current.status is not Status.RUNNING:
        version, others = await store.definitions()
        check_start(updated, others)
        await store.replace_experiment(current, updated, expected_version=version)
    else:
        await store.replace_experiment(current, updated)


class ForcedVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(pattern=KEY_PATTERN, description=KEY_RULE)


@router.put(
    "/{key}/forced/{visitor_id}",
    response_model=Experiment,
    summary=f"Pin a visitor to a variant for QA (not recorded; at most {MAX_FORCED_VISITORS})",
)
async def force(
    key: str, visitor_id: str, body: ForcedVariant, store: StoreDep, definitions: Definitions
) -> Experiment:
    current = await store.get_experiment(key)
    if body.variant not in current.variant_keys:
        raise InvalidDefinitionError(
            f"variant must be one of {current.variant_keys}, got {body.variant!r}"
        )
    forced = {**current.forced, visitor_id: body.variant}
    updated = apply_patch(current, ExperimentPatch.model_construct(forced=forced))
    await store.replace_experiment(current, updated)
    definitions.invalidate()
    return updated


@router.delete(
    "/{key}/forced/{visitor_id}", response_model=Experiment, summary="Unpin a QA visitor"
)
async def unforce(
    key: str, visitor_id: str, store: StoreDep, definitions: Definitions
) -> Experiment:
    current = await store.get_experiment(key)
    forced = {v: k for v, k in current.forced.items() if v != visitor_id}
    updated = apply_patch(current, ExperimentPatch.model_construct(forced=forced))
    await store.replace_experiment(current, updated)
    definitions.invalidate()
    return updated


@router.delete("/{key}", status_code=204, summary="Delete an experiment and all its data")
async def delete(key: str, store: StoreDep, definitions: Definitions) -> Response:
    await store.delete_experiment(await store.get_experiment(key))
    definitions.invalidate()
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
