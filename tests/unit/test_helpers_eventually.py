"""The shared polling helpers: they return what came true and fail naming what did not."""

from __future__ import annotations

import pytest

from ..helpers import eventually, eventually_sync


async def test_eventually_returns_the_first_truthy_value_of_a_sync_or_async_check() -> None:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    async def ready() -> str:
        return "yes"

    assert await eventually(count, what="three calls") == 3
    assert await eventually(ready, what="ready") == "yes"
    assert await eventually(lambda: [1, 2], until=lambda v: len(v) == 2, what="two") == [1, 2]


async def test_eventually_fails_naming_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"after 0.05 s waiting for the moon; last: \[\]"):
        await eventually(list, what="the moon", timeout_s=0.05)


def test_eventually_sync_polls_until_true_or_fails() -> None:
    calls: list[int] = []
    assert eventually_sync(lambda: calls.append(1) or len(calls) >= 2, what="two calls")
    with pytest.raises(AssertionError, match="waiting for never; last: False"):
        eventually_sync(lambda: False, what="never", timeout_s=0.05)
    with pytest.raises(AssertionError, match=r"waiting for three; last: \[1, 2\]"):
        eventually_sync(lambda: [1, 2], until=lambda v: len(v) == 3, what="three", timeout_s=0.05)
