"""The periodic loop every background task runs on: interval, jitter, wakeup, errors, cancel."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time

import pytest

from cofre.aio import Periodic, cancel_all

from ...helpers import eventually


class Passes:
    """A pass that records when it ran; raises while ``failing`` counts down."""

    def __init__(self, *, failing: int = 0) -> None:
        self.at: list[float] = []
        self.failing = failing

    async def __call__(self) -> None:
        self.at.append(time.monotonic())
        if self.failing:
            self.failing -= 1
            raise RuntimeError("pass broke")


async def _stopped(task: asyncio.Task[None]) -> None:
    assert await cancel_all([task], 5.0) == set()
    assert task.cancelled()


async def test_passes_run_every_interval_and_not_at_start() -> None:
    passes = Passes()
    loop = Periodic("tick", passes, interval_s=0.05, jitter=0.0)
    started = time.monotonic()
    task = loop.start()
    assert task.get_name() == "loop-tick"
    await eventually(lambda: len(passes.at) >= 3, what="three passes")
    await _stopped(task)
    # The first pass waits an interval too, and so does each one after (end to start).
    gaps = [b - a for a, b in itertools.pairwise([started, *passes.at])]
    assert all(gap >= 0.05 - 0.002 for gap in gaps), gaps
    assert loop.passes == len(passes.at) and loop.failures == 0


async def test_pass_at_start_runs_one_at_once() -> None:
    passes = Passes()
    loop = Periodic("eager", passes, interval_s=3600.0, pass_at_start=True)
    task = loop.start()
    await eventually(lambda: loop.passes == 1, what="the first pass")
    await _stopped(task)
    assert len(passes.at) == 1


def test_each_wait_is_jittered_within_its_bounds() -> None:
    loop = Periodic("j", Passes(), interval_s=10.0, jitter=0.25, rng=random.Random(7))
    waits = [loop.next_wait_s() for _ in range(2000)]
    assert all(7.5 <= w <= 12.5 for w in waits)
    # Spread over the whole range, not stuck at the interval.
    assert min(waits) < 7.7 and max(waits) > 12.3
    steady = Periodic("s", Passes(), interval_s=10.0, jitter=0.0)
    assert {steady.next_wait_s() for _ in range(10)} == {10.0}


def test_a_bad_interval_or_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="loop x: interval_s must be positive, not 0"):
        Periodic("x", Passes(), interval_s=0)
    with pytest.raises(ValueError, match=r"loop x: jitter must be in \[0, 1\), not 1.5"):
        Periodic("x", Passes(), interval_s=1.0, jitter=1.5)


async def test_a_raising_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes = Passes(failing=2)
    loop = Periodic("flaky", passes, interval_s=0.01)
    with caplog.at_level(logging.ERROR, logger="cofre.aio"):
        task = loop.start()
        await eventually(lambda: loop.passes >= 1, what="a pass after the failures")
        await _stopped(task)
    assert loop.failures == 2
    failed = [r for r in caplog.records if r.getMessage() == "background pass failed loop=flaky"]
    assert len(failed) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failed)


async def test_a_wakeup_runs_a_pass_early_and_is_cleared() -> None:
    wakeup = asyncio.Event()
    passes = Passes()
    loop = Periodic("woken", passes, interval_s=3600.0, wakeup=wakeup)
    task = loop.start()
    wakeup.set()
    await eventually(lambda: loop.passes == 1, what="the woken pass")
    assert not wakeup.is_set()
    wakeup.set()
    await eventually(lambda: loop.passes == 2, what="the second woken pass")
    await _stopped(task)


async def test_a_cancel_arriving_with_the_wakeup_stops_the_loop() -> None:
    wakeup = asyncio.Event()
    passes = Passes()
    task = Periodic("stopping", passes, interval_s=30.0, wakeup=wakeup).start()
    await asyncio.sleep(0)  # let the loop start waiting
    # The wakeup and the cancel land in the same loop iteration: the cancel must win.
    wakeup.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5.0)
    assert task.cancelled()
    assert passes.at == []


async def test_run_once_runs_a_pass_now_and_raises_its_error() -> None:
    wakeup = asyncio.Event()
    wakeup.set()
    passes = Passes()
    loop = Periodic("direct", passes, interval_s=3600.0, wakeup=wakeup)
    await loop.run_once()
    assert len(passes.at) == 1 and loop.passes == 1
    assert not wakeup.is_set()  # the pass served the pending wakeup
    passes.failing = 1
    with pytest.raises(RuntimeError, match="pass broke"):
        await loop.run_once()
    assert (loop.passes, loop.failures) == (1, 1)


async def test_run_once_waits_for_a_running_pass_instead_of_overlapping_it() -> None:
    release = asyncio.Event()
    running: list[str] = []
    overlaps: list[list[str]] = []

    async def slow() -> None:
        running.append("pass")
        if len(running) > 1:
            overlaps.append(list(running))
        try:
            await release.wait()
        finally:
            running.pop()

    loop = Periodic("slow", slow, interval_s=3600.0, pass_at_start=True)
    task = loop.start()
    await eventually(lambda: running, what="the background pass to start")
    direct = asyncio.create_task(loop.run_once())
    await asyncio.sleep(0)
    assert not direct.done() and len(running) == 1
    release.set()
    await asyncio.wait_for(direct, 5.0)
    assert loop.passes == 2 and overlaps == []
    await _stopped(task)
