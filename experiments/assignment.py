"""Which variant a visitor should see, decided from the definition alone (no I/O).

:func:`decide` is the one assignment rule: the routes, the demo and the JavaScript SDK's tests
all follow it. The store then records the first exposure of a running experiment and, for a
visitor seen before, answers with the variant recorded then (sticky), so a later change of
coverage cannot move anyone.

Targeting, mutual exclusion and holdouts follow GrowthBook's order and meaning: a visitor
pinned for QA sees the pinned variant (never recorded); a visitor without the hash attribute,
in a running holdout covering the experiment, outside the experiment's namespace range or not
matching its condition is not enrolled. The condition sees the request's attributes with
``id`` set to the visitor id. A visitor who no longer matches a changed condition is still
looked up, so one enrolled earlier keeps the recorded variant; nobody new is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from experiments.bucketing import choose_variant, hash_bucket, in_namespace
from experiments.conditions import evaluate
from experiments.definitions import Experiment, Status

__all__ = ["Decision", "Reason", "decide", "hash_unit", "held_out"]


class Reason(StrEnum):
    """Why a decision came out as it did."""

    ENROLLED = "enrolled"
    """Running, and the hash puts the visitor in a variant."""
    OUTSIDE_COVERAGE = "outside_coverage"
    """Running, but the hash falls in no variant's range (the store may still hold an earlier
    exposure, recorded before coverage was lowered)."""
    NOT_RUNNING = "not_running"
    """Draft or paused: nobody is enrolled."""
    WINNER = "winner"
    """Stopped with a winner: everybody sees it, nothing is recorded."""
    STOPPED = "stopped"
    """Stopped without a winner: nobody is enrolled."""
    FORCED = "forced"
    """Pinned to a variant for QA: shown, never recorded."""
    NO_HASH_ATTRIBUTE = "no_hash_attribute"
    """The attribute the experiment hashes is missing or empty: not enrolled."""
    HELD_OUT = "held_out"
    """In the held-out share of the running holdout covering the experiment."""
    OUTSIDE_NAMESPACE = "outside_namespace"
    """Outside the experiment's range of its namespace."""
    NOT_TARGETED = "not_targeted"
    """Does not match the condition: not enrolled, though the store is asked for a variant
    recorded before the condition changed."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What to show one visitor in one experiment, and whether the store is to be asked."""

    experiment: Experiment
    variant_index: int | None
    reason: Reason

    @property
    def records(self) -> bool:
        """Whether the store records (or looks up) an exposure: only while running."""
        return self.reason in _RECORDING

    @property
    def variant(self) -> str | None:
        """The variant key, or None when not enrolled."""
        index = self.variant_index
        return None if index is None else self.experiment.variant_keys[index]


_RECORDING = frozenset({Reason.ENROLLED, Reason.OUTSIDE_COVERAGE, Reason.NOT_TARGETED})


def _choose(experiment: Experiment, unit: str) -> int | None:
    """The variant index the hash gives ``unit``, or ``None`` when not enrolled."""
    bucket = hash_bucket(experiment.seed, unit, experiment.hash_version)
    if bucket is None:
        return None
    index = choose_variant(bucket, experiment.ranges)
    return None if index < 0 else index


def _targets(experiment: Experiment) -> bool:
    """Whether anything but the hash decides (cached: definitions are frozen)."""
    cached: bool | None = experiment.__dict__.get("_targets")
    if cached is None:
        cached = bool(
            experiment.forced
            or experiment.condition
            or experiment.namespace
            or experiment.holdout
            or experiment.hash_attribute != "id"
        )
        experiment.__dict__["_targets"] = cached
    return cached


def hash_unit(
    experiment: Experiment, visitor_id: str, attributes: Mapping[str, object] | None
) -> str | None:
    """The value hashed for ``experiment``: the visitor id, or the named attribute as text."""
    name = experiment.hash_attribute
    if name == "id":
        return visitor_id
    value = (attributes or {}).get(name)
    if value is None or value == "" or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def held_out(
    holdout: Experiment | None, visitor_id: str, attributes: Mapping[str, object] | None = None
) -> bool:
    """Whether a running ``holdout`` keeps the visitor out: in its first variant, or without
    the attribute it hashes (as GrowthBook's ``filters`` treat a missing attribute)."""
    if holdout is None or holdout.status is not Status.RUNNING:
        return False
    unit = hash_unit(holdout, visitor_id, attributes)
    return unit is None or _choose(holdout, unit) == 0


def decide(
    experiment: Experiment,
    visitor_id: str,
    attributes: Mapping[str, object] | None = None,
    *,
    holdout: Experiment | None = None,
    check_condition: bool = True,
) -> Decision:
    """The decision for ``visitor_id`` in ``experiment`` from the definitions alone.

    ``holdout`` is the definition ``experiment.holdout`` names (the caller looks it up).
    ``check_condition=False`` trusts a caller that evaluated the condition itself (an SDK
    reporting an exposure); the hash, namespace and holdout are still checked.
    """
    status = experiment.status
    if status is Status.RUNNING and not _targets(experiment):
        index = _choose(experiment, visitor_id)  # the hot path: nothing but the hash
        return Decision(
            experiment, index, Reason.OUTSIDE_COVERAGE if index is None else Reason.ENROLLED
        )
    if status is Status.RUNNING:
        forced = experiment.forced.get(visitor_id) if experiment.forced else None
        if forced is not None:
            return Decision(experiment, experiment.variant_keys.index(forced), Reason.FORCED)
        unit = hash_unit(experiment, visitor_id, attributes)
        if unit is None:
            return Decision(experiment, None, Reason.NO_HASH_ATTRIBUTE)
        if experiment.holdout is not None and held_out(holdout, visitor_id, attributes):
            return Decision(experiment, None, Reason.HELD_OUT)
        if experiment.namespace is not None and not in_namespace(
            unit, experiment.namespace.as_tuple()
        ):
            return Decision(experiment, None, Reason.OUTSIDE_NAMESPACE)
        if check_condition and experiment.condition:
            seen = {**attributes, "id": visitor_id} if attributes else {"id": visitor_id}
            if not evaluate(experiment.condition, seen):
                return Decision(experiment, None, Reason.NOT_TARGETED)
        index = _choose(experiment, unit)
        reason = Reason.OUTSIDE_COVERAGE if index is None else Reason.ENROLLED
        return Decision(experiment, index, reason)
    if status is Status.STOPPED:
        if experiment.winner is None:
            return Decision(experiment, None, Reason.STOPPED)
        return Decision(experiment, experiment.variant_keys.index(experiment.winner), Reason.WINNER)
    return Decision(experiment, None, Reason.NOT_RUNNING)
