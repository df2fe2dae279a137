"""Running bandit experiments: the step that re-weights them, their read-out, the service loop.

:func:`step` closes a bandit's period once it has lasted ``bandit_period_seconds``: it reads
the variants' cumulative visitors and conversions of the primary metric from the store, gives
the next period Thompson-sampling weights (:func:`stats.thompson_weights`, each variant's
posterior chance to be best, floored at ``bandit_floor``) and writes the new definition and the
period history together. :func:`readout` compares every variant with the control period by
period (:func:`stats.period_weighted_comparison`), which the changing weights cannot bias,
beside the pooled rates that they can. :func:`run_loop` steps every running bandit that is due,
every ``ABACUS_BANDIT_INTERVAL_SECONDS``; ``abacus bandit step KEY`` and
``POST /v1/experiments/KEY/bandit/step`` do it on demand.

The read-out puts each visitor in the period they were exposed in, with their conversions
whenever they came, read from the raw log (a cost in proportion to the experiment's log, like
an export). When the log has lost entries to its cap it falls back on the periods' stored
counts, where a period's conversions are those credited while it was open (the conversions of
its own visitors when conversions follow exposure within a period) and a period that credited
more conversions than it had new visitors is merged with the one before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from typing import Literal

from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

import stats
from experiments.audit import AuditActor
from experiments.bandit import BanditHistory, BanditPeriod, close_period, is_due
from experiments.definitions import Experiment, Status
from experiments.errors import (
    AbacusError,
    ConflictError,
    InvalidDefinitionError,
    StoreUnavailableError,
)
from experiments.store import Store, VariantTotals
from service.api.principal import Principal
from service.audit import BANDIT_LOOP, definition_entry

__all__ = [
    "BanditComparison",
    "BanditReport",
    "next_weights",
    "readout",
    "run_loop",
    "step",
    "step_due",
]

log = logging.getLogger("abacus.bandit")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BanditComparison(_Frozen):
    """One variant against the control, period-weighted (and pooled, for contrast)."""

    variant: str
    absolute_lift: float | None
    absolute_ci: tuple[float, float] | None
    statistic: float | None
    pvalue: float | None
    periods: int
    pooled_absolute_lift: float | None
    """The difference of the rates over all periods pooled: biased when weights moved."""
    reason: str | None


class BanditReport(_Frozen):
    """A bandit experiment's periods, its current weights and its period-weighted read-out."""

    experiment: str
    metric: str
    stepped: bool
    """Whether this call closed a period (only for a step)."""
    weights: dict[str, float]
    next_step_at: float
    periods: tuple[BanditPeriod, ...]
    strata: Literal["exposure", "credit"]
    """How visitors and conversions were split into periods: ``exposure``, each visitor in the
    period they were exposed in, with their conversions whenever credited (read from the raw
    log); ``credit``, from the stored per-period counts, conversions in the period they were
    credited (when the log lost entries to its cap)."""
    comparisons: tuple[BanditComparison, ...]


def _primary(experiment: Experiment) -> str:
    metric = experiment.primary_metric()
    if experiment.allocation != "bandit" or metric is None:
        raise InvalidDefinitionError(
            f"experiment {experiment.key!r} is not a bandit (allocation "
            f"{experiment.allocation!r}); set allocation 'bandit' with a primary conversion metric"
        )
    return metric.name  # a conversion metric: the definition's validator ensures it


def _cumulative(totals: list[VariantTotals], metric: str) -> tuple[list[int], list[float]]:
    return [t.n for t in totals], [t.sums.get(metric, 0.0) for t in totals]


def _proportion(conversions: float, visitors: int) -> stats.Proportion:
    return stats.Proportion(conversions=round(conversions), visitors=visitors)


def next_weights(
    experiment: Experiment, visitors: list[int], conversions: list[float]
) -> tuple[float, ...]:
    """The Thompson-sampling weights of the next period, from the cumulative totals."""
    summaries = [_proportion(c, n) for n, c in zip(visitors, conversions, strict=True)]
    return stats.thompson_weights(variants=summaries, floor=experiment.bandit_floor)


async def step(
    store: Store,
    key: str,
    now: float,
    *,
    force: bool = False,
    actor: Principal | AuditActor = BANDIT_LOOP,
) -> BanditReport:
    """Close the current period of bandit ``key`` if it is due (or ``force``) and report; the
    re-weighting is recorded in the audit trail as ``actor``'s.

    Raises :class:`ConflictError` when the experiment is not running or another step won.
    """
    experiment = await store.get_experiment(key)
    metric = _primary(experiment)
    history = await store.bandit_history(experiment)
    stepped = False
    if force or is_due(experiment, history, now):
        totals = await store.totals(experiment)
        visitors, conversions = _cumulative(totals, metric)
        weights = await run_in_threadpool(next_weights, experiment, visitors, conversions)
        updated, new_history = close_period(
            experiment,
            history,
            visitors=visitors,
            conversions=conversions,
            weights=weights,
            now=now,
        )
        audit = definition_entry(actor, experiment, updated, action="reweight")
        await store.record_bandit_period(experiment, history, updated, new_history, audit=audit)
        experiment, history, stepped = updated, new_history, True
    return await _report(store, experiment, history, metric, stepped=stepped)


async def readout(store: Store, key: str) -> BanditReport:
    """The periods and the period-weighted comparisons of bandit ``key``, without stepping."""
    experiment = await store.get_experiment(key)
    metric = _primary(experiment)
    history = await store.bandit_history(experiment)
    return await _report(store, experiment, history, metric, stepped=False)


async def _report(
    store: Store, experiment: Experiment, history: BanditHistory, metric: str, *, stepped: bool
) -> BanditReport:
    visitors, conversions = _cumulative(await store.totals(experiment), metric)
    cohorts = await _cohorts(store, experiment, history, metric)
    return await run_in_threadpool(
        _build_report, experiment, history, metric, visitors, conversions, stepped, cohorts
    )


PAGE_SIZE = 5_000


async def _cohorts(
    store: Store, experiment: Experiment, history: BanditHistory, metric: str
) -> list[list[tuple[int, float]]] | None:
    """Per period and variant, the visitors exposed in it and how many of them converted, from
    the raw log; None when the log holds fewer exposures than the aggregates counted."""
    primary = experiment.primary_metric()
    event = None if primary is None else primary.event
    snapshot = await store.log_snapshot(experiment)
    starts_ms = [round(p.started_at * 1000) for p in history.periods]
    index = {key: i for i, key in enumerate(experiment.variant_keys)}
    exposed: dict[str, tuple[int, int]] = {}
    converted: set[str] = set()
    for shard, tail in enumerate(snapshot.log_tails):
        after: str | None = None
        while tail is not None:
            page = await store.log_page(experiment, shard, after=after, until=tail, count=PAGE_SIZE)
            for kind, visitor, variant, at_ms, name, _, _ in page.rows():
                if kind == "exposure":
                    period = max(0, bisect_right(starts_ms, at_ms) - 1)
                    exposed[visitor] = (index[variant], period)
                elif name == event:
                    converted.add(visitor)
            if page.last_id is None or page.last_id == tail or page.scanned < PAGE_SIZE:
                break
            after = page.last_id
    if len(exposed) < snapshot.exposures:
        return None
    counts = [[[0, 0] for _ in experiment.variants] for _ in history.periods]
    for visitor, (variant_index, period) in exposed.items():
        cell = counts[period][variant_index]
        cell[0] += 1
        cell[1] += visitor in converted
    return [[(n, float(c)) for n, c in period_counts] for period_counts in counts]


def _build_report(
    experiment: Experiment,
    history: BanditHistory,
    metric: str,
    visitors: list[int],
    conversions: list[float],
    stepped: bool,
    cohorts: list[list[tuple[int, float]]] | None,
) -> BanditReport:
    strata: list[list[tuple[int, float]]] = []
    for period in history.periods if cohorts is None else ():
        if period.visitors is not None and period.conversions is not None:
            added = list(zip(period.visitors, period.conversions, strict=True))
        else:  # the open period: what it has added so far
            added = [
                (n - n0, c - c0)
                for n, c, n0, c0 in zip(
                    visitors,
                    conversions,
                    period.visitors_at_start,
                    period.conversions_at_start,
                    strict=True,
                )
            ]
        strata.append([(int(n), float(c)) for n, c in added])
    chosen = _merged(strata) if cohorts is None else cohorts
    per_period = [[_proportion(c, n) for n, c in stratum] for stratum in chosen]
    comparisons = []
    for index, variant in enumerate(experiment.variants[1:], start=1):
        result = stats.period_weighted_comparison(
            periods=[(p[0], p[index]) for p in per_period],
            confidence_level=experiment.confidence_level,
        )
        pooled = (
            conversions[index] / visitors[index] - conversions[0] / visitors[0]
            if visitors[0] and visitors[index]
            else None
        )
        defined = result.reason is None
        comparisons.append(
            BanditComparison(
                variant=variant.key,
                absolute_lift=result.absolute_lift if defined else None,
                absolute_ci=result.absolute_ci if defined else None,
                statistic=result.statistic if defined else None,
                pvalue=result.pvalue if defined else None,
                periods=result.periods,
                pooled_absolute_lift=pooled,
                reason=result.reason,
            )
        )
    return BanditReport(
        experiment=experiment.key,
        metric=metric,
        stepped=stepped,
        weights={v.key: v.weight for v in experiment.variants},
        next_step_at=history.current.started_at + experiment.bandit_period_seconds,
        periods=history.periods,
        strata="credit" if cohorts is None else "exposure",
        comparisons=tuple(comparisons),
    )


def _merged(strata: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
    """Periods that credited more conversions than they had new visitors (conversions of
    earlier visitors) are merged into the period before them, until each stratum holds no more
    conversions than visitors. The first period always does: nobody came before it."""
    out: list[list[tuple[int, float]]] = []
    for stratum in strata:
        out.append(stratum)
        while len(out) > 1 and any(c > n for n, c in out[-1]):
            last = out.pop()
            out[-1] = [(n0 + n, c0 + c) for (n0, c0), (n, c) in zip(out[-1], last, strict=True)]
    return out


async def step_due(store: Store, now: float) -> list[str]:
    """Step every running bandit whose period is over; the keys stepped."""
    _, experiments = await store.definitions()
    stepped = []
    for key, experiment in sorted(experiments.items()):
        if experiment.allocation != "bandit" or experiment.status is not Status.RUNNING:
            continue
        try:
            if (await step(store, key, now)).stepped:
                stepped.append(key)
        except ConflictError as exc:  # another worker stepped it first, or it just stopped
            log.info("bandit %s not stepped: %s", key, exc)
        except StoreUnavailableError:
            raise
        except AbacusError as exc:
            log.warning("bandit %s not stepped: %s", key, exc)
    return stepped


async def run_loop(store: Store, interval_seconds: float) -> None:
    """Every ``interval_seconds``, step the bandits that are due (until cancelled)."""
    while True:
        try:
            stepped = await step_due(store, time.time())
            if stepped:
                log.info("bandits re-weighted: %s", ", ".join(stepped))
        except StoreUnavailableError as exc:
            log.warning("bandit loop: store unavailable (%s); retrying", exc)
        await asyncio.sleep(interval_seconds)
