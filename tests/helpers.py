"""Helpers for every test directory: wait for a condition by polling it with a deadline.

Import with a relative import (``from ..helpers import eventually``): in importlib mode test
modules are named after their path under the rootdir, so ``tests`` is their parent package.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Seconds a condition may take by default: far above what any test here needs on a busy
# machine, so hitting it means the condition never came true.
TIMEOUT_S = 20.0
# Seconds between polls: short enough that tests do not idle, long enough to let others run.
POLL_S = 0.02
# Characters of the last value a failure shows.
SHOWN_CHARS = 4000


def _timed_out(what: str, timeout_s: float, value: object) -> AssertionError:
    shown = repr(value)
    if len(shown) > SHOWN_CHARS:
        shown = shown[:SHOWN_CHARS] + "..."
    return AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last: {shown}")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    until: Callable[[T], object] = bool,
    timeout_s: float = TIMEOUT_S,
    poll_s: float = POLL_S,
) -> T:
    """Call ``check`` (sync or async) until ``until`` holds for what it returns (by default:
    until that is truthy); -> that value.

    Fails with an AssertionError naming ``what`` and the last value after ``timeout_s``; an
    exception ``check`` raises is not retried but raised at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        value: T = await got if inspect.isawaitable(got) else got
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout_s, value)
        await asyncio.sleep(poll_s)


def eventually_sync(
    check: Callable[[], T],
    *,
    what: str,
    until: Callable[[T], object] = bool,
    timeout_s: float = TIMEOUT_S,
    poll_s: float = POLL_S,
) -> T:
    """:func:`eventually` for tests that are not coroutines (it blocks the thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout_s, value)
        time.sleep(poll_s)
