"""Public endpoints called by browsers and servers: assignment, tracking, health."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, unquote_to_bytes

import orjson
from fastapi import APIRouter, Request, Response
from starlette.datastructures import State

from experiments.assignment import Decision, Reason, decide
from experiments.bounded import BoundedDict
from experiments.definitions import Experiment, Status
from experiments.errors import ConflictError, InvalidDefinitionError, StoreUnavailableError
from experiments.limits import (
    KEY_PATTERN,
    KEY_RULE,
    MAX_EVENT_AGE_SECONDS,
    MAX_EVENT_SKEW_SECONDS,
    VISITOR_ID_PATTERN,
    VISITOR_ID_RULE,
)
from experiments.store import Store, TrackEvent, TrackOutcome, encode_attributes
from experiments.store.tracking import OUTCOMES
from service.api.app import ERROR_CODES, RETRY_AFTER, error_body
from service.api.definitions_cache import DefinitionCache
from service.api.deps import Admin, Definitions, StoreDep
from service.api.metrics import Metrics
from service.api.schemas import (
    ERROR_DESCRIPTIONS,
    AssignRequest,
    AssignResponse,
    BatchTrackRequest,
    ErrorBody,
    ExposureRequest,
    ExposureResponse,
    TrackRequest,
    TrackResponse,
    error_responses,
)

__all__ = [
    "ASSIGN_ONE_OPENAPI",
    "assign_many_answer",
    "assign_one",
    "assign_one_answer",
    "assign_one_params",
    "encoded_track_responses",
    "partly_unavailable",
    "prepare_track",
    "query_params",
    "record_track",
    "router",
    "track_responses",
]

router = APIRouter(tags=["public"])


_EXPERIMENT_KEY = re.compile(KEY_PATTERN)
_VISITOR_ID = re.compile(VISITOR_ID_PATTERN)


def _raw_utf8(query_string: bytes, name: str) -> bool:
    """Whether every value of ``name`` in the raw query string is valid UTF-8.

    Starlette decodes bytes that are not UTF-8 to U+FFFD, which would merge different raw ids
    into one visitor; only a value holding U+FFFD is checked against its raw bytes.
    """
    for pair in query_string.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        if unquote_to_bytes(raw_name.replace(b"+", b" ")) == name.encode():
            try:
                unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                return False
    return True


def _json(payload: object) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def _decisions(
    experiments: Sequence[Experiment],
    visitor_id: str,
    attributes: Mapping[str, object] | None,
    known: Mapping[str, Experiment],
) -> tuple[list[Decision], list[Decision]]:
    """The decision per experiment, and those of the holdouts covering them (to record the
    visitor's membership: a holdout compares its held-out share with everyone else)."""
    decisions = [
        decide(e, visitor_id, attributes, holdout=known.get(e.holdout) if e.holdout else None)
        for e in experiments
    ]
    asked = {e.key for e in experiments}
    holdouts = [
        known[h]
        for h in dict.fromkeys(e.holdout for e in experiments if e.holdout)
        if h is not None and h in known and h not in asked
    ]
    return decisions, [decide(h, visitor_id, attributes) for h in holdouts]


async def _assign(
    store: Store,
    metrics: Metrics,
    decisions: list[Decision],
    visitor_id: str,
    attributes_json: str = "{}",
    *,
    also_record: Sequence[Decision] = (),
) -> tuple[dict[str, str | None], bool]:
    """Variant per experiment (recording first exposures) and whether all were recorded.

    A decision that records goes through the store even when the hash enrols the visitor in no
    variant: a visitor recorded before coverage was lowered (or the condition changed) stays
    where he is. ``also_record`` are decisions recorded but not answered (holdouts).
    """
    answer = {d.experiment.key: d.variant for d in decisions}
    to_record = [d for d in (*decisions, *also_record) if d.records]
    recorded = True
    if to_record:
        try:
            # answered within the store's timeout (the service's Redis timeout)
            exposures = await store.record_exposures(
                [(d.experiment, d.variant_index) for d in to_record],
                visitor_id,
                now_ms=int(time.time() * 1000),
                attributes_json=attributes_json,
            )
        except StoreUnavailableError:
            # Answer from the hash so the page still renders; the caller learns it was not stored.
            recorded = False
            metrics.store_errors.inc()
        else:
            new = sum(e.recorded_now for e in exposures)
            if new:
                metrics.exposures.inc(new)
            for d, exposure in zip(to_record, exposures, strict=True):
                if d.experiment.key not in answer:
                    continue
                index = exposure.variant_index
                answer[d.experiment.key] = (
                    None if index is None else d.experiment.variant_keys[index]
                )
    (metrics.assigned_recorded if recorded else metrics.assigned_unrecorded).inc(len(decisions))
    return answer, recorded


def query_params(query_string: bytes) -> dict[str, str]:
    """A query string's parameters, the last of a repeated name winning: what Starlette's
    ``QueryParams`` gives (``parse_qsl``), without its cost for pieces with nothing to decode."""
    params: dict[str, str] = {}
    for piece in query_string.decode("latin-1").split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:
            name, value = unquote(name.replace("+", " ")), unquote(value.replace("+", " "))
        params[name] = value
    return params


def assign_one_params(query_string: bytes) -> tuple[str, str, list[dict[str, object]]]:
    """The experiment and visitor id of ``GET /v1/assign``, and what is wrong with them.

    Checked against the same patterns the pydantic schemas use; a problem names the field, the
    value and the rule.
    """
    params = query_params(query_string)
    experiment = params.get("experiment", "")
    visitor_id = params.get("visitor_id", "")
    problems: list[dict[str, object]] = [
        {"field": name, "message": f"must be {rule}", "value": value[:200]}
        for name, value, pattern, rule in (
            ("experiment", experiment, _EXPERIMENT_KEY, KEY_RULE),
            ("visitor_id", visitor_id, _VISITOR_ID, VISITOR_ID_RULE),
        )
        if pattern.fullmatch(value) is None
    ]
    if "\ufffd" in visitor_id and not _raw_utf8(query_string, "visitor_id"):
        problems.append(
            {
                "field": "visitor_id",
                "message": "must be UTF-8 text: its percent-encoded bytes are not valid UTF-8",
                "value": visitor_id[:200],
            }
        )
    return experiment, visitor_id, problems


async def assign_one_answer(state: State, experiment: str, visitor_id: str) -> dict[str, object]:
    """The answer of a valid ``GET /v1/assign``, the exposure recorded first.

    Raises what the definitions cache raises (unknown experiment, no copy yet) before any write.
    """
    definition = state.definitions.peek(experiment) or await state.definitions.get(experiment)
    holdouts: list[Decision] = []
    if definition.holdout is None:
        decisions = [decide(definition, visitor_id)]
    else:
        decisions, holdouts = _decisions(
            [definition], visitor_id, None, await state.definitions.all()
        )
    answer, recorded = await _assign(
        state.store,
        state.metrics,
        decisions,
        visitor_id,
        also_record=holdouts,
    )
    return {
        "experiment": experiment,
        "visitor_id": visitor_id,
        "variant": answer[experiment],
        "recorded": recorded,
    }


async def assign_one(request: Request) -> Response:
    """``GET /v1/assign?experiment=KEY&visitor_id=ID``: a plain Starlette endpoint.

    FastAPI's per-request machinery costs more than the Redis round trip on a route this small,
    so this one validates its two query parameters itself (:func:`assign_one_params`) and
    answers with the same error body. Documented in OpenAPI by :data:`ASSIGN_ONE_OPENAPI`.
    Served by :mod:`service.api.fast` in front of the app; this is the reference it is held to.
    """
    experiment, visitor_id, problems = assign_one_params(request.scope["query_string"])
    if problems:
        message = "; ".join(f"{p['field']}: {p['message']}, got {p['value']!r}" for p in problems)
        return Response(
            orjson.dumps(error_body(ERROR_CODES[422], message, problems)),
            status_code=422,
            media_type="application/json",
        )
    return _json(await assign_one_answer(request.app.state, experiment, visitor_id))


ASSIGN_ONE_OPENAPI: dict[str, object] = {
    "tags": ["public"],
    "summary": "Assign one visitor to one experiment",
    "operationId": "assign_one",
    "parameters": [
        {
            "name": "experiment",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "pattern": KEY_PATTERN},
        },
        {
            "name": "visitor_id",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "pattern": VISITOR_ID_PATTERN},
        },
    ],
    "responses": {
        "200": {
            "description": '{"experiment", "visitor_id", "variant": KEY or null, '
            '"recorded": false when the exposure could not be stored}'
        },
        **{
            str(status): {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            }
            for status in (400, 404, 405, 422, 503)
        },
    },
}


@router.post(
    "/v1/assign",
    response_model=AssignResponse,
    summary="Assign to several experiments",
    responses=error_responses(404, 413, 422, 503),
)
async def assign_many(request: Request, body: AssignRequest) -> dict[str, object]:
    return await assign_many_answer(request.app.state, body)


async def assign_many_answer(state: State, body: AssignRequest) -> dict[str, object]:
    """The answer of ``POST /v1/assign`` (an :class:`AssignResponse`'s fields, in its order),
    exposures recorded first.

    Raises what the definitions cache raises (unknown experiment, no copy yet) before any write.
    """
    definitions: DefinitionCache = state.definitions
    if body.experiments is None:
        chosen: Sequence[Experiment] = await definitions.running()
    else:
        chosen = [
            definitions.peek(key) or await definitions.get(key)
            for key in dict.fromkeys(body.experiments)
        ]
    decisions, holdouts = _decisions(
        chosen, body.visitor_id, body.attributes, await definitions.all()
    )
    answer, recorded = await _assign(
        state.store,
        state.metrics,
        decisions,
        body.visitor_id,
        encode_attributes(body.attributes),
        also_record=holdouts,
    )
    return {"visitor_id": body.visitor_id, "assignments": answer, "recorded": recorded}


@router.post(
    "/v1/exposures",
    response_model=ExposureResponse,
    summary="Record an exposure an SDK decided (GrowthBook's trackingCallback); idempotent",
    responses={
        **error_responses(404, 503),
        409: {
            "model": ErrorBody,
            "description": "the experiment is not running, or the hash disagrees",
        },
    },
)
async def exposures(
    request: Request, body: ExposureRequest, store: StoreDep, definitions: Definitions
) -> ExposureResponse:
    """Record that ``visitor_id`` saw ``variant`` of ``experiment``, once.

    The SDK evaluated the condition on its own attributes, so the condition is not re-checked;
    the hash, the namespace and the holdout are: a variant the definition cannot give this
    visitor is refused with 409. A visitor recorded earlier keeps the recorded variant, and a
    repeated call counts nothing again. A visitor pinned for QA is answered, not recorded.
    """
    experiment = await definitions.get(body.experiment)
    if experiment.status is not Status.RUNNING:
        raise ConflictError(
            f"experiment {experiment.key!r} is {experiment.status.value}: exposures are "
            "recorded only while it runs"
        )
    if body.variant not in experiment.variant_keys:
        raise InvalidDefinitionError(
            f"variant must be one of {experiment.variant_keys}, got {body.variant!r}"
        )
    holdout = _holdout_of(experiment, await definitions.all())
    decision = decide(
        experiment, body.visitor_id, body.attributes, holdout=holdout, check_condition=False
    )
    holdouts = [] if holdout is None else [decide(holdout, body.visitor_id, body.attributes)]
    if decision.reason is Reason.FORCED:
        return ExposureResponse(
            experiment=experiment.key,
            visitor_id=body.visitor_id,
            variant=decision.variant,
            recorded=False,
            recorded_now=False,
        )
    if decision.variant != body.variant:
        raise ConflictError(
            f"variant: the definition of {experiment.key!r} gives visitor "
            f"{body.visitor_id[:80]!r} {decision.variant!r} ({decision.reason.value}), "
            f"not {body.variant!r}"
        )
    try:
        recorded = await store.record_exposures(  # answered within the store's timeout
            [(experiment, decision.variant_index)]
            + [(h.experiment, h.variant_index) for h in holdouts if h.records],
            body.visitor_id,
            now_ms=int(time.time() * 1000),
            attributes_json=encode_attributes(body.attributes),
        )
    except StoreUnavailableError:
        request.app.state.metrics.store_errors.inc()
        raise
    metrics: Metrics = request.app.state.metrics
    new = sum(e.recorded_now for e in recorded)
    if new:
        metrics.exposures.inc(new)
    index = recorded[0].variant_index
    return ExposureResponse(
        experiment=experiment.key,
        visitor_id=body.visitor_id,
        variant=None if index is None else experiment.variant_keys[index],
        recorded=True,
        recorded_now=recorded[0].recorded_now,
    )


def _holdout_of(experiment: Experiment, known: Mapping[str, Experiment]) -> Experiment | None:
    return known.get(experiment.holdout) if experiment.holdout else None


def _to_event(body: TrackRequest, now: float, field: str) -> TrackEvent:
    when = now if body.timestamp is None else body.timestamp.timestamp()
    if not now - MAX_EVENT_AGE_SECONDS <= when <= now + MAX_EVENT_SKEW_SECONDS:
        raise InvalidDefinitionError(
            f"{field}timestamp must be within the last {MAX_EVENT_AGE_SECONDS // 86400} days and "
            f"at most {MAX_EVENT_SKEW_SECONDS} s ahead of the server clock, got {body.timestamp}"
        )
    value = 0.0 if body.value is None else float(body.value)
    return TrackEvent(
        body.visitor_id, body.event, value, repr(value), int(when * 1000), body.event_id
    )


def _count(metrics: Metrics, outcomes: list[dict[str, TrackOutcome]]) -> None:
    counts = [0] * len(OUTCOMES)
    for outcome in outcomes:
        for kind in outcome.values():
            counts[kind] += 1
    counters = metrics.events_by_outcome
    for kind, count in zip(OUTCOMES, counts, strict=True):
        if count:
            counters[kind].inc(count)


_RESPONSE_FIELD = {TrackOutcome[name.upper()]: name for name in TrackResponse.model_fields}
"""The :class:`TrackResponse` field that lists the experiments of each outcome."""


def _response_lists(outcome: dict[str, TrackOutcome]) -> dict[str, list[str]]:
    """The experiment keys of each outcome, sorted, by the :class:`TrackResponse` field (in
    the schema's order)."""
    lists: dict[str, list[str]] = {name: [] for name in TrackResponse.model_fields}
    for key, kind in sorted(outcome.items()):
        lists[_RESPONSE_FIELD[kind]].append(key)
    return lists


def _response(outcome: dict[str, TrackOutcome]) -> TrackResponse:
    return TrackResponse(**_response_lists(outcome))


def partly_unavailable(outcomes: list[dict[str, TrackOutcome]]) -> Response | None:
    """503 when some experiment could not be written, with exactly what was credited."""
    if not any(TrackOutcome.UNAVAILABLE in o.values() for o in outcomes):
        return None
    message = (
        "the store could not write some experiments; 'results' lists per event what was "
        "credited and what was not (unavailable): retry with the same event_id"
    )
    body = {
        **error_body(ERROR_CODES[503], message),
        "results": [_response(o).model_dump() for o in outcomes],
    }
    return Response(
        orjson.dumps(body), status_code=503, media_type="application/json", headers=RETRY_AFTER
    )


@router.post(
    "/v1/track",
    response_model=TrackResponse,
    summary="Record an event and credit it to every running experiment the visitor is in",
    responses={
        **error_responses(413, 422),
        503: {
            "description": "store unavailable; retry after the Retry-After delay. Nothing was "
            "credited, or the body's 'results' lists exactly what was"
        },
    },
)
async def track(request: Request, body: TrackRequest) -> TrackResponse | Response:
    events, running = await prepare_track(request.app.state, [body], batch=False)
    outcomes = await record_track(request.app.state, running, events)
    return partly_unavailable(outcomes) or _response(outcomes[0])


async def prepare_track(
    state: State, bodies: Sequence[TrackRequest], *, batch: bool
) -> tuple[list[TrackEvent], Sequence[Experiment]]:
    """The events to write and the running experiments; raises before anything is written
    (a timestamp out of range, no definitions copy yet)."""
    now = time.time()
    events = [
        _to_event(body, now, f"events.{i}." if batch else "") for i, body in enumerate(bodies)
    ]
    definitions: DefinitionCache = state.definitions
    return events, await definitions.running()


async def record_track(
    state: State, running: Sequence[Experiment], events: list[TrackEvent]
) -> list[dict[str, TrackOutcome]]:
    """Credit ``events``: the outcome per event and experiment. Raises
    :class:`StoreUnavailableError` only when nothing was credited."""
    metrics: Metrics = state.metrics
    store: Store = state.store
    try:
        # answered within the store's timeout (the service's Redis timeout)
        outcomes = await store.track(running, events)
    except StoreUnavailableError:
        metrics.store_errors.inc()
        raise
    _count(metrics, outcomes)
    return outcomes


@router.post(
    "/v1/track/batch",
    response_model=list[TrackResponse],
    summary="Record up to 1,000 events; all are validated before any is written",
    responses={
        **error_responses(413, 422),
        503: {"description": "store unavailable, as for /v1/track"},
    },
)
async def track_batch(request: Request, body: BatchTrackRequest) -> list[TrackResponse] | Response:
    events, running = await prepare_track(request.app.state, body.events, batch=True)
    outcomes = await record_track(request.app.state, running, events)
    return partly_unavailable(outcomes) or track_responses(outcomes)


def track_responses(outcomes: list[dict[str, TrackOutcome]]) -> list[TrackResponse]:
    return [_response(o) for o in outcomes]


def encoded_track_responses(outcomes: list[dict[str, TrackOutcome]]) -> list[bytes]:
    """Each outcome's :class:`TrackResponse` as JSON, as FastAPI would write it (the fields are
    lists of keys, so the model adds nothing to encode); outcomes are few and recur, so each is
    encoded once (per process, up to ``_MAX_ENCODED`` kept)."""
    out = []
    for outcome in outcomes:
        key = tuple(outcome.items())
        text = _ENCODED.get(key)
        if text is None:
            text = _ENCODED.put(key, orjson.dumps(_response_lists(outcome)))
        out.append(text)
    return out


_MAX_ENCODED = 4_096
_ENCODED: BoundedDict[tuple[tuple[str, TrackOutcome], ...], bytes] = BoundedDict(_MAX_ENCODED)
"""Outcomes already encoded: the running experiments give few distinct ones."""


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin key)",
    response_class=Response,
    dependencies=[Admin],
    responses=error_responses(401),
)
async def metrics(request: Request, definitions: Definitions) -> Response:
    state: Metrics = request.app.state.metrics
    try:
        experiments = await definitions.all()
        for status in Status:
            state.experiments.labels(status.value).set(
                sum(e.status is status for e in experiments.values())
            )
    except StoreUnavailableError:
        state.store_errors.inc()
    return Response(state.render(), media_type="text/plain; version=0.0.4")


@router.get(
    "/healthz",
    summary="Liveness and Redis reachability",
    responses={503: {"description": 'Redis unreachable: {"status": "degraded", "redis": why}'}},
)
async def healthz(store: StoreDep) -> Response:
    try:
        await store.ping()
    except StoreUnavailableError as exc:
        return Response(
            orjson.dumps({"status": "degraded", "redis": str(exc)}),
            status_code=503,
            media_type="application/json",
            headers=RETRY_AFTER,
        )
    return _json({"status": "ok", "redis": "ok"})
