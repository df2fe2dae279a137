"""Every change to an experiment, whoever asks for it: the admin API, the page forms, the CLI.

Each function checks the change with the rules of :mod:`experiments.definitions` (the same
messages whichever door it came through), writes it, and drops the cached definitions so the
assignment path sees it. ``actor`` is who asked (:class:`service.api.principal.Principal`):
each change is written together with its audit entry (:mod:`service.audit`), in one script.
"""

from __future__ import annotations

import time

from experiments.definitions import (
    Experiment,
    ExperimentPatch,
    ExperimentSpec,
    Status,
    apply_patch,
    transition,
)
from experiments.errors import InvalidDefinitionError
from experiments.exclusion import check_holdout, check_start
from experiments.store import Store
from service.api.definitions_cache import DefinitionCache
from service.api.principal import Principal
from service.audit import definition_entry

__all__ = ["create", "delete", "force", "patch", "unforce"]


async def create(
    store: Store, definitions: DefinitionCache, spec: ExperimentSpec, actor: Principal
) -> Experiment:
    """Create a draft from ``spec``."""
    experiment = Experiment.model_validate({**spec.model_dump(), "created_at": time.time()})
    if experiment.holdout is not None:
        check_holdout(experiment, (await store.definitions())[1])
    created = await store.create_experiment(
        experiment, audit=definition_entry(actor, None, experiment)
    )
    definitions.invalidate()
    return created


async def patch(
    store: Store, definitions: DefinitionCache, key: str, body: ExperimentPatch, actor: Principal
) -> Experiment:
    """Change fields and/or the status of experiment ``key``."""
    current = await store.get_experiment(key)
    updated = apply_patch(current, body)
    if body.status is not None and body.status is not current.status:
        updated = transition(updated, body.status, now=time.time(), winner=body.winner)
    elif body.winner is not None:
        raise InvalidDefinitionError(
            f"winner is set only together with status 'stopped', got winner {body.winner!r} "
            f"with status {current.status.value!r}"
        )
    await _write(store, current, updated, actor)
    definitions.invalidate()
    return updated


async def _write(store: Store, current: Experiment, updated: Experiment, actor: Principal) -> None:
    """Replace the definition; one going live is checked against all the others first, and
    written only if none changed meanwhile (so two starts cannot both take one range)."""
    audit = definition_entry(actor, current, updated)
    if updated.status is Status.RUNNING and current.status is not Status.RUNNING:
        version, others = await store.definitions()
        check_start(updated, others)
        await store.replace_experiment(current, updated, expected_version=version, audit=audit)
    else:
        await store.replace_experiment(current, updated, audit=audit)


async def force(
    store: Store,
    definitions: DefinitionCache,
    key: str,
    visitor_id: str,
    variant: str,
    actor: Principal,
) -> Experiment:
    """Pin ``visitor_id`` to ``variant`` for QA."""
    current = await store.get_experiment(key)
    if variant not in current.variant_keys:
        raise InvalidDefinitionError(
            f"variant must be one of {current.variant_keys}, got {variant!r}"
        )
    forced = {**current.forced, visitor_id: variant}
    updated = apply_patch(current, ExperimentPatch.model_construct(forced=forced))
    await _write(store, current, updated, actor)
    definitions.invalidate()
    return updated


async def unforce(
    store: Store, definitions: DefinitionCache, key: str, visitor_id: str, actor: Principal
) -> Experiment:
    """Remove the QA pin of ``visitor_id``."""
    current = await store.get_experiment(key)
    forced = {v: k for v, k in current.forced.items() if v != visitor_id}
    updated = apply_patch(current, ExperimentPatch.model_construct(forced=forced))
    await _write(store, current, updated, actor)
    definitions.invalidate()
    return updated


async def delete(store: Store, definitions: DefinitionCache, key: str, actor: Principal) -> None:
    """Delete experiment ``key`` and all its data."""
    current = await store.get_experiment(key)
    await store.delete_experiment(current, audit=definition_entry(actor, current, None))
    definitions.invalidate()
