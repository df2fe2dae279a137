"""What must hold before an experiment starts: free namespace range, a real holdout.

Experiments in one namespace take disjoint ranges of its hash, so no visitor can be in two of
them; a second experiment whose range overlaps one already running (or paused, which will run
again) is refused when it starts. An experiment naming a holdout needs that holdout to exist
and to be one. Pure: the caller passes every other definition, and writes the started one only
if the definitions did not change in between (the store's compare-and-set on its version).
"""

from __future__ import annotations

from collections.abc import Mapping

from experiments.definitions import Experiment, ExperimentKind, Status
from experiments.errors import ConflictError, InvalidDefinitionError

__all__ = ["check_holdout", "check_start"]

_LIVE = (Status.RUNNING, Status.PAUSED)


def check_holdout(experiment: Experiment, others: Mapping[str, Experiment]) -> None:
    """Refuse an experiment whose ``holdout`` names no holdout."""
    if experiment.holdout is None:
        return
    holdout = others.get(experiment.holdout)
    if holdout is None or holdout.kind is not ExperimentKind.HOLDOUT:
        found = "no experiment" if holdout is None else f"an experiment of kind {holdout.kind}"
        raise InvalidDefinitionError(
            f"holdout: must name an experiment of kind 'holdout', got {experiment.holdout!r} "
            f"({found})"
        )


def check_start(experiment: Experiment, others: Mapping[str, Experiment]) -> None:
    """Refuse starting ``experiment`` over a namespace range another live one holds."""
    check_holdout(experiment, others)
    mine = experiment.namespace
    if mine is None:
        return
    taken = sorted(
        f"{o.key} [{o.namespace.start}, {o.namespace.end})"
        for o in others.values()
        if o.key != experiment.key
        and o.status in _LIVE
        and o.namespace is not None
        and mine.overlaps(o.namespace)
    )
    if taken:
        raise ConflictError(
            f"namespace {mine.id!r}: range [{mine.start}, {mine.end}) of {experiment.key!r} "
            f"overlaps {', '.join(taken)}; experiments of one namespace take disjoint ranges"
        )
