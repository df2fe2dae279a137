"""Experiment definitions: variants, metrics, lifecycle, and the rules that keep them valid.

A definition is validated once, at the edge, and is immutable afterwards: every change
(starting, ramping coverage, stopping) produces a new definition through a function here that
refuses what is not allowed, with a message naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from experiments.bucketing import BucketRange, bucket_ranges
from experiments.errors import ConflictError, InvalidDefinitionError
from experiments.limits import EVENT_NAME_PATTERN, EVENT_NAME_RULE, KEY_PATTERN, KEY_RULE

__all__ = [
    "Experiment",
    "ExperimentPatch",
    "ExperimentSpec",
    "Metric",
    "MetricKind",
    "Status",
    "Variant",
    "apply_patch",
    "transition",
]

Slug = Annotated[str, Field(pattern=KEY_PATTERN, description=KEY_RULE)]
EventName = Annotated[str, Field(pattern=EVENT_NAME_PATTERN, description=EVENT_NAME_RULE)]


class Status(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.RUNNING}),
    Status.RUNNING: frozenset({Status.PAUSED, Status.STOPPED}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.STOPPED}),
    Status.STOPPED: frozenset(),
}


class MetricKind(StrEnum):
    CONVERSION = "conversion"
    MEAN = "mean"
    COUNT = "count"
    RATIO = "ratio"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(_Frozen):
    key: Slug
    name: str = Field(default="", max_length=200)
    weight: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Metric(_Frozen):
    name: Slug
    kind: MetricKind
    event: EventName | None = None
    numerator: Slug | None = None
    denominator: Slug | None = None
    primary: bool = False

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        if self.kind is MetricKind.RATIO:
            if self.numerator is None or self.denominator is None:
                raise ValueError(
                    f"metric {self.name!r}: a ratio metric needs 'numerator' and 'denominator' "
                    "naming two other metrics of this experiment"
                )
            if self.event is not None:
                raise ValueError(f"metric {self.name!r}: a ratio metric takes no 'event'")
        else:
            if self.event is None:
                raise ValueError(
                    f"metric {self.name!r}: a {self.kind.value} metric needs an 'event'"
                )
            if self.numerator is not None or self.denominator is not None:
                raise ValueError(
                    f"metric {self.name!r}: only ratio metrics take 'numerator'/'denominator'"
                )
        return self


class ExperimentSpec(_Frozen):
    """What a person writes to create an experiment."""

    key: Slug
    name: str = Field(default="", max_length=200)
    hypothesis: str = Field(default="", max_length=2000)
    variants: list[Variant] = Field(min_length=2, max_length=20)
    coverage: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: str = Field(default="", max_length=200, description="defaults to the key")
    hash_version: Literal[1, 2] = 2
    metrics: list[Metric] = Field(default_factory=list, max_length=50)
    shards: int = Field(
        default=64,
        ge=1,
        le=256,
        description="hash-tagged shards (cluster slots) the experiment's state is spread over",
    )
    slices: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="visitor slices per shard; keep visitors / (shards x slices) under the "
        "server's hash-max-listpack-entries (128 by default) so each slice stays compact",
    )
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    minimum_detectable_effect: float = Field(
        default=0.1, gt=0.0, le=10.0, description="relative, for the planned sample size"
    )
    allocation: Literal["fixed", "bandit"] = Field(
        default="fixed",
        description="'bandit': Thompson sampling on the primary conversion metric re-weights "
        "the variants once per bandit_period_seconds (visitors keep their first variant)",
    )
    bandit_period_seconds: int = Field(default=86_400, ge=60, le=90 * 86_400)
    bandit_floor: float = Field(
        default=0.01, ge=0.0, le=0.5, description="the least weight a bandit gives any variant"
    )

    @model_validator(mode="after")
    def _bandit_reads_a_conversion(self) -> Self:
        if self.allocation == "bandit":
            primary = next((m for m in self.metrics if m.primary), None)
            if primary is None or primary.kind is not MetricKind.CONVERSION:
                got = "none" if primary is None else f"{primary.name!r} ({primary.kind.value})"
                raise ValueError(
                    f"allocation 'bandit' needs a primary metric of kind 'conversion', got {got}"
                )
            if self.bandit_floor * len(self.variants) > 1.0:
                raise ValueError(
                    f"bandit_floor must be at most 1/{len(self.variants)} for "
                    f"{len(self.variants)} variants, got {self.bandit_floor}"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _seed_defaults_to_key(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("seed") and isinstance(data.get("key"), str):
            data = {**data, "seed": data["key"]}
        return data

    @field_validator("variants")
    @classmethod
    def _weights_sum_to_one(cls, variants: list[Variant]) -> list[Variant]:
        keys = [v.key for v in variants]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"variant keys must be unique, got duplicates {duplicates}")
        total = math.fsum(v.weight for v in variants)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"variant weights must sum to 1, got {total:.6g} ({keys})")
        return variants

    @model_validator(mode="after")
    def _metrics_consistent(self) -> Self:
        names = [m.name for m in self.metrics]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"metrics: names must be unique, got duplicates {duplicates}")
        if self.metrics:
            primaries = [m.name for m in self.metrics if m.primary]
            if len(primaries) != 1:
                raise ValueError(
                    f"metrics: exactly one must be primary, got {len(primaries)} ({primaries})"
                )
        by_name = {m.name: m for m in self.metrics}
        for metric in self.metrics:
            if metric.kind is not MetricKind.RATIO:
                continue
            for part in (metric.numerator, metric.denominator):
                other = by_name.get(part or "")
                if other is None:
                    raise ValueError(
                        f"metrics.{metric.name}: ratio names unknown metric {part!r}; "
                        f"allowed: {sorted(by_name)}"
                    )
                if other.kind is MetricKind.RATIO:
                    raise ValueError(
                        f"metrics.{metric.name}: ratio part {part!r} must not itself be a ratio"
                    )
        return self


class Experiment(ExperimentSpec):
    """A stored experiment: the spec plus its lifecycle state."""

    status: Status = Status.DRAFT
    winner: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    generation: int = Field(
        default=0,
        ge=0,
        description="set by the store when the experiment is created: a re-created experiment "
        "gets a new one, so it never sees an older one's data",
    )

    @model_validator(mode="after")
    def _winner_is_a_variant(self) -> Self:
        if self.winner is not None and self.winner not in {v.key for v in self.variants}:
            raise ValueError(
                f"winner must be one of the variant keys {[v.key for v in self.variants]}, "
                f"got {self.winner!r}"
            )
        return self

    # Derived values used on the hot path. The model is frozen, so caching is safe.
    @property
    def ranges(self) -> list[BucketRange]:
        cached: list[BucketRange] | None = self.__dict__.get("_ranges")
        if cached is None:
            cached = bucket_ranges(
                len(self.variants), self.coverage, [v.weight for v in self.variants]
            )
            self.__dict__["_ranges"] = cached
        return cached

    @property
    def variant_keys(self) -> list[str]:
        return [v.key for v in self.variants]

    def events(self) -> set[str]:
        """The event names any metric of this experiment reads."""
        return {m.event for m in self.metrics if m.event is not None}

    def primary_metric(self) -> Metric | None:
        return next((m for m in self.metrics if m.primary), None)


class ExperimentPatch(_Frozen):
    """The fields that may change after creation; ``None`` leaves a field as it is."""

    name: str | None = Field(default=None, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=2000)
    coverage: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    variants: list[Variant] | None = None
    metrics: list[Metric] | None = None
    confidence_level: float | None = Field(default=None, gt=0.5, lt=1.0)
    minimum_detectable_effect: float | None = Field(default=None, gt=0.0, le=10.0)
    status: Status | None = None
    winner: str | None = None


def apply_patch(experiment: Experiment, patch: ExperimentPatch) -> Experiment:
    """A new definition with ``patch`` applied; refuses changes that would re-bucket visitors.

    Once an experiment has left draft, its variants (keys, order, weights), seed and hash
    version are fixed: changing them would move visitors between variants mid-test. Coverage may
    be ramped, since ranges grow in place. Metrics may be added, not removed or redefined.
    """
    changes = patch.model_dump(exclude_none=True, exclude={"status", "winner"})
    if experiment.status is not Status.DRAFT:
        if "variants" in changes and patch.variants != experiment.variants:
            raise ConflictError(
                f"variants of experiment {experiment.key!r} cannot change while it is "
                f"{experiment.status.value}; allowed only in draft (create a new experiment "
                "or a new seed to re-randomise)"
            )
        if patch.metrics is not None:
            old = {m.name: m for m in experiment.metrics}
            new = {m.name: m for m in patch.metrics}
            changed = sorted(n for n in old if new.get(n) != old[n])
            if changed:
                raise ConflictError(
                    f"metrics {changed} of experiment {experiment.key!r} cannot be removed or "
                    f"redefined while it is {experiment.status.value}; "
                    "only new metrics may be added"
                )
    data = experiment.model_dump()
    data.update(changes)
    return _revalidate(data)


def transition(
    experiment: Experiment, target: Status, *, now: float, winner: str | None = None
) -> Experiment:
    """The definition moved to ``target`` at time ``now`` (seconds since the epoch)."""
    if target not in ALLOWED_TRANSITIONS[experiment.status]:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[experiment.status]) or ["none"]
        raise ConflictError(
            f"status cannot go from {experiment.status.value!r} to {target.value!r}; "
            f"allowed: {allowed}"
        )
    if winner is not None and target is not Status.STOPPED:
        raise InvalidDefinitionError(f"winner is set only when stopping, got status {target!r}")
    data = experiment.model_dump()
    data["status"] = target
    if target is Status.RUNNING and experiment.started_at is None:
        data["started_at"] = now
    if target is Status.STOPPED:
        data["stopped_at"] = now
        data["winner"] = winner
    return _revalidate(data)


def _revalidate(data: dict[str, object]) -> Experiment:
    from pydantic import ValidationError

    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise InvalidDefinitionError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: Exception) -> str:
    """One line per problem: ``field: message (got value)``."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        got = err.get("input")
        shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
        parts.append(f"{loc}: {err['msg']} (got {shown[:80]})")
    return "; ".join(parts)
