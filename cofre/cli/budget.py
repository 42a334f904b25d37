"""Limits shared by every transfer of one command, so memory stays bounded for any input."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(eq=False)
class Budget:
    """``slots``: chunks held in memory (2 x parallelism, so reading overlaps sending);
    ``requests``: chunk requests in flight; ``files``: files transferred at once."""

    parallelism: int
    slots: asyncio.Semaphore = field(init=False)
    requests: asyncio.Semaphore = field(init=False)
    files: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(2 * self.parallelism)
        self.requests = asyncio.Semaphore(self.parallelism)
        self.files = asyncio.Semaphore(self.parallelism)

    @property
    def batch(self) -> int:
        """Chunks asked about in one `missing` call."""
        return self.parallelism
