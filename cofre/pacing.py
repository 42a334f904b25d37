"""A byte-rate budget: a token bucket that says how long to wait before moving more bytes.

Shared by the storage node's scrub (bytes read) and the manager's copies (bytes moved). The
clock is injected, so tests drive it by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Allow ``rate`` bytes per second on average, with bursts of up to ``burst`` bytes.

    :meth:`take` spends bytes now (the bucket may go into debt) and returns the seconds to
    wait before the next move, so one large read never has to be split to stay in budget.
    A rate of 0 means no limit.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must not be negative, not {rate!r}")
        self.rate = rate
        # One second's worth by default: smooth, yet a pass that starts cold need not wait.
        self.burst = rate if burst is None else burst
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self, nbytes: int) -> float:
        """Spend ``nbytes``; -> seconds to wait before moving more (0 while within budget)."""
        if self.rate == 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= nbytes
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Slots:
    """At most ``per_node`` moves in flight to or from one node (any str key): the manager's
    copies hold one on the target and on the source, so a refill spreads over the cluster
    instead of queueing every copy on one disk."""

    def __init__(self, per_node: int) -> None:
        if per_node < 1:
            raise ValueError(f"per_node must be at least 1, not {per_node!r}")
        self.per_node = per_node
        self._busy: dict[str, int] = {}
        # Replaced on every release: a waiter takes the current one before it looks, so a
        # release between its look and its wait still wakes it.
        self.released = asyncio.Event()

    def free(self, node: str) -> bool:
        return self._busy.get(node, 0) < self.per_node

    def busy(self, node: str) -> int:
        return self._busy.get(node, 0)

    def take(self, *nodes: str) -> None:
        for node in set(nodes):
            self._busy[node] = self._busy.get(node, 0) + 1

    def give(self, *nodes: str) -> None:
        for node in set(nodes):
            left = self._busy.get(node, 0) - 1
            if left > 0:
                self._busy[node] = left
            else:
                self._busy.pop(node, None)
        self.released.set()
        self.released = asyncio.Event()
