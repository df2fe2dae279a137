"""The case-study demo: simulated visitors driven through the real assignment and tracking code.

Each experiment of :mod:`service.demo.casestudies` is created as running since ``days``
simulated days ago. Its visitors arrive uniformly over those days; each is bucketed by the real
hash (:func:`experiments.assignment.decide`) and recorded with :meth:`Store.record_exposure` at its
simulated arrival time, and its events go through :meth:`Store.track` (the same Lua scripts as
``/v1/track``) with timestamps after that exposure. The HTTP track endpoint refuses events older
than :data:`experiments.limits.MAX_EVENT_AGE_SECONDS`, which is why the demo talks to the store
directly.

The true effects are the published lifts. Per event the simulation draws, per visitor:

- with a conversion effect (rate ``r``): whether the visitor converts, then ``1 + Poisson`` events
  per converter (``count / r - 1`` when a count metric on the event has an effect, else 0.2);
- with a mean effect too (value ``m`` per visitor): each event carries a log-normal value whose
  mean makes the per-visitor value ``m``;
- with only a count effect (``c`` per visitor): ``Poisson(c)`` events.

Every non-control variant gets the published lift. Randomness comes from one seeded numpy
Generator per case study, so a run is reproducible for a given seed, scale and end time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from experiments.assignment import decide
from experiments.definitions import Experiment, MetricKind, Status, transition
from experiments.errors import ExperimentNotFoundError
from experiments.keys import Keyspace
from experiments.store import Store, TrackEvent, TrackOutcome, connect, encode_attributes
from service.demo.casestudies import CASE_STUDIES, CaseStudy
from service.loops import run_sync
from service.settings import Settings

__all__ = ["DemoOutcome", "load_demo", "run_demo"]

T = TypeVar("T")

DAY_MS = 86_400_000
EVENT_BATCH = 2_000
# Exposure calls in flight at once (measured fastest here between 4 and 64).
WORKERS = 16
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.58, 0.35, 0.07)  # chosen here: a typical retail mix, not published
PROGRESS_STEP = 250
# Extra events per converting visitor when no count effect says otherwise (repeat purchases).
REPEAT_RATE = 0.2
# Spread of single event values (log-normal sigma): order values vary about +-60%.
VALUE_SIGMA = 0.6
# Mean delay between a visitor's arrival and each of its events.
EVENT_DELAY_MS = 20 * 60_000


@dataclass(frozen=True)
class DemoOutcome:
    """What the demo did for one case study."""

    key: str
    visitors: int
    events: int
    skipped: bool
    seconds: float


@dataclass(frozen=True)
class _EventModel:
    """How one event is drawn for a visitor of each variant (see the module docstring)."""

    event: str
    rate: tuple[float, ...] | None  # converting share per variant
    per_visitor: tuple[float, ...] | None  # events per visitor, per variant (count effect)
    value: tuple[float, ...] | None  # value per visitor, per variant (mean effect)


def _event_models(case: CaseStudy, variants: int) -> list[_EventModel]:
    """One model per event the experiment's metrics read, from the case study's true effects."""
    experiment = Experiment.model_validate(case.definition)
    effects = {e.metric: e for e in case.effects}
    models: list[_EventModel] = []
    for event in dict.fromkeys(m.event for m in experiment.metrics if m.event is not None):
        found: dict[MetricKind, tuple[float, ...]] = {}
        for metric in experiment.metrics:
            effect = effects.get(metric.name)
            if metric.event == event and effect is not None:
                lifted = effect.baseline * (1 + effect.relative_lift)
                found[metric.kind] = (effect.baseline, *([lifted] * (variants - 1)))
        rate, count = found.get(MetricKind.CONVERSION), found.get(MetricKind.COUNT)
        if rate is None and count is None:
            raise ValueError(
                f"case study {case.key!r}: event {event!r} needs a conversion or count effect "
                "to be simulated"
            )
        models.append(_EventModel(event, rate, count, found.get(MetricKind.MEAN)))
    return models


def _draw_counts(
    model: _EventModel, variant: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Events per visitor for one event model."""
    if model.rate is not None:
        rate = np.asarray(model.rate)[variant]
        converts = rng.random(variant.size) < rate
        if model.per_visitor is not None:
            extra = np.maximum(np.asarray(model.per_visitor)[variant] / rate - 1.0, 0.0)
        else:
            extra = np.full(variant.size, REPEAT_RATE)
        counts = np.where(converts, 1 + rng.poisson(extra), 0)
    else:
        assert model.per_visitor is not None  # _event_models guarantees one of the two
        counts = rng.poisson(np.asarray(model.per_visitor)[variant])
    return counts.astype(np.int64)


def _draw_values(
    model: _EventModel,
    variant: NDArray[np.int64],
    counts: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """One value per event (in visitor order), rounded to the cent; zeros without a mean effect."""
    total = int(counts.sum())
    if model.value is None:
        return np.zeros(total)
    if model.rate is not None:
        rate = np.asarray(model.rate)
        per_converter = (
            np.asarray(model.per_visitor) / rate
            if model.per_visitor is not None
            else np.full(rate.size, 1.0 + REPEAT_RATE)
        )
        per_event = np.asarray(model.value) / rate / per_converter
    else:
        assert model.per_visitor is not None
        per_event = np.asarray(model.value) / np.asarray(model.per_visitor)
    mean = np.repeat(per_event[variant], counts)
    noise = rng.lognormal(-(VALUE_SIGMA**2) / 2, VALUE_SIGMA, total)
    return np.asarray(np.round(mean * noise, 2), dtype=np.float64)


@dataclass(frozen=True)
class _Simulation:
    """One case study's visitors and events, ready to write."""

    experiment: Experiment
    visitors: list[str]
    arrivals_ms: NDArray[np.int64]
    variants: NDArray[np.int64]
    events: list[TrackEvent]
    devices: list[str]


def _simulate(
    case: CaseStudy, experiment: Experiment, *, seed: int, index: int, scale: float, end_ms: int
) -> _Simulation:
    rng = np.random.default_rng([seed, index])
    total = max(2, round(case.days * case.visitors_per_day * scale))
    start_ms = end_ms - case.days * DAY_MS
    # Arrivals stop an hour before the end so that events have time to happen.
    arrivals = np.sort(rng.integers(start_ms, end_ms - 3_600_000, total))
    visitors = [f"demo{seed}-{i:07d}" for i in range(total)]
    chosen = [decide(experiment, v).variant_index for v in visitors]
    enrolled = [i for i, c in enumerate(chosen) if c is not None]
    visitors = [visitors[i] for i in enrolled]
    arrivals = arrivals[enrolled]
    variant = np.asarray([chosen[i] for i in enrolled], dtype=np.int64)
    events: list[TrackEvent] = []
    for model in _event_models(case, len(experiment.variants)):
        counts = _draw_counts(model, variant, rng)
        values = _draw_values(model, variant, counts, rng)
        owner = np.repeat(np.arange(variant.size), counts)
        delays = rng.exponential(EVENT_DELAY_MS, owner.size).astype(np.int64) + 1_000
        # Each visitor's events follow one another: delays add up within a visitor.
        offsets = _within_visitor_cumsum(delays, counts)
        times = np.minimum(arrivals[owner] + offsets, end_ms - 1)
        for position, visitor in enumerate(owner.tolist()):
            value = float(values[position])
            events.append(
                TrackEvent(
                    visitor_id=visitors[visitor],
                    event=model.event,
                    value=value,
                    value_text=repr(value),
                    timestamp_ms=int(times[position]),
                )
            )
    # The device a visitor came on, given at assignment as a segment for notebooks. Drawn from
    # a stream of its own, so adding it left every other draw (and the demo's lifts) unchanged.
    devices = np.random.default_rng([seed, index, 1]).choice(
        DEVICES, size=len(visitors), p=DEVICE_SHARES
    )
    return _Simulation(
        experiment, visitors, arrivals.astype(np.int64), variant, events, devices.tolist()
    )


def _within_visitor_cumsum(
    delays: NDArray[np.int64], counts: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Running sum of ``delays`` restarting at each visitor (events are grouped by visitor)."""
    running = np.cumsum(delays)
    first = np.cumsum(counts) - counts
    before = np.concatenate(([0], running))[first]
    return np.asarray(running - np.repeat(before, counts), dtype=np.int64)


async def _write(store: Store, sim: _Simulation, progress: Progress, task: TaskID) -> None:
    """Record every exposure, then every event, through the store's Lua scripts."""
    experiment = sim.experiment
    variants = sim.variants.tolist()
    arrivals = sim.arrivals_ms.tolist()
    moved: list[str] = []

    async def expose(worker: int) -> None:
        # Each worker walks its own stride of visitors; WORKERS calls are in flight at once.
        for done, i in enumerate(range(worker, len(variants), WORKERS), start=1):
            visitor = sim.visitors[i]
            exposure = await store.record_exposure(
                experiment,
                visitor,
                variants[i],
                now_ms=arrivals[i],
                attributes_json=encode_attributes({"device": sim.devices[i]}),
            )
            if exposure.variant_index != variants[i]:
                moved.append(visitor)
            if done % PROGRESS_STEP == 0:
                progress.advance(task, PROGRESS_STEP)

    await asyncio.gather(*(expose(w) for w in range(WORKERS)))
    progress.update(task, completed=len(variants))
    if moved:
        raise RuntimeError(f"{experiment.key}: {len(moved)} demo visitors were already recorded")
    for start in range(0, len(sim.events), EVENT_BATCH):
        batch = sim.events[start : start + EVENT_BATCH]
        outcomes = await store.track([experiment], batch)
        refused = [o.get(experiment.key) for o in outcomes]
        refused = [o for o in refused if o is not TrackOutcome.CREDITED]
        if refused:
            raise RuntimeError(f"{experiment.key}: {len(refused)} demo events were not credited")
        progress.advance(task, len(batch))


async def _existing(store: Store, key: str) -> Experiment | None:
    try:
        return await store.get_experiment(key)
    except ExperimentNotFoundError:
        return None


async def load_demo(
    store: Store,
    *,
    seed: int,
    scale: float = 1.0,
    reset: bool = False,
    end_ms: int | None = None,
    studies: Sequence[CaseStudy] = CASE_STUDIES,
    progress: Progress | None = None,
) -> list[DemoOutcome]:
    """Create and fill the case-study experiments; existing ones are skipped unless ``reset``.

    ``scale`` multiplies each case study's traffic (1.0 is the published-size demo); ``end_ms``
    is the simulated "now" (default: the clock), so the experiments end where the reader is.
    """
    if not 0 < scale <= 10:
        raise ValueError(f"scale must be in (0, 10], got {scale}")
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    progress = progress or Progress(disable=True)
    outcomes: list[DemoOutcome] = []
    for index, case in enumerate(studies):
        began = time.perf_counter()
        existing = await _existing(store, case.key)
        if existing is not None and not reset:
            outcomes.append(DemoOutcome(case.key, 0, 0, True, 0.0))
            continue
        if existing is not None:
            await store.delete_experiment(existing)
        start_s = (end_ms - case.days * DAY_MS) / 1000
        draft = Experiment.model_validate({**case.definition, "created_at": start_s})
        experiment = await store.create_experiment(transition(draft, Status.RUNNING, now=start_s))
        try:
            sim = _simulate(case, experiment, seed=seed, index=index, scale=scale, end_ms=end_ms)
            task = progress.add_task(case.key, total=len(sim.visitors) + len(sim.events))
            await _write(store, sim, progress, task)
        except BaseException:
            # A half-written experiment would be skipped by the next run: remove it.
            await store.delete_experiment(experiment)
            raise
        outcomes.append(
            DemoOutcome(
                case.key, len(sim.visitors), len(sim.events), False, time.perf_counter() - began
            )
        )
    return outcomes


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("visitors + events"),
        TimeElapsedColumn(),
        console=console,
    )


async def _load(
    settings: Settings, seed: int, scale: float, reset: bool, console: Console
) -> list[DemoOutcome]:
    assert settings.redis_url is not None
    client = connect(settings.redis_url, cluster=settings.redis_cluster)
    store = Store(client, Keyspace(settings.key_prefix), log_max_length=settings.log_max_length)
    try:
        with _progress(console) as progress:
            return await load_demo(store, seed=seed, scale=scale, reset=reset, progress=progress)
    finally:
        await client.aclose()


def run_demo(
    settings: Settings,
    *,
    seed: int,
    scale: float = 1.0,
    reset: bool = False,
    console: Console | None = None,
) -> None:
    """Load the case-study demo into the store of ``settings``, showing a progress bar.

    With no ``redis_url`` the embedded Redis in ``settings.data_dir`` is started for the load
    (stop a running ``abacus serve`` on that directory first, or use ``abacus serve --demo``).
    """
    console = console or Console()
    embedded = None
    if settings.redis_url is None:
        from dataclasses import replace

        from experiments.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(settings.data_dir).start()
        settings = replace(settings, redis_url=embedded.url)
    try:
        began = time.perf_counter()
        outcomes = run_sync(lambda: _load(settings, seed, scale, reset, console))
    finally:
        if embedded is not None:
            embedded.stop()
    for outcome in outcomes:
        if outcome.skipped:
            console.print(
                f"{outcome.key}: already exists, left as it is (abacus demo --reset recreates it)",
                soft_wrap=True,
            )
        else:
            console.print(
                f"{outcome.key}: {outcome.visitors:,} visitors, {outcome.events:,} events "
                f"in {outcome.seconds:.1f} s",
                soft_wrap=True,
            )
    console.print(f"demo loaded in {time.perf_counter() - began:.1f} s (seed {seed})")
