"""Which experiments the dashboard lists, in which order: search, filters, sort, the archive.

The query comes from the page's own GET form (``/?q=kilt&status=running&sort=lift``), so the
dashboard works without JavaScript and a filtered view is a link that can be shared. Pure: it
takes the experiments with their read-outs and returns the ones to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from experiments.definitions import Experiment
from service.readout.model import ExperimentResults, VerdictKind

__all__ = ["DashboardQuery", "Listing", "lift_of", "select"]

Item = tuple[Experiment, ExperimentResults]

StatusFilter = Literal["", "draft", "running", "paused", "stopped"]
VerdictFilter = Literal["", "winning", "losing", "inconclusive", "srm", "not_enough_data"]
SortKey = Literal["created", "started", "visitors", "lift"]


class DashboardQuery(BaseModel):
    """The dashboard's query parameters; an empty filter lets everything through."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    q: str = Field(default="", max_length=200, description="part of the name or key")
    status: StatusFilter = ""
    verdict: VerdictFilter = ""
    sort: SortKey = Field(default="created", description="created, started, visitors or lift")
    order: Literal["desc", "asc"] = "desc"
    archived: bool = Field(default=False, description="also list archived experiments")

    @property
    def filtered(self) -> bool:
        return bool(self.q.strip() or self.status or self.verdict)


@dataclass(frozen=True)
class Listing:
    """The experiments to show, and how many the filters and the archive left out."""

    items: list[Item]
    total: int
    archived_hidden: int


def lift_of(results: ExperimentResults) -> float | None:
    """The largest relative lift of the primary metric over the control, where it is known."""
    primary = results.primary
    if primary is None:
        return None
    lifts = [
        row.relative_lift
        for row in primary.treatments
        if row.relative_lift is not None
        and row.verdict is not None
        and row.verdict.kind is not VerdictKind.NOT_ENOUGH_DATA
    ]
    return max(lifts, default=None)


def _matches(item: Item, query: DashboardQuery) -> bool:
    experiment, results = item
    text = query.q.strip().lower()
    if text and text not in experiment.key.lower() and text not in experiment.name.lower():
        return False
    if query.status and experiment.status.value != query.status:
        return False
    return not query.verdict or results.verdict.kind.value == query.verdict


def _sort_value(item: Item, key: SortKey) -> float | None:
    experiment, results = item
    if key == "created":
        return experiment.created_at
    if key == "started":
        return experiment.started_at
    if key == "visitors":
        return float(sum(results.srm.visitors.values()))
    return lift_of(results)


def select(items: Sequence[Item], query: DashboardQuery) -> Listing:
    """The items ``query`` asks for, sorted; those without the sort value (a draft has no
    start date, a lift may be unknown) come last whichever the order."""
    shown = [i for i in items if query.archived or not i[0].archived]
    chosen = [i for i in shown if _matches(i, query)]
    by_key = sorted(chosen, key=lambda i: i[0].key)  # ties keep this order (sorts are stable)
    known = [(v, i) for i in by_key if (v := _sort_value(i, query.sort)) is not None]
    unknown = [i for i in by_key if _sort_value(i, query.sort) is None]
    known.sort(key=lambda pair: pair[0], reverse=query.order == "desc")
    return Listing(
        items=[i for _, i in known] + unknown,
        total=len(items),
        archived_hidden=len(items) - len(shown),
    )
