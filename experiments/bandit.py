"""The periods of a bandit experiment: when one ends, what it recorded, the next one's weights.

An experiment with ``allocation: "bandit"`` runs in periods of ``bandit_period_seconds``. Each
period has the variant weights new visitors were bucketed with, and the cumulative visitors and
conversions (of the primary metric) of every variant when it began; closing it records what it
added. The weights live in the definition itself (its variants' ``weight``), so assignment
(:func:`experiments.assignment.decide`) needs nothing new, and a visitor already exposed keeps
the variant the store recorded first: the bandit only decides where new visitors go. The
history is stored beside the definition and written with it in one script.

Everything here is pure: the new weights come in as an argument (the service computes them from
the posteriors, :func:`stats.thompson_weights`), and so does the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from experiments.definitions import Experiment, Status, Variant
from experiments.errors import ConflictError, InvalidDefinitionError

__all__ = [
    "BanditHistory",
    "BanditPeriod",
    "close_period",
    "is_due",
    "opening_history",
    "with_weights",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BanditPeriod(_Frozen):
    """One period: its weights, the totals it started from and, once closed, what it added."""

    index: int
    started_at: float
    ended_at: float | None
    weights: tuple[float, ...]
    visitors_at_start: tuple[int, ...]
    conversions_at_start: tuple[float, ...]
    visitors: tuple[int, ...] | None
    """Visitors first exposed during the period, per variant (None while it is open)."""
    conversions: tuple[float, ...] | None
    """Conversions of the primary metric credited during the period (None while open)."""


class BanditHistory(_Frozen):
    """Every period of a bandit experiment, the last one open."""

    periods: tuple[BanditPeriod, ...]

    @property
    def current(self) -> BanditPeriod:
        return self.periods[-1]


def opening_history(experiment: Experiment) -> BanditHistory:
    """The history of a bandit that has not stepped yet: one period since the start."""
    _check_bandit(experiment)
    k = len(experiment.variants)
    started = experiment.started_at if experiment.started_at is not None else 0.0
    first = BanditPeriod(
        index=0,
        started_at=started,
        ended_at=None,
        weights=tuple(v.weight for v in experiment.variants),
        visitors_at_start=(0,) * k,
        conversions_at_start=(0.0,) * k,
        visitors=None,
        conversions=None,
    )
    return BanditHistory(periods=(first,))


def is_due(experiment: Experiment, history: BanditHistory, now: float) -> bool:
    """Whether the current period has lasted ``bandit_period_seconds`` at ``now``."""
    return now >= history.current.started_at + experiment.bandit_period_seconds


def with_weights(experiment: Experiment, weights: Sequence[float]) -> Experiment:
    """The definition with new variant weights (same keys, names and order)."""
    _check_bandit(experiment)
    if len(weights) != len(experiment.variants):
        raise InvalidDefinitionError(
            f"weights must have one entry per variant ({len(experiment.variants)}), "
            f"got {len(weights)}"
        )
    if any(not (math.isfinite(w) and 0.0 <= w <= 1.0) for w in weights) or not math.isclose(
        math.fsum(weights), 1.0, abs_tol=1e-9
    ):
        raise InvalidDefinitionError(f"weights must be in [0, 1] and sum to 1, got {weights}")
    variants = [
        Variant(key=v.key, name=v.name, weight=float(w))
        for v, w in zip(experiment.variants, weights, strict=True)
    ]
    # validated anew, not copied: the bucket ranges cached on the old definition must go
    return Experiment.model_validate({**experiment.model_dump(), "variants": variants})


def close_period(
    experiment: Experiment,
    history: BanditHistory,
    *,
    visitors: Sequence[int],
    conversions: Sequence[float],
    weights: Sequence[float],
    now: float,
) -> tuple[Experiment, BanditHistory]:
    """Close the current period at ``now`` and open the next one with ``weights``.

    ``visitors`` and ``conversions`` are the variants' cumulative totals at ``now``; the closed
    period records their increase since it began. Returns the re-weighted definition and the
    new history, to be written together.
    """
    _check_bandit(experiment)
    if experiment.status is not Status.RUNNING:
        raise ConflictError(
            f"bandit {experiment.key!r} is {experiment.status.value}; it re-weights only while "
            "running"
        )
    current = history.current
    if now < current.started_at:
        raise InvalidDefinitionError(
            f"now ({now}) is before the current period's start ({current.started_at})"
        )
    closed = current.model_copy(
        update={
            "ended_at": now,
            "visitors": tuple(
                int(n) - s for n, s in zip(visitors, current.visitors_at_start, strict=True)
            ),
            "conversions": tuple(
                float(c) - s for c, s in zip(conversions, current.conversions_at_start, strict=True)
            ),
        }
    )
    updated = with_weights(experiment, weights)
    opened = BanditPeriod(
        index=current.index + 1,
        started_at=now,
        ended_at=None,
        weights=tuple(v.weight for v in updated.variants),
        visitors_at_start=tuple(int(n) for n in visitors),
        conversions_at_start=tuple(float(c) for c in conversions),
        visitors=None,
        conversions=None,
    )
    return updated, BanditHistory(periods=(*history.periods[:-1], closed, opened))


def _check_bandit(experiment: Experiment) -> None:
    if experiment.allocation != "bandit":
        raise ConflictError(
            f"experiment {experiment.key!r} has allocation {experiment.allocation!r}; "
            "only allocation 'bandit' re-weights its variants"
        )
