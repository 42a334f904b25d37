"""Limits shared by every transfer of one command, so memory stays bounded for any input.

Limits are in bytes, not chunks: a directory of small files may keep many small chunks moving
while one big file keeps a few big ones, both within the same memory.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from cofre.chunks import DEFAULT_CHUNK_SIZE


class Quota:
    """A semaphore counted in bytes, first come first served.

    A request larger than the whole limit still proceeds once it is alone, so a chunk size above
    the expected one slows a transfer down instead of blocking it forever.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a quota needs a positive limit")
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def would_block(self, n: int) -> bool:
        return bool(self._waiters) or self._over(n)

    def _over(self, n: int) -> bool:
        return self.used > 0 and self.used + n > self.limit

    async def acquire(self, n: int) -> None:
        if not self.would_block(n):
            self.used += n
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(n)  # granted just as we were cancelled: hand it on
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            n, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self._over(n):
                return
            self._waiters.popleft()
            self.used += n
            future.set_result(None)


@dataclass(eq=False)
class Budget:
    """``memory``: bytes of chunks held (2 x parallelism chunks, so reading overlaps sending);
    ``in_flight``: bytes of chunk requests under way (as many: the nodes' hashing, relaying and
    fsyncs, not the client, bound a big file, so every chunk held may be on its way; measured
    +10-15% on one big file, same memory); ``requests``: caps how many requests, however small;
    ``files``: files transferred at once."""

    parallelism: int
    chunk_size: int = DEFAULT_CHUNK_SIZE
    memory: Quota = field(init=False)
    in_flight: Quota = field(init=False)
    requests: asyncio.Semaphore = field(init=False)
    files: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.memory = Quota(2 * self.parallelism * self.chunk_size)
        self.in_flight = Quota(2 * self.parallelism * self.chunk_size)
        # Small chunks wait on round trips, not bandwidth: let more of them overlap.
        self.requests = asyncio.Semaphore(4 * self.parallelism)
        self.files = asyncio.Semaphore(4 * self.parallelism)

    @property
    def batch(self) -> int:
        """Chunks asked about in one `missing` call at most."""
        return 4 * self.parallelism
