"""Which variant a visitor should see, decided from the definition alone (no I/O).

:func:`decide` is the one assignment rule: the routes, the demo and the JavaScript SDK's tests
all follow it. The store then records the first exposure of a running experiment and, for a
visitor seen before, answers with the variant recorded then (sticky), so a later change of
coverage cannot move anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from experiments.bucketing import choose_variant, hash_bucket
from experiments.definitions import Experiment, Status

__all__ = ["Decision", "Reason", "decide"]


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


@dataclass(frozen=True, slots=True)
class Decision:
    """What to show one visitor in one experiment, and whether the store is to be asked."""

    experiment: Experiment
    variant_index: int | None
    reason: Reason

    @property
    def records(self) -> bool:
        """Whether the store records (or looks up) an exposure: only while running."""
        return self.reason in (Reason.ENROLLED, Reason.OUTSIDE_COVERAGE)

    @property
    def variant(self) -> str | None:
        """The variant key, or None when not enrolled."""
        index = self.variant_index
        return None if index is None else self.experiment.variant_keys[index]


def _choose(experiment: Experiment, visitor_id: str) -> int | None:
    """The variant index the hash gives ``visitor_id``, or ``None`` when not enrolled."""
    bucket = hash_bucket(experiment.seed, visitor_id, experiment.hash_version)
    if bucket is None:
        return None
    index = choose_variant(bucket, experiment.ranges)
    return None if index < 0 else index


def decide(
    experiment: Experiment,
    visitor_id: str,
    attributes: Mapping[str, object] | None = None,  # targeting will read them
) -> Decision:
    """The decision for ``visitor_id`` in ``experiment`` from the definition alone."""
    status = experiment.status
    if status is Status.RUNNING:
        index = _choose(experiment, visitor_id)
        reason = Reason.OUTSIDE_COVERAGE if index is None else Reason.ENROLLED
        return Decision(experiment, index, reason)
    if status is Status.STOPPED:
        if experiment.winner is None:
            return Decision(experiment, None, Reason.STOPPED)
        return Decision(experiment, experiment.variant_keys.index(experiment.winner), Reason.WINNER)
    return Decision(experiment, None, Reason.NOT_RUNNING)
