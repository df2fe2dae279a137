"""GrowthBook's SDKs as clients: the features payload they fetch and the client keys they use.

``GET /api/features/{client_key}`` answers what an unmodified GrowthBook SDK loads from its
``apiHost`` with its ``clientKey``: each experiment (drafts left out) as a feature whose key is
the experiment key and whose value is the variant key. A running experiment has one experiment
rule carrying its ``key``, ``seed``, ``hashAttribute``, ``hashVersion``, ``variations`` (the
variant keys), ``weights``, ``coverage``, ``condition``, ``namespace``, a ``filters`` entry for
a running holdout covering it (the holdout's seed and the range of everyone not held out) and
``meta`` (the variant keys again, so the SDK's tracking callback reports them), preceded by
one ``force`` rule per variant with QA-pinned visitors. A stopped experiment with a winner has
the winner as its default value; any other is ``null``. So the SDK answers what
``experiments.assignment.decide`` answers for the same visitor and attributes.

Client keys (``POST /v1/client-keys``, admin) are public and read-only: they grant this payload
and nothing else, and deleting one revokes it at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from experiments.definitions import Experiment, Status
from service.api.deps import Admin, Definitions, StoreDep

__all__ = [
    "ClientKeyCreated",
    "FeaturesPayload",
    "admin_router",
    "features_payload",
    "router",
]

router = APIRouter(tags=["growthbook"])
admin_router = APIRouter(prefix="/v1/client-keys", tags=["admin"], dependencies=[Admin])

FEATURES_MAX_AGE_SECONDS = 30


class _Camel(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class VariationMeta(_Camel):
    key: str
    name: str


class HashFilter(_Camel):
    seed: str
    ranges: list[tuple[float, float]]
    hash_version: int = Field(alias="hashVersion")
    attribute: str


class ForceRule(_Camel):
    id: str
    condition: dict[str, JsonValue]
    force: str


class ExperimentRule(_Camel):
    id: str
    key: str
    name: str
    seed: str
    hash_attribute: str = Field(alias="hashAttribute")
    hash_version: int = Field(alias="hashVersion")
    variations: list[str]
    weights: list[float]
    coverage: float
    condition: dict[str, JsonValue] | None = None
    namespace: tuple[str, float, float] | None = None
    filters: list[HashFilter] | None = None
    meta: list[VariationMeta]


class Feature(_Camel):
    default_value: str | None = Field(alias="defaultValue")
    rules: list[ForceRule | ExperimentRule]


class FeaturesPayload(_Camel):
    status: int = 200
    features: dict[str, Feature]
    date_updated: str = Field(alias="dateUpdated")


def _holdout_filter(experiment: Experiment, others: Mapping[str, Experiment]) -> HashFilter | None:
    holdout = others.get(experiment.holdout or "")
    if holdout is None or holdout.status is not Status.RUNNING:
        return None
    held_out_end = holdout.ranges[0][1]
    return HashFilter(
        seed=holdout.seed,
        ranges=[(held_out_end, 1.0)],
        hash_version=holdout.hash_version,
        attribute=holdout.hash_attribute,
    )


def _rules(
    experiment: Experiment, others: Mapping[str, Experiment]
) -> list[ForceRule | ExperimentRule]:
    rules: list[ForceRule | ExperimentRule] = []
    for variant in experiment.variant_keys:
        pinned = sorted(v for v, k in experiment.forced.items() if k == variant)
        if pinned:
            rules.append(
                ForceRule(
                    id=f"{experiment.key}-forced-{variant}",
                    condition={"id": {"$in": list[JsonValue](pinned)}},
                    force=variant,
                )
            )
    holdout = _holdout_filter(experiment, others) if experiment.holdout else None
    rules.append(
        ExperimentRule(
            id=experiment.key,
            key=experiment.key,
            name=experiment.name or experiment.key,
            seed=experiment.seed,
            hash_attribute=experiment.hash_attribute,
            hash_version=experiment.hash_version,
            variations=experiment.variant_keys,
            weights=[v.weight for v in experiment.variants],
            coverage=experiment.coverage,
            condition=experiment.condition or None,
            namespace=None if experiment.namespace is None else experiment.namespace.as_tuple(),
            filters=None if holdout is None else [holdout],
            meta=[VariationMeta(key=v.key, name=v.name or v.key) for v in experiment.variants],
        )
    )
    return rules


def features_payload(experiments: Mapping[str, Experiment], *, now: float) -> FeaturesPayload:
    """The GrowthBook SDK payload for ``experiments`` (see the module docstring)."""
    features: dict[str, Feature] = {}
    for key, experiment in sorted(experiments.items()):
        if experiment.status is Status.DRAFT:
            continue
        if experiment.status is Status.RUNNING:
            features[key] = Feature(default_value=None, rules=_rules(experiment, experiments))
        elif experiment.status is Status.STOPPED and experiment.winner is not None:
            features[key] = Feature(default_value=experiment.winner, rules=[])
        else:
            features[key] = Feature(default_value=None, rules=[])
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return FeaturesPayload(features=features, date_updated=stamp.replace("+00:00", "Z"))


def _unknown(client_key: str, what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"client key {client_key[:80]!r} {what}")


@router.get(
    "/api/features/{client_key}",
    response_model=FeaturesPayload,
    summary="GrowthBook SDK payload: every experiment as a feature",
)
async def features(client_key: str, store: StoreDep, definitions: Definitions) -> Response:
    if not await store.client_key_exists(client_key):
        raise _unknown(client_key, "does not exist or was revoked")
    payload = features_payload(await definitions.all(), now=time.time())
    return Response(
        payload.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={FEATURES_MAX_AGE_SECONDS}"},
    )


class ClientKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200, description="what the key is for")


class ClientKeyCreated(BaseModel):
    client_key: str
    name: str
    created_at: float


@admin_router.post(
    "", status_code=201, response_model=ClientKeyCreated, summary="Create a GrowthBook client key"
)
async def create_client_key(
    store: StoreDep, body: ClientKeyRequest | None = None
) -> ClientKeyCreated:
    key = await store.create_client_key(name="" if body is None else body.name, now=time.time())
    return ClientKeyCreated(client_key=key.client_key, name=key.name, created_at=key.created_at)


@admin_router.get("", response_model=list[ClientKeyCreated], summary="List client keys")
async def list_client_keys(store: StoreDep) -> list[ClientKeyCreated]:
    return [
        ClientKeyCreated(client_key=k.client_key, name=k.name, created_at=k.created_at)
        for k in await store.client_keys()
    ]


@admin_router.delete("/{client_key}", status_code=204, summary="Revoke a client key")
async def revoke_client_key(client_key: str, store: StoreDep) -> Response:
    if not await store.revoke_client_key(client_key):
        raise _unknown(client_key, "does not exist")
    return Response(status_code=204)
