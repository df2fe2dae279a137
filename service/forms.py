"""The experiment form of the pages: its fields read into the API's models, errors put back.

A form posts flat names that mirror the JSON the API takes (``key``, ``coverage``,
``variants.0.weight``, ``metrics.1.kind``, the radio ``primary`` naming the primary metric's
row), so :func:`read_spec` and :func:`read_patch` build the same :class:`ExperimentSpec` and
:class:`ExperimentPatch` a JSON body would, validated by the same rules, and a problem is
reported with the API's own ``details`` (:func:`service.api.app.field_errors`), moved to the
row the person typed it in. Blank rows are left out, so a spec's ``variants.1`` may be the
form's third row: :class:`FormState` keeps that mapping. Pure: no request, no store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from experiments.definitions import Experiment, ExperimentPatch, ExperimentSpec
from service.api.app import FieldError, field_errors

__all__ = [
    "METRIC_FIELDS",
    "VARIANT_FIELDS",
    "FormState",
    "Parsed",
    "form_of",
    "read_patch",
    "read_spec",
]

VARIANT_FIELDS = ("key", "name", "weight")
METRIC_FIELDS = ("name", "kind", "event", "numerator", "denominator", "direction")
MAX_ROWS = 20
_ROW_FIELD = re.compile(r"^(variants|metrics)\.(\d+)(\..*)?$")
_SHOWN = re.compile(
    r"^(key|name|hypothesis|coverage|variants|metrics)$"
    r"|^variants\.\d+(\.(key|name|weight))?$"
    r"|^metrics\.\d+(\.(name|kind|event|numerator|denominator|direction|primary|guardrail))?$"
)
"""The field names the form shows errors beside; any other error is shown above the form."""
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class FormState:
    """What the form shows: the values as typed, the rows, and the errors by field name."""

    values: Mapping[str, str]
    variant_rows: int
    metric_rows: int
    errors: Mapping[str, list[str]] = field(default_factory=dict)
    top_errors: list[str] = field(default_factory=list)
    """Problems of the form as a whole (what the API reports for the body or a conflict)."""

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def checked(self, name: str) -> bool:
        return self.values.get(name, "") not in {"", "off"}

    def errors_of(self, name: str) -> list[str]:
        return list(self.errors.get(name, []))

    def with_message(self, message: str) -> FormState:
        """This state with ``message`` (a domain error's text, as the API answers it) on top."""
        return FormState(
            self.values,
            self.variant_rows,
            self.metric_rows,
            self.errors,
            [*self.top_errors, message],
        )

    def with_more_rows(self) -> FormState:
        """The same values with a blank variant and metric row more (and no errors yet)."""
        return FormState(
            self.values, min(self.variant_rows + 1, MAX_ROWS), min(self.metric_rows + 1, MAX_ROWS)
        )


@dataclass(frozen=True)
class Parsed(Generic[Model]):
    """A form read into a model, or the form back with its errors."""

    model: Model | None
    form: FormState


def _rows(values: Mapping[str, str], group: str, names: Sequence[str]) -> list[int]:
    """The indices of the rows of ``group`` the person filled in (any field not blank)."""
    indices = {
        int(m.group(2)) for name in values if (m := _ROW_FIELD.match(name)) and m.group(1) == group
    }
    return sorted(
        i for i in indices if any(values.get(f"{group}.{i}.{n}", "").strip() for n in names)
    )


def _text(values: Mapping[str, str], name: str) -> str | None:
    text = values.get(name, "").strip()
    return text or None


_Rows = tuple[list[int], list[int]]


@dataclass(frozen=True)
class _Body:
    """The JSON body a form stands for, and which form row each variant and metric came from."""

    fields: dict[str, object]
    metrics: list[dict[str, object]]
    rows: _Rows

    def json(self) -> dict[str, object]:
        return {**self.fields, "metrics": self.metrics}


def _body(values: Mapping[str, str]) -> _Body:
    """The JSON body the form stands for, with the rows it came from."""
    variant_rows = _rows(values, "variants", VARIANT_FIELDS)
    metric_rows = _rows(values, "metrics", ("name", "event", "numerator", "denominator"))
    variants = []
    for i in variant_rows:
        variant: dict[str, object] = {"key": values.get(f"variants.{i}.key", "").strip()}
        variant["name"] = values.get(f"variants.{i}.name", "").strip()
        variant["weight"] = values.get(f"variants.{i}.weight", "").strip()
        variants.append(variant)
    metrics = []
    primary = values.get("primary", "")
    for i in metric_rows:
        metric: dict[str, object] = {
            n: text for n in METRIC_FIELDS if (text := _text(values, f"metrics.{i}.{n}"))
        }
        metric.setdefault("name", "")
        if metric.get("kind") == "ratio":
            metric.pop("event", None)
        else:
            metric.pop("numerator", None)
            metric.pop("denominator", None)
        metric["primary"] = primary == str(i)
        metric["guardrail"] = values.get(f"metrics.{i}.guardrail", "") not in {"", "off"}
        metrics.append(metric)
    body: dict[str, object] = {"variants": variants}
    for name in ("name", "hypothesis"):
        body[name] = values.get(name, "").strip()
    if (coverage := _text(values, "coverage")) is not None:
        body["coverage"] = coverage
    return _Body(body, metrics, (variant_rows, metric_rows))


def _placed(
    errors: Sequence[FieldError], variant_rows: list[int], metric_rows: list[int]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each error under the form's own field name (its row, not the spec's index)."""
    by_field: dict[str, list[str]] = {}
    top: list[str] = []
    for error in errors:
        name = error.field
        if (m := _ROW_FIELD.match(name)) is not None:
            rows = variant_rows if m.group(1) == "variants" else metric_rows
            index = int(m.group(2))
            row = rows[index] if index < len(rows) else index
            name = f"{m.group(1)}.{row}{m.group(3) or ''}"
        if _SHOWN.match(name):
            by_field.setdefault(name, []).append(error.message)
        else:
            top.append(error.message if name == "body" else f"{name}: {error.message}")
    return by_field, top


def _state(values: Mapping[str, str]) -> FormState:
    typed = [_ROW_FIELD.match(n) for n in values]
    highest = {
        g: max((int(m.group(2)) for m in typed if m and m.group(1) == g), default=-1)
        for g in ("variants", "metrics")
    }
    return FormState(
        values=dict(values),
        variant_rows=min(max(highest["variants"] + 1, 2), MAX_ROWS),
        metric_rows=min(max(highest["metrics"] + 1, 1), MAX_ROWS),
    )


def _read(
    values: Mapping[str, str], build: type[Model], body: dict[str, object], rows: _Rows
) -> Parsed[Model]:
    variant_rows, metric_rows = rows
    state = _state(values)
    try:
        return Parsed(build.model_validate(body), state)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
    by_field, top = _placed(errors, variant_rows, metric_rows)
    return Parsed(
        None, FormState(state.values, state.variant_rows, state.metric_rows, by_field, top)
    )


def read_spec(values: Mapping[str, str]) -> Parsed[ExperimentSpec]:
    """The create form as the :class:`ExperimentSpec` ``POST /v1/experiments`` would take."""
    body = _body(values)
    json = {**body.json(), "key": values.get("key", "").strip()}
    return _read(values, ExperimentSpec, json, body.rows)


def read_patch(values: Mapping[str, str], draft: Experiment) -> Parsed[ExperimentPatch]:
    """The edit form of ``draft`` as the :class:`ExperimentPatch` ``PATCH`` would take.

    A metric keeps what the form does not show (its cap, unit, margin): the form's fields are
    laid over the draft's metric of the same name.
    """
    body = _body(values)
    before = {m.name: m.model_dump(mode="json", exclude_none=True) for m in draft.metrics}
    metrics = [{**before.get(str(m.get("name")), {}), **m} for m in body.metrics]
    return _read(values, ExperimentPatch, {**body.fields, "metrics": metrics}, body.rows)


def form_of(experiment: Experiment | None) -> FormState:
    """The form filled in with ``experiment`` (or a new one's starting values), one blank row
    more of each so another variant or metric can be added."""
    if experiment is None:
        values = {
            "coverage": "1",
            "variants.0.key": "control",
            "variants.0.weight": "0.5",
            "variants.1.weight": "0.5",
            "metrics.0.kind": "conversion",
            "primary": "0",
        }
        return FormState(values, variant_rows=2, metric_rows=3)
    values = {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "coverage": f"{experiment.coverage:g}",
    }
    for i, variant in enumerate(experiment.variants):
        values |= {
            f"variants.{i}.key": variant.key,
            f"variants.{i}.name": variant.name,
            f"variants.{i}.weight": f"{variant.weight:g}",
        }
    for i, metric in enumerate(experiment.metrics):
        for name in METRIC_FIELDS:
            if (text := getattr(metric, name)) is not None:
                values[f"metrics.{i}.{name}"] = str(text)
        if metric.primary:
            values["primary"] = str(i)
        if metric.guardrail:
            values[f"metrics.{i}.guardrail"] = "on"
    return FormState(
        values,
        variant_rows=min(len(experiment.variants) + 1, MAX_ROWS),
        metric_rows=min(len(experiment.metrics) + 1, MAX_ROWS),
    )
