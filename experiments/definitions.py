"""Experiment definitions: variants, metrics, lifecycle, and the rules that keep them valid.

A definition is validated once, at the edge, and is immutable afterwards: every change
(starting, ramping coverage, stopping) produces a new definition through a function here that
refuses what is not allowed, with a message naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from experiments.bucketing import BucketRange, bucket_ranges
from experiments.conditions import check_condition
from experiments.errors import ConflictError, InvalidDefinitionError
from experiments.limits import EVENT_NAME_PATTERN, EVENT_NAME_RULE, KEY_PATTERN, KEY_RULE

__all__ = [
    "ARCHIVABLE",
    "MAX_FORCED_VISITORS",
    "ConversionPrior",
    "Dimension",
    "Direction",
    "Experiment",
    "ExperimentKind",
    "ExperimentPatch",
    "ExperimentSpec",
    "Metric",
    "MetricKind",
    "Namespace",
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


class Direction(StrEnum):
    """Which way a metric is better: up (revenue) or down (refunds, load time)."""

    HIGHER = "higher"
    LOWER = "lower"


MAX_DIMENSIONS = 5
DEFAULT_DIMENSION_VALUES = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- targeting, mutual exclusion, holdouts, QA forcing ----------------------------------------

MAX_FORCED_VISITORS = 100
"""How many visitors one experiment may pin to a variant (QA forcing travels with the
definition, so every worker applies it without a store read)."""

AttributeName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_$][A-Za-z0-9_.$-]{0,63}$")
]


class ExperimentKind(StrEnum):
    EXPERIMENT = "experiment"
    HOLDOUT = "holdout"
    """Two variants, the held-out share first: its visitors are kept out of every experiment
    naming it as ``holdout``, and its report compares them with everyone else."""


class Namespace(_Frozen):
    """A range of a namespace's hash (GrowthBook's ``namespace: [id, start, end]``)."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    start: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    end: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if not self.start < self.end:
            raise ValueError(
                f"namespace {self.id!r}: start must be below end, got [{self.start}, {self.end})"
            )
        return self

    def overlaps(self, other: Namespace) -> bool:
        return self.id == other.id and self.start < other.end and other.start < self.end

    def as_tuple(self) -> tuple[str, float, float]:
        return (self.id, self.start, self.end)


def _checked_condition(condition: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    if condition is not None:
        check_condition(condition)
    return condition


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
    direction: Direction = Field(
        default=Direction.HIGHER, description="which way is better: 'higher' or 'lower'"
    )
    guardrail: bool = Field(
        default=False, description="a metric that must not get worse, shown in its own section"
    )
    non_inferiority_margin: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="guardrails only: the relative harm tolerated (0.02 = 2%); the guardrail "
        "is flagged when its interval cannot rule out a larger harm",
    )
    cap: float | None = Field(
        default=None,
        gt=0.0,
        allow_inf_nan=False,
        description="mean and count metrics: each visitor's total counts at most this much",
    )
    unit: str | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="shown with the values: a currency symbol (£, $, €) before them, "
        "anything else (orders, s) after them",
    )

    @model_validator(mode="after")
    def _extras_match_kind(self) -> Self:
        if self.non_inferiority_margin is not None and not self.guardrail:
            raise ValueError(
                f"metric {self.name!r}: non_inferiority_margin is for guardrails; "
                "set 'guardrail': true or drop the margin"
            )
        if self.cap is not None and self.kind not in {MetricKind.MEAN, MetricKind.COUNT}:
            raise ValueError(
                f"metric {self.name!r}: cap applies to mean and count metrics, got kind "
                f"{self.kind.value!r} (a ratio is capped through the caps of its two parts)"
            )
        if self.primary and self.guardrail:
            raise ValueError(f"metric {self.name!r}: the primary metric cannot be a guardrail")
        return self

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


class ConversionPrior(_Frozen):
    """Beta(a, b) prior of every variant's conversion rate in the Bayesian read-out."""

    a: float = Field(gt=0.0, le=1e9, allow_inf_nan=False)
    b: float = Field(gt=0.0, le=1e9, allow_inf_nan=False)


class Dimension(_Frozen):
    """An attribute given at assignment whose values the results can be broken down by."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    max_values: int = Field(
        default=DEFAULT_DIMENSION_VALUES,
        ge=1,
        le=50,
        description="the first this many distinct values get a slice each; later ones: 'other'",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data


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
    prior: ConversionPrior | None = Field(
        default=None,
        description="Beta prior of conversion rates for the chance to beat control; "
        "None means Beta(1, 1)",
    )
    dimensions: list[Dimension] = Field(
        default_factory=list,
        max_length=MAX_DIMENSIONS,
        description="attributes given at assignment to break results down by (at most 5)",
    )
    # targeting, mutual exclusion, holdouts, QA forcing
    kind: ExperimentKind = ExperimentKind.EXPERIMENT
    condition: dict[str, JsonValue] | None = Field(
        default=None, description="who may enter, in GrowthBook's condition syntax"
    )
    hash_attribute: AttributeName = Field(
        default="id", description="the attribute hashed for bucketing; `id` is the visitor id"
    )
    namespace: Namespace | None = None
    holdout: Slug | None = Field(default=None, description="the holdout covering this experiment")
    forced: dict[Annotated[str, Field(min_length=1, max_length=200)], Slug] = Field(
        default_factory=dict,
        max_length=MAX_FORCED_VISITORS,
        description="visitor id -> variant key, for QA; never recorded",
    )

    _condition_evaluable = field_validator("condition")(_checked_condition)

    @model_validator(mode="after")
    def _targeting_consistent(self) -> Self:
        keys = [v.key for v in self.variants]
        unknown = sorted({f"{vid}: {key}" for vid, key in self.forced.items() if key not in keys})
        if unknown:
            raise ValueError(f"forced: variants must be one of {keys}, got {unknown}")
        if self.kind is ExperimentKind.HOLDOUT:
            if len(self.variants) != 2 or self.coverage != 1.0:
                raise ValueError(
                    "a holdout has exactly two variants (the held-out share first, then "
                    f"everyone else) and coverage 1, got {len(self.variants)} variants and "
                    f"coverage {self.coverage}"
                )
            taken = [n for n in ("condition", "namespace", "holdout") if getattr(self, n)]
            if taken or self.forced:
                raise ValueError(
                    f"a holdout takes no condition, namespace, holdout or forced visitors, "
                    f"got {taken + (['forced'] if self.forced else [])}"
                )
        if self.holdout is not None and self.holdout == self.key:
            raise ValueError(f"holdout must name another experiment, got {self.holdout!r}")
        return self

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
        dimensions = [d.name for d in self.dimensions]
        repeated = sorted({d for d in dimensions if dimensions.count(d) > 1})
        if repeated:
            raise ValueError(f"dimensions: names must be unique, got duplicates {repeated}")
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
    archived: bool = Field(
        default=False,
        description="hidden from the dashboard by default; only a draft or stopped experiment "
        "may be archived or brought back",
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
        cached: list[str] | None = self.__dict__.get("_variant_keys")
        if cached is None:
            cached = self.__dict__["_variant_keys"] = [v.key for v in self.variants]
        return cached

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
    condition: dict[str, JsonValue] | None = Field(
        default=None, description="replaces the condition; {} lets everyone in"
    )
    forced: dict[Annotated[str, Field(min_length=1, max_length=200)], Slug] | None = Field(
        default=None, max_length=MAX_FORCED_VISITORS
    )
    namespace: Namespace | None = None
    hash_attribute: AttributeName | None = None
    holdout: Slug | None = None
    archived: bool | None = Field(
        default=None, description="archive (true) or bring back (false) a draft or stopped one"
    )

    _condition_evaluable = field_validator("condition")(_checked_condition)


ARCHIVABLE = frozenset({Status.DRAFT, Status.STOPPED})
"""The statuses in which an experiment may be archived or brought back: nobody is enrolled."""

_FROZEN_AFTER_DRAFT = ("namespace", "hash_attribute", "holdout")
"""Fields that decide who is bucketed where: changing them while running would move visitors."""


def apply_patch(experiment: Experiment, patch: ExperimentPatch) -> Experiment:
    """A new definition with ``patch`` applied; refuses changes that would re-bucket visitors.

    Once an experiment has left draft, its variants (keys, order, weights), seed and hash
    version are fixed: changing them would move visitors between variants mid-test, and so are
    the namespace, the hash attribute and the holdout. Coverage may be ramped, since ranges grow
    in place; the condition may change (the store keeps every enrolled visitor's variant).
    Metrics may be added, not removed or redefined.
    """
    changes = patch.model_dump(exclude_none=True, exclude={"status", "winner"})
    archiving = patch.archived is not None and patch.archived != experiment.archived
    if archiving and experiment.status not in ARCHIVABLE:
        raise ConflictError(
            f"archived of experiment {experiment.key!r} cannot change while it is "
            f"{experiment.status.value}; allowed only when draft or stopped (stop it first)"
        )
    if experiment.status is not Status.DRAFT:
        frozen = [
            f
            for f in _FROZEN_AFTER_DRAFT
            if f in changes and getattr(patch, f) != getattr(experiment, f)
        ]
        if frozen:
            raise ConflictError(
                f"{', '.join(frozen)} of experiment {experiment.key!r} cannot change while it is "
                f"{experiment.status.value}; allowed only in draft (the condition may change: "
                "enrolled visitors keep their variant)"
            )
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
    if experiment.archived and target is Status.RUNNING:
        raise ConflictError(
            f"experiment {experiment.key!r} is archived; bring it back "
            "(archived: false) before starting it"
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
