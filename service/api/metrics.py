"""Prometheus metrics of one app instance, served at ``/metrics``.

Each app gets its own registry (no module-level state), so several apps in one process (tests)
do not share counters. With several uvicorn workers each worker reports its own counts; sum
them by instance in Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from experiments.store import TrackOutcome

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.assignments = Counter(
            "abacus_assignments",
            "Variant answers given, by whether the exposure was stored",
            ["recorded"],
            registry=self.registry,
        )
        # bound children: labels() costs a locked dict lookup per call on the hot path
        self.assigned_recorded = self.assignments.labels("true")
        self.assigned_unrecorded = self.assignments.labels("false")
        self.exposures = Counter(
            "abacus_exposures_recorded",
            "First exposures recorded (a visitor entering an experiment)",
            registry=self.registry,
        )
        self.events = Counter(
            "abacus_events",
            "Tracked events per experiment outcome (credited, duplicate, not_exposed, ...)",
            ["outcome"],
            registry=self.registry,
        )
        self.events_by_outcome = {o: self.events.labels(o.name.lower()) for o in TrackOutcome}
        self.activity_log_failures = Counter(
            "abacus_activity_log_failures",
            "Tracked events the activity log could not take (best-effort; none were credited "
            "less for it)",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "abacus_store_errors",
            "Requests that found Redis unavailable",
            registry=self.registry,
        )
        self.experiments = Gauge(
            "abacus_experiments",
            "Experiments by status, as of the last definitions refresh",
            ["status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
