"""Run a coroutine to completion from synchronous code, whatever loop this thread may run.

The demo loader, the tests and the benchmarks call async store code from plain functions, some
of them while an event loop is already running on the calling thread (a notebook, Playwright's
sync API). :func:`run_sync` gives the coroutine a new loop on a worker thread, so it works in
both cases and never touches the caller's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """The result of the coroutine ``factory()`` makes, run on a new loop in a worker thread.

    ``factory`` is called on the worker thread, so the coroutine (and any client it opens) is
    created on the loop that runs it.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="run-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
