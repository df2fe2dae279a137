"""HTTP request and response bodies of the public API, validated at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from experiments.attributes import check_attributes
from experiments.limits import MAX_ATTRIBUTE_VALUE_CHARACTERS, MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES

__all__ = [
    "AssignRequest",
    "AssignResponse",
    "BatchTrackRequest",
    "TrackRequest",
    "TrackResponse",
    "VisitorId",
]

VISITOR_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
VISITOR_ID_RULE = "1-200 characters, no control characters"
EXPERIMENT_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EXPERIMENT_KEY_RULE = "1-64 of a-z, 0-9, - and _, starting with a letter or digit"

VisitorId = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=VISITOR_ID_PATTERN, description=VISITOR_ID_RULE),
]
ExperimentKey = Annotated[
    str, Field(pattern=EXPERIMENT_KEY_PATTERN, description=EXPERIMENT_KEY_RULE)
]
AttributeValue = str | float | bool | None | list[str | float | bool]


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


class AssignResponse(BaseModel):
    visitor_id: str
    assignments: dict[str, str | None]
    recorded: bool = Field(description="false when the exposure could not be stored")


class TrackRequest(_Strict):
    visitor_id: VisitorId
    event: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    value: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    event_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    timestamp: datetime | None = Field(
        default=None, description="when it happened (ISO 8601 or seconds since the epoch)"
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
