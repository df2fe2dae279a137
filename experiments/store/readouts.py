"""Read-outs: the per-variant sufficient statistics, overall and per day, summed over shards.

Each shard keeps its aggregates in one small hash (``n:V``, ``M:V:sum``, ``M:V:ss``,
``M:V:xy``) and one per UTC day, so a read-out costs O(variants x metrics x shards) reads
however many visitors there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from experiments.connection import guarded
from experiments.definitions import Experiment
from experiments.store import codec
from experiments.store._base import StoreBase

__all__ = ["OTHER_VALUE", "ReadoutsMixin", "SliceTotals", "VariantTotals"]

OTHER_VALUE = "other"
"""The label of a dimension's last slice: every value after the first ``max_values``."""


@dataclass(slots=True)
class VariantTotals:
    """Sufficient statistics of one variant: ``n`` and, per metric, sum / ss / xy."""

    n: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    sum_squares: dict[str, float] = field(default_factory=dict)
    cross: dict[str, float] = field(default_factory=dict)

    def add_field(self, name: str, raw: str) -> None:
        if name.startswith("n:"):
            self.n += int(raw)
            return
        metric, _, stat = name.rpartition(":")
        metric = metric.rpartition(":")[0]
        target = {"sum": self.sums, "ss": self.sum_squares, "xy": self.cross}[stat]
        target[metric] = target.get(metric, 0.0) + float(raw)


def _variant_of(name: str) -> int:
    if name.startswith("n:"):
        return int(name[2:])
    return int(name.rsplit(":", 2)[1])


def fold(raw_hashes: Sequence[dict[str, str]], variants: int) -> list[VariantTotals]:
    """Sum the aggregate hashes of several shards into per-variant totals."""
    totals = [VariantTotals() for _ in range(variants)]
    for raw in raw_hashes:
        for name, value in raw.items():
            index = _variant_of(name)
            if 0 <= index < variants:
                totals[index].add_field(name, value)
    return totals


@dataclass(frozen=True, slots=True)
class SliceTotals:
    """One slice of a dimension: its value (or :data:`OTHER_VALUE`) and per-variant totals."""

    value: str
    other: bool
    totals: list[VariantTotals]


def fold_slices(
    raw_hashes: Sequence[dict[str, str]], variants: int, names: dict[int, str], other: int
) -> list[SliceTotals]:
    """Per slice (fields ``C:...`` of the dimension hashes), the summed per-variant totals."""
    by_slice: dict[int, list[dict[str, str]]] = {}
    for raw in raw_hashes:
        parts: dict[int, dict[str, str]] = {}
        for name, value in raw.items():
            char, _, rest = name.partition(":")
            parts.setdefault(codec.SLICE_DIGITS.index(char), {})[rest] = value
        for index, fields in parts.items():
            by_slice.setdefault(index, []).append(fields)
    return [
        SliceTotals(
            OTHER_VALUE if index == other else names.get(index, f"slice {index}"),
            index == other,
            fold(by_slice[index], variants),
        )
        for index in sorted(by_slice)
    ]


class ReadoutsMixin(StoreBase):
    @guarded
    async def dimension_totals(self, experiment: Experiment, dimension: str) -> list[SliceTotals]:
        """Per value of ``dimension`` (first seen first, "other" last), per-variant totals.

        Only slices with at least one visitor are listed. Raises ``KeyError`` for a name that
        is not one of the experiment's dimensions.
        """
        positions = {d.name: i for i, d in enumerate(experiment.dimensions)}
        position = positions[dimension]
        registry = cast(
            dict[str, str],
            await self.client.hgetall(
                self.keys.dimension_values(experiment.key, experiment.generation)
            ),
        )
        prefix = f"{position}:"
        names = {int(v): f[len(prefix) :] for f, v in registry.items() if f.startswith(prefix)}
        pipe = self.client.pipeline(transaction=False)
        for k in self._shards(experiment):
            pipe.hgetall(k.dimension(position))
        raw = await pipe.execute()
        other = experiment.dimensions[position].max_values
        return fold_slices(raw, len(experiment.variants), names, other)

    @guarded
    async def totals(self, experiment: Experiment) -> list[VariantTotals]:
        """Per-variant sufficient statistics, summed over the shards."""
        pipe = self.client.pipeline(transaction=False)
        for k in self._shards(experiment):
            pipe.hgetall(k.agg)
        return fold(await pipe.execute(), len(experiment.variants))

    @guarded
    async def daily_totals(self, experiment: Experiment) -> list[tuple[str, list[VariantTotals]]]:
        """Per UTC day, that day's increments of the per-variant statistics, oldest first."""
        shards = self._shards(experiment)
        pipe = self.client.pipeline(transaction=False)
        for k in shards:
            pipe.smembers(k.days)
        days = sorted(set().union(*await pipe.execute()))
        if not days:
            return []
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            for k in shards:
                pipe.hgetall(k.day(day))
        raw = await pipe.execute()
        n = len(shards)
        variants = len(experiment.variants)
        return [(day, fold(raw[i * n : (i + 1) * n], variants)) for i, day in enumerate(days)]

    @guarded
    async def assignment_of(self, experiment: Experiment, visitor_id: str) -> int | None:
        """The recorded variant of a visitor, or None when never exposed."""
        k, place = self._place(experiment, visitor_id)
        raw = cast(
            str | None,
            await self.client.hget(k.assign(place.slice), codec.pack_visitor(visitor_id)),
        )
        return None if raw is None else codec.assignment_of(raw)[0]
