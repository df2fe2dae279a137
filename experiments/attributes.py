"""The size rule for the visitor attributes sent with an assignment, as one pure check.

Attributes are copied into the raw log of every running experiment with a visitor's first
exposure, so one request's attributes cost their size times the running experiments: the
limits in :mod:`experiments.limits` bound that cost. Every value must also survive a trip
through JSON and UTF-8 unchanged: NaN and infinities (which JSON cannot hold) and lone
surrogates (which UTF-8 cannot encode) are refused, never replaced. The check names the
attribute, shows the value (truncated) and the limit it breaks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TypeVar

from experiments.limits import (
    MAX_ATTRIBUTE_VALUE_CHARACTERS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
)

__all__ = ["check_attributes", "check_utf8"]

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


def check_utf8(text: str, field: str) -> str:
    """Return ``text`` if it encodes as UTF-8, else raise ``ValueError`` naming ``field``.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 byte string holds: the
    value is refused rather than stored with a replacement character that merges distinct ids.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{field} must be valid Unicode text, got a lone surrogate "
            f"{text[exc.start : exc.end]!a} at character {exc.start}"
        ) from None
    return text


def check_attributes(attributes: M) -> M:
    """Return ``attributes`` unchanged if within the limits, else raise ``ValueError``.

    Names and string values must be valid UTF-8 text (no lone surrogates), numbers finite.

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
        check_utf8(name, f"attributes: the name {name!a}")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(
                    f"attributes.{name}: numbers must be finite (JSON has no NaN or Infinity), "
                    f"got {item}"
                )
            if isinstance(item, str):
                check_utf8(item, f"attributes.{name}")
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
