"""The errors of the experiments package; the service maps each to one HTTP status."""

from __future__ import annotations

__all__ = [
    "AbacusError",
    "ConflictError",
    "ExperimentNotFoundError",
    "InvalidDefinitionError",
    "StoreUnavailableError",
]


class AbacusError(Exception):
    """Base of every error raised by the experiments package."""


class InvalidDefinitionError(AbacusError, ValueError):
    """A definition, patch or request value is not allowed (HTTP 422)."""


class ConflictError(AbacusError):
    """The request contradicts the current state, e.g. an illegal status change (HTTP 409)."""


class ExperimentNotFoundError(AbacusError, LookupError):
    """No experiment has that key (HTTP 404)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"experiment {key!r} does not exist")
        self.key = key


class StoreUnavailableError(AbacusError):
    """Redis could not be reached or failed mid-request (HTTP 503)."""
