"""Timeouts that never swallow a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from cofre.aio import cancel_all, wait_event, within


async def _loop_on(event: asyncio.Event, passes: list[int]) -> None:
    """A background loop shaped like the manager's: wake on the event or after a while."""
    while True:
        await wait_event(event, 30.0)
        event.clear()
        passes.append(1)


async def test_a_cancel_arriving_with_the_wakeup_stops_the_loop() -> None:
    event = asyncio.Event()
    passes: list[int] = []
    task = asyncio.create_task(_loop_on(event, passes))
    await asyncio.sleep(0)  # let the loop start waiting
    # The wakeup and the cancel land in the same loop iteration: the cancel must win.
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5.0)
    assert task.cancelled()
    assert passes == []


async def test_wait_event_tells_set_from_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def test_within_returns_the_result_or_times_out() -> None:
    assert await within(asyncio.sleep(0, result=7), 1.0) == 7
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)


async def test_cancel_all_names_the_tasks_that_ignore_a_cancel() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    polite = asyncio.create_task(asyncio.sleep(10), name="polite")
    stuck = asyncio.create_task(stubborn(), name="stuck")
    await asyncio.sleep(0)
    assert await cancel_all([polite, stuck], 0.05) == {"stuck"}
    assert polite.cancelled()
    release.set()
    stuck.cancel()
    await asyncio.wait([stuck])
    assert await cancel_all([], 0.05) == set()
