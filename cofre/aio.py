"""Timeouts that never swallow a cancellation, and the periodic loop built on them.

On Python 3.11 ``asyncio.wait_for`` returns the inner result when the awaiting task is cancelled
in the same loop iteration as the inner awaitable finishes (CPython gh-86296). A background loop
built on it can then miss its shutdown cancel and keep an application's cleanup waiting forever.
``asyncio.timeout`` cancels the awaiting task itself, so an outside cancel always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

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


class Tasks:
    """Tasks started as work arrives, whose first failure fails the whole (a tree's backup or
    restore): started with ``spawn``, waited for with ``wait``/``drain``, cancelled on error."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.reap()
        self._tasks.add(asyncio.create_task(coro))

    def reap(self) -> None:
        """Forget finished tasks; the first that failed raises its error here."""
        for task in [t for t in self._tasks if t.done()]:
            self._tasks.discard(task)
            task.result()

    async def wait(self) -> None:
        """Until at least one task finished (its error raised)."""
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self.reap()

    async def drain(self) -> None:
        """Until every task finished; the first error is raised."""
        while self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            self.reap()

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Periodic:
    """A background pass run every ``interval_s`` (jittered), early when ``wakeup`` is set, or
    on demand with :meth:`run_once`.

    The wait runs from the end of one pass to the start of the next, so a slow pass never piles
    up behind itself. ``jitter`` is a fraction: each wait is ``interval_s`` times a factor drawn
    from ``[1 - jitter, 1 + jitter]``, so many managers or nodes started together drift apart.
    A pass that raises is logged with the loop's name and the loop goes on; a summary line per
    pass is the pass's own business. Passes never overlap: the background loop and
    :meth:`run_once` take turns. A cancel always stops the loop, even one that lands together
    with a wakeup (the wait is :func:`wait_event`, see the module docstring).
    """

    def __init__(
        self,
        name: str,
        pass_fn: Callable[[], Awaitable[object]],
        *,
        interval_s: float,
        jitter: float = 0.1,
        wakeup: asyncio.Event | None = None,
        pass_at_start: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"loop {name}: interval_s must be positive, not {interval_s!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"loop {name}: jitter must be in [0, 1), not {jitter!r}")
        self.name = name
        self.interval_s = interval_s
        self.jitter = jitter
        # Passes that finished, and those that raised (a cancelled pass is neither).
        self.passes = 0
        self.failures = 0
        self._pass_fn = pass_fn
        # A private event when none is given: the wait is then a plain timeout.
        self._wakeup = wakeup if wakeup is not None else asyncio.Event()
        self._pass_at_start = pass_at_start
        self._rng = rng or random.Random()
        self._turn = asyncio.Lock()

    def next_wait_s(self) -> float:
        """Seconds until the next scheduled pass (a fresh jittered draw)."""
        return self.interval_s * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    async def run_once(self) -> None:
        """Run one pass now (after a pass already running) and wait for it; its error, if
        any, is raised here rather than logged. A pending wakeup counts as served."""
        async with self._turn:
            self._wakeup.clear()
            try:
                await self._pass_fn()
            except Exception:
                self.failures += 1
                raise
            self.passes += 1

    async def run(self) -> None:
        """The background loop: run until cancelled."""
        if not self._pass_at_start:
            await wait_event(self._wakeup, self.next_wait_s())
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("background pass failed loop=%s", self.name)
            await wait_event(self._wakeup, self.next_wait_s())

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task named after it."""
        return asyncio.create_task(self.run(), name=f"loop-{self.name}")
