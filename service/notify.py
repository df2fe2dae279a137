"""Webhook notifications: which events an experiment's read-out raises, and their delivery.

Every ``ABACUS_NOTIFY_INTERVAL_SECONDS`` the service reads out each running experiment and
:func:`find_notifications` names what is worth a message: ``srm`` (the sample-ratio check
fails), ``guardrail_harmed`` (a guardrail metric is significantly worse with some variant, one
event per metric) and ``primary_significant`` (the primary metric is significant on the
always-valid mSPRT test, Holm-adjusted over the variants, while the sample-ratio check passes).
Each is claimed in Redis with one ``HSETNX`` before it is sent, so however many workers or
processes run the loop, one sends it, once; a condition that clears and comes back is not sent
again.

A delivery is a JSON POST of an :class:`EventBody` to the workspace's URL, signed with its
secret when one is set, retried with exponential backoff and jitter (:class:`RetryPolicy`) on
connection errors, timeouts, 5xx and 429, never on another 4xx and never to a redirect's
target. Deliveries run as tasks of their own, so a slow or failing receiver holds up neither
the loop, the other experiments' events nor any request; each attempt goes to the delivery log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

import stats
from experiments.definitions import Experiment, Status
from experiments.errors import AbacusError, StoreUnavailableError
from experiments.store import Store
from experiments.store.webhooks import notification_field
from experiments.webhooks import (
    SIGNATURE_HEADER,
    DeliveryAttempt,
    EventKind,
    RetryPolicy,
    Webhook,
    sign,
)
from service import __version__
from service.readout.build import build_results
from service.readout.model import ExperimentResults, Interval, MetricResults, VariantResult

__all__ = [
    "EventBody",
    "ExperimentRef",
    "Figures",
    "Notification",
    "Notifier",
    "find_notifications",
]

log = logging.getLogger("abacus.notify")

CLOSE_WAIT_SECONDS = 2.0
"""How long stopping waits for the loop and the deliveries to end."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figures(_Frozen):
    """The numbers behind an event; those that do not apply are ``None``."""

    variant: str | None
    """The variant compared with the control (``None`` for ``srm`` and ``ping``)."""
    relative_lift: float | None
    relative_ci: Interval | None
    absolute_lift: float | None
    absolute_ci: Interval | None
    pvalue: float | None
    """The fixed-horizon p-value, Holm-adjusted within the metric's family."""
    sequential_pvalue: float | None
    """The always-valid (mSPRT) p-value."""
    srm_pvalue: float | None
    visitors: dict[str, int]
    """Visitors per variant."""


class Notification(_Frozen):
    """An event an experiment's read-out raises, before it is claimed and sent."""

    kind: EventKind
    metric: str | None
    outcome: Literal["better", "worse"] | None
    """For a comparison: whether the variant moved the metric the better or the worse way."""
    figures: Figures
    message: str


class ExperimentRef(_Frozen):
    key: str
    name: str


class EventBody(_Frozen):
    """The JSON body POSTed to the webhook."""

    event: EventKind
    delivery_id: str
    """Unique per event; every retry of an event carries the same (receivers may dedupe)."""
    timestamp: datetime
    experiment: ExperimentRef | None
    metric: str | None
    outcome: Literal["better", "worse"] | None
    figures: Figures | None
    report_path: str | None
    """The experiment's report page, relative to the service's address."""
    message: str


def _figures(results: ExperimentResults, row: VariantResult | None) -> Figures:
    return Figures(
        variant=None if row is None else row.variant,
        relative_lift=None if row is None else row.relative_lift,
        relative_ci=None if row is None else row.relative_ci,
        absolute_lift=None if row is None else row.absolute_lift,
        absolute_ci=None if row is None else row.absolute_ci,
        pvalue=None if row is None else row.adjusted_pvalue,
        sequential_pvalue=None if row is None else row.sequential_pvalue,
        srm_pvalue=results.srm.pvalue,
        visitors=results.srm.visitors,
    )


def _outcome(metric: MetricResults, row: VariantResult) -> Literal["better", "worse"] | None:
    lift = row.absolute_lift
    if lift is None or lift == 0:
        return None
    return "better" if (lift < 0) == (metric.direction == "lower") else "worse"


def _significant_primary(results: ExperimentResults) -> Notification | None:
    primary = results.primary
    if primary is None or results.srm.mismatch:
        return None
    rows = [r for r in primary.treatments if r.sequential_pvalue is not None]
    if not rows:
        return None
    adjusted = stats.adjust_pvalues([r.sequential_pvalue or 0.0 for r in rows], method="holm")
    p, row = min(zip(adjusted, rows, strict=True), key=lambda pair: pair[0])
    if not p < results.alpha:
        return None
    outcome = _outcome(primary, row)
    return Notification(
        kind=EventKind.PRIMARY_SIGNIFICANT,
        metric=primary.name,
        outcome=outcome,
        figures=_figures(results, row),
        message=f"{primary.name} is significant on the always-valid test with {row.variant}"
        f" ({outcome or 'no change'}; always-valid p = {p:.3g}, "
        f"alpha {results.alpha:.3g}).",
    )


def find_notifications(results: ExperimentResults) -> list[Notification]:
    """The events the read-out of a running experiment raises (pure)."""
    found = []
    srm = results.srm
    if srm.mismatch:
        found.append(
            Notification(
                kind=EventKind.SRM,
                metric=None,
                outcome=None,
                figures=_figures(results, None),
                message=f"Sample-ratio mismatch in {results.experiment}: visitors "
                f"{srm.visitors} do not fit the configured weights (p = {srm.pvalue or 0:.3g});"
                " the results cannot be trusted until the cause is found.",
            )
        )
    metrics = {m.name: m for m in results.metrics}
    seen: set[str] = set()
    for alert in results.guardrail_alerts:
        if alert.reason != "significantly_worse" or alert.metric in seen:
            continue
        seen.add(alert.metric)
        metric = metrics[alert.metric]
        row = next(r for r in metric.treatments if r.variant == alert.variant)
        found.append(
            Notification(
                kind=EventKind.GUARDRAIL_HARMED,
                metric=alert.metric,
                outcome="worse",
                figures=_figures(results, row),
                message=alert.sentence,
            )
        )
    significant = _significant_primary(results)
    if significant is not None:
        found.append(significant)
    return found


async def read_out(store: Store, experiment: Experiment, now: float) -> ExperimentResults:
    """The read-out of ``experiment`` as ``GET .../results`` builds it (no breakdown)."""
    totals = await store.totals(experiment)
    daily = await store.daily_totals(experiment)
    return await run_in_threadpool(build_results, experiment, totals, daily, now)


class Notifier:
    """Finds the events of the running experiments and delivers them to the webhook.

    ``draw`` gives the jitter's uniform draws and ``clock`` the time, so tests can pin both.
    """

    def __init__(
        self,
        store: Store,
        *,
        policy: RetryPolicy | None = None,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy or RetryPolicy()
        self.draw = draw
        self.clock = clock
        self._http = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: events go to the URL only
            timeout=self.policy.timeout_seconds,
            headers={"User-Agent": f"Abacus/{__version__}"},
        )
        self._deliveries: set[asyncio.Task[DeliveryAttempt]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    def start(self, interval_seconds: float) -> None:
        """Run :meth:`check` every ``interval_seconds`` in the background (0: never)."""
        if interval_seconds > 0:
            self._loop = asyncio.create_task(self._run(interval_seconds))

    async def aclose(self) -> None:
        """Stop the loop and any delivery still retrying (what was claimed but not yet
        delivered is not sent), then close the HTTP client.

        A Redis call in flight can absorb a cancellation (inside its connection pool's wait),
        so the tasks also stop at their next step by themselves, and are awaited only briefly.
        """
        self._stopped.set()
        tasks = [t for t in (self._loop, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_WAIT_SECONDS)
        await self._http.aclose()

    async def idle(self) -> None:
        """Wait until every delivery started so far has finished (retries included)."""
        while self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)

    async def _run(self, interval_seconds: float) -> None:
        while not self._stopped.is_set():
            try:
                await self.check()
            except StoreUnavailableError as exc:
                log.warning("notifications: store unavailable (%s); retrying", exc)
            except Exception:  # a loop that died silently would send nothing, ever again
                log.exception("notifications: the pass failed; the next one runs as usual")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), interval_seconds)

    async def check(self) -> list[str]:
        """One pass over the running experiments: claim and start sending every new event.

        Returns the delivery ids started; their deliveries go on in the background."""
        webhook = await self.store.webhook()
        if webhook is None:
            return []
        _, experiments = await self.store.definitions()
        started = []
        for key, experiment in sorted(experiments.items()):
            if self._stopped.is_set():
                break
            if experiment.status is not Status.RUNNING:
                continue
            try:
                results = await read_out(self.store, experiment, self.clock())
            except StoreUnavailableError:
                raise
            except AbacusError as exc:  # deleted meanwhile: the others go on
                log.info("notifications: %s not read out: %s", key, exc)
                continue
            except Exception:  # one experiment's failing read-out must not starve the others
                log.exception("notifications: the read-out of %s failed", key)
                continue
            for found in find_notifications(results):
                delivery_id = uuid.uuid4().hex
                field = notification_field(key, experiment.generation, found.kind, found.metric)
                if await self.store.claim_notification(field, delivery_id):
                    self._spawn(self._deliver(webhook, self._body(results, found, delivery_id)))
                    started.append(delivery_id)
        return started

    def _body(self, results: ExperimentResults, found: Notification, delivery_id: str) -> EventBody:
        return EventBody(
            event=found.kind,
            delivery_id=delivery_id,
            timestamp=datetime.fromtimestamp(self.clock(), UTC),
            experiment=ExperimentRef(key=results.experiment, name=results.name),
            metric=found.metric,
            outcome=found.outcome,
            figures=found.figures,
            report_path=f"/experiments/{results.experiment}",
            message=found.message,
        )

    def _spawn(self, work: Coroutine[Any, Any, DeliveryAttempt]) -> None:
        task = asyncio.create_task(work)
        self._deliveries.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[DeliveryAttempt]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=error)

    async def ping(self) -> DeliveryAttempt | None:
        """Send a ``ping`` event now, once (no retries), and return the attempt; ``None``
        when no webhook is set."""
        webhook = await self.store.webhook()
        if webhook is None:
            return None
        body = EventBody(
            event=EventKind.PING,
            delivery_id=uuid.uuid4().hex,
            timestamp=datetime.fromtimestamp(self.clock(), UTC),
            experiment=None,
            metric=None,
            outcome=None,
            figures=None,
            report_path=None,
            message="A test event from Abacus: the webhook is reachable.",
        )
        return await self._deliver(webhook, body, max_attempts=1)

    async def _deliver(
        self, webhook: Webhook, body: EventBody, *, max_attempts: int | None = None
    ) -> DeliveryAttempt:
        """POST ``body`` until it is delivered, refused or out of attempts; the last attempt."""
        content = body.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "X-Abacus-Event": body.event.value,
            "X-Abacus-Delivery": body.delivery_id,
        }
        if webhook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(webhook.secret, content)
        attempts = max_attempts or self.policy.max_attempts
        attempt = 1
        while True:
            record, retry_after = await self._post(webhook.url, content, headers)
            retrying = record.outcome == "retrying" and attempt < attempts
            wait = (
                self.policy.delay_seconds(attempt, self.draw(), retry_after) if retrying else None
            )
            error = record.error
            if record.outcome == "retrying" and not retrying and attempts > 1:
                error = f"{error}; gave up after {attempts} attempts"
            entry = DeliveryAttempt(
                delivery_id=body.delivery_id,
                event=body.event,
                experiment=None if body.experiment is None else body.experiment.key,
                metric=body.metric,
                url=webhook.url,
                attempt=attempt,
                max_attempts=attempts,
                at=record.at,
                status_code=record.status_code,
                outcome="retrying" if retrying else record.outcome_if_final,
                error=error,
                retry_in_seconds=wait,
                duration_ms=record.duration_ms,
            )
            await self._log(entry)
            if wait is None or self._stopped.is_set():
                return entry
            await asyncio.sleep(wait)
            attempt += 1

    async def _log(self, entry: DeliveryAttempt) -> None:
        try:
            await self.store.record_delivery(entry)
        except StoreUnavailableError as exc:  # the delivery itself goes on
            log.warning("webhook delivery %s not logged: %s", entry.delivery_id, exc)
        if entry.outcome == "failed":
            log.warning("webhook delivery %s failed: %s", entry.delivery_id, entry.error)

    async def _post(
        self, url: str, content: bytes, headers: dict[str, str]
    ) -> tuple[_Answer, float | None]:
        """One POST: what happened, and the receiver's ``Retry-After`` in seconds if any."""
        at = datetime.fromtimestamp(self.clock(), UTC)
        started = time.perf_counter()
        status: int | None = None
        retry_after: float | None = None
        try:
            # streamed and never read: a receiver's answer body is not ours to hold
            async with self._http.stream("POST", url, content=content, headers=headers) as response:
                status = response.status_code
                location = response.headers.get("location")
                retry_after = _seconds(response.headers.get("retry-after"))
        except httpx.TimeoutException:
            error: str | None = f"no answer within {self.policy.timeout_seconds:g} s"
            retryable = True
        except httpx.TransportError as exc:
            error = f"could not connect or send: {type(exc).__name__}: {exc}"
            retryable = True
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"could not send: {type(exc).__name__}: {exc}"
            retryable = False
        else:
            error, retryable = _judge(status, location)
        duration_ms = (time.perf_counter() - started) * 1000
        outcome: Literal["delivered", "retrying", "failed"] = (
            "delivered" if error is None else "retrying" if retryable else "failed"
        )
        answer = _Answer(
            at=at, status_code=status, outcome=outcome, error=error, duration_ms=duration_ms
        )
        return answer, retry_after


class _Answer(_Frozen):
    at: datetime
    status_code: int | None
    outcome: Literal["delivered", "retrying", "failed"]
    error: str | None
    duration_ms: float

    @property
    def outcome_if_final(self) -> Literal["delivered", "failed"]:
        return "delivered" if self.outcome == "delivered" else "failed"


def _judge(status: int, location: str | None) -> tuple[str | None, bool]:
    """(why the answer is a failure or None, whether to retry) for an HTTP status."""
    if 200 <= status < 300:
        return None, False
    if status == 429 or status >= 500:
        return f"HTTP {status}", True
    if 300 <= status < 400:
        return (
            f"HTTP {status}: the redirect to {location!r} is not followed "
            "(events go to the configured URL only)",
            False,
        )
    return f"HTTP {status}: not retried (the receiver refused the event)", False


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` given in seconds (an HTTP date is ignored: the backoff applies)."""
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
