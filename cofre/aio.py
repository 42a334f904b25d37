"""Timeouts that never swallow a cancellation.

On Python 3.11 ``asyncio.wait_for`` returns the inner result when the awaiting task is cancelled
in the same loop iteration as the inner awaitable finishes (CPython gh-86296). A background loop
built on it can then miss its shutdown cancel and keep an application's cleanup waiting forever.
``asyncio.timeout`` cancels the awaiting task itself, so an outside cancel always wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """Await ``awaitable``; raise TimeoutError after ``timeout_s`` seconds."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; -> whether it was set."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_all(tasks: Collection[asyncio.Task[Any]], timeout_s: float) -> set[str]:
    """Cancel ``tasks`` and wait up to ``timeout_s`` for them; -> names of those still running.

    Bounded so one stuck task cannot hold a service's shutdown hostage.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return set()
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    return {t.get_name() for t in pending}
