"""The byte quota that bounds a transfer's memory."""

from __future__ import annotations

import asyncio

import pytest

from cofre.cli.budget import Quota


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_acquires_within_the_limit_at_once() -> None:
    q = Quota(10)
    await q.acquire(4)
    await q.acquire(6)
    assert q.used == 10
    assert q.would_block(1)
    q.release(6)
    assert not q.would_block(6)


async def test_waits_until_enough_is_released_first_come_first_served() -> None:
    q = Quota(10)
    await q.acquire(8)
    order: list[str] = []

    async def take(label: str, n: int) -> None:
        await q.acquire(n)
        order.append(label)

    big = asyncio.create_task(take("big", 6))
    await _settle()
    small = asyncio.create_task(take("small", 1))  # would fit, but queues behind "big"
    await _settle()
    assert order == []
    q.release(8)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]
    assert q.used == 7


async def test_a_request_above_the_limit_proceeds_alone() -> None:
    q = Quota(10)
    await q.acquire(3)
    waiter = asyncio.create_task(q.acquire(25))
    await _settle()
    assert not waiter.done()
    q.release(3)
    await asyncio.wait_for(waiter, 1)
    assert q.used == 25


async def test_a_cancelled_waiter_gives_way() -> None:
    q = Quota(10)
    await q.acquire(10)
    first = asyncio.create_task(q.acquire(8))
    await _settle()
    second = asyncio.create_task(q.acquire(2))
    await _settle()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    q.release(10)
    await asyncio.wait_for(second, 1)
    assert q.used == 2


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Quota(0)
