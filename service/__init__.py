"""Abacus's HTTP service, report pages, command line and Python client.

``api`` serves assignment, tracking, definitions and exports; ``readout`` turns stored totals
into the typed read-out and its verdicts; ``report`` shows it as HTML pages or terminal tables;
``demo`` loads the case studies; ``client`` and ``cli`` are the Python and terminal front ends.
Sub-packages are imported by module path, so ``import service`` loads none of them.
"""

from importlib.metadata import version as _version

__all__ = ["__version__"]

__version__ = _version("abacus")
"""The installed package's version (``pyproject.toml`` is its one source)."""
