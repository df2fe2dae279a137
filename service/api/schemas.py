"""HTTP request and response bodies of the public API, validated at the edge."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from experiments.attributes import check_attributes
from experiments.limits import (
    EVENT_ID_PATTERN,
    EVENT_ID_RULE,
    EVENT_NAME_PATTERN,
    EVENT_NAME_RULE,
    KEY_PATTERN,
    KEY_RULE,
    MAX_ATTRIBUTE_VALUE_CHARACTERS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    VISITOR_ID_MAX_LENGTH,
    VISITOR_ID_PATTERN,
    VISITOR_ID_RULE,
)

__all__ = [
    "ERROR_DESCRIPTIONS",
    "AssignRequest",
    "AssignResponse",
    "BatchTrackRequest",
    "ErrorBody",
    "ErrorDetail",
    "ExposureRequest",
    "ExposureResponse",
    "TrackRequest",
    "TrackResponse",
    "VisitorId",
    "error_responses",
]

VisitorId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=VISITOR_ID_MAX_LENGTH,
        pattern=VISITOR_ID_PATTERN,
        description=VISITOR_ID_RULE,
    ),
]
ExperimentKey = Annotated[str, Field(pattern=KEY_PATTERN, description=KEY_RULE)]
# strict: a JSON string is never read as a number, nor true as 1.0
Number = Annotated[float, Field(strict=True)]
AttributeScalar = str | Number | bool | None
AttributeValue = (
    AttributeScalar
    | list[str | Number | bool]
    | dict[Annotated[str, Field(max_length=64)], AttributeScalar | list[str | Number | bool]]
)
"""A value, a list, or an object one level deep (for conditions' dotted paths)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignRequest(_Strict):
    visitor_id: VisitorId
    experiments: list[ExperimentKey] | None = Field(
        default=None, max_length=100, description="omit for every running experiment"
    )
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        description=f"at most {MAX_ATTRIBUTES} keys, values of at most "
        f"{MAX_ATTRIBUTE_VALUE_CHARACTERS} characters, {MAX_ATTRIBUTES_BYTES} bytes in all",
    )

    _attribute_limits = field_validator("attributes")(check_attributes)


class ExposureRequest(_Strict):
    visitor_id: VisitorId
    experiment: ExperimentKey
    variant: ExperimentKey = Field(description="the variant key the SDK showed")
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        description="as in POST /v1/assign (logged, and the hash "
        "attribute when the experiment names one)",
    )

    _attribute_limits = field_validator("attributes")(check_attributes)


class ExposureResponse(BaseModel):
    experiment: str
    visitor_id: str
    variant: str | None = Field(description="the recorded variant (an earlier one wins)")
    recorded: bool = Field(description="false for a visitor pinned for QA (never recorded)")
    recorded_now: bool = Field(description="false when this exposure was already recorded")


class AssignResponse(BaseModel):
    visitor_id: str
    assignments: dict[str, str | None]
    recorded: bool = Field(description="false when the exposure could not be stored")


class TrackRequest(_Strict):
    visitor_id: VisitorId
    event: str = Field(pattern=EVENT_NAME_PATTERN, description=EVENT_NAME_RULE)
    value: Number | None = Field(
        default=None, ge=-1e12, le=1e12, allow_inf_nan=False, description="a JSON number"
    )
    event_id: str | None = Field(default=None, pattern=EVENT_ID_PATTERN, description=EVENT_ID_RULE)
    timestamp: AwareDatetime | None = Field(
        default=None,
        description="when it happened: ISO 8601 with a time zone (Z or +01:00), or seconds "
        "since the epoch",
    )


class BatchTrackRequest(_Strict):
    events: list[TrackRequest] = Field(min_length=1, max_length=1000)


class TrackResponse(BaseModel):
    credited: list[str] = Field(description="experiments the event was credited to")
    duplicate: list[str] = Field(default_factory=list, description="already counted")
    not_exposed: list[str] = Field(
        default_factory=list, description="running experiments that never exposed the visitor"
    )
    before_exposure: list[str] = Field(default_factory=list)
    unavailable: list[str] = Field(
        default_factory=list,
        description="experiments whose store could not be written (only in a 503's results): "
        "nothing was credited to them; retry with the same event_id",
    )


class ErrorDetail(BaseModel):
    field: str = Field(description="the field, parameter or header at fault ('body': the whole)")
    message: str
    value: Any = Field(description="the offending value (truncated), or null")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="a short code: invalid_request, not_found, unauthorized, ...")
    message: str = Field(description="what was wrong and what is allowed, in one sentence")
    details: list[ErrorDetail]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the Host header is not one this service answers (ABACUS_ALLOWED_HOSTS)",
    401: "admin key missing or wrong: send 'Authorization: Bearer <ABACUS_ADMIN_KEY>'",
    403: "a change sent from another site's page (Origin of another host)",
    404: "unknown experiment",
    405: "method not allowed on this path (the Allow header lists those that are)",
    409: "conflict with the experiment's state (e.g. changing a running experiment's variants)",
    413: "request body over the size limit",
    422: "invalid input: each detail names the field, the value and what is allowed",
    429: "too many failed sign-ins from this address; retry after Retry-After seconds",
    503: "the store is unavailable; retry after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the :class:`ErrorBody` schema."""
    return {s: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}
