"""The one Jinja environment of every page the service renders (reports, sign-in, demo shop).

Autoescaping is on for every template and string, and an undefined name is an error, so a
template cannot print a value unescaped or show a blank where a field was renamed.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["environment", "render"]


@cache
def environment() -> Environment:
    """The environment over ``service/templates``, built once per process."""
    return Environment(
        loader=PackageLoader("service", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: object) -> str:
    """``template`` rendered with ``context``."""
    return environment().get_template(template).render(context)
