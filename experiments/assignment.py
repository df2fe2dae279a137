"""Which variant a visitor should see, decided from the definition alone (no I/O).

The store then records the first exposure and, for a visitor seen before, answers with the
variant recorded then (sticky), so a later change of coverage cannot move anyone.
"""

from __future__ import annotations

from experiments.bucketing import choose_variant, hash_bucket
from experiments.definitions import Experiment, Status

__all__ = ["choose", "enrols", "served_variant"]


def choose(experiment: Experiment, visitor_id: str) -> int | None:
    """The variant index the hash gives ``visitor_id``, or ``None`` when not enrolled."""
    bucket = hash_bucket(experiment.seed, visitor_id, experiment.hash_version)
    if bucket is None:
        return None
    index = choose_variant(bucket, experiment.ranges)
    return None if index < 0 else index


def enrols(experiment: Experiment) -> bool:
    """Whether the experiment takes new exposures (only while running)."""
    return experiment.status is Status.RUNNING


def served_variant(experiment: Experiment, visitor_id: str) -> int | None:
    """What to show when nothing is recorded: the hash while running, the winner once stopped."""
    if experiment.status is Status.RUNNING:
        return choose(experiment, visitor_id)
    if experiment.status is Status.STOPPED and experiment.winner is not None:
        return experiment.variant_keys.index(experiment.winner)
    return None
