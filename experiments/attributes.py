"""The size rule for the visitor attributes sent with an assignment, as one pure check.

Attributes are copied into the raw log of every running experiment with a visitor's first
exposure, so one request's attributes cost their size times the running experiments: the
limits in :mod:`experiments.limits` bound that cost. The check names the attribute, shows the
value (truncated) and the limit it breaks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from experiments.limits import (
    MAX_ATTRIBUTE_VALUE_CHARACTERS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
)

__all__ = ["check_attributes"]

M = TypeVar("M", bound=Mapping[str, object])

_SHOWN_CHARACTERS = 40


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= _SHOWN_CHARACTERS:
        return repr(text)
    return repr(text[:_SHOWN_CHARACTERS]) + f"... ({len(text)} characters)"


def _leaves(attributes: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """Each value with its dotted name; an object value (one level, for dotted paths) opened."""
    out: list[tuple[str, object]] = []
    for name, value in attributes.items():
        if isinstance(value, dict):
            out += _leaves(value, f"{prefix}{name}.")
        else:
            out.append((prefix + name, value))
    return out


def check_attributes(attributes: M) -> M:
    """Return ``attributes`` unchanged if within the limits, else raise ``ValueError``.

    At most :data:`MAX_ATTRIBUTES` keys; each string value, each string in a list value and in
    an object value, at most :data:`MAX_ATTRIBUTE_VALUE_CHARACTERS` characters; the whole
    object at most :data:`MAX_ATTRIBUTES_BYTES` bytes as compact UTF-8 JSON.
    """
    if len(attributes) > MAX_ATTRIBUTES:
        names = ", ".join(list(attributes)[:5])
        raise ValueError(
            f"attributes: at most {MAX_ATTRIBUTES} keys are allowed, got {len(attributes)} "
            f"({names}, ...)"
        )
    for name, value in _leaves(attributes):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_VALUE_CHARACTERS:
                raise ValueError(
                    f"attributes.{name}: values must be at most "
                    f"{MAX_ATTRIBUTE_VALUE_CHARACTERS} characters, got {_shown(item)}"
                )
    size = len(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(
            f"attributes: the whole object must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON, "
            f"got {size} bytes ({_shown(attributes)})"
        )
    return attributes
