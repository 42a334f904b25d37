"""The window with fewer than F copies: when each under-replicated episode began and ended.

An episode begins when some live chunk has fewer than F good copies on ready nodes (a node
stopped answering, a copy was lost or found corrupt) and ends when a later look finds none;
its start is backdated to when the first cause happened where the manager knows it (the node
went unready, the scrub found the rot). Kept in memory only: the figures say how long the
cluster was exposed since this manager started.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cofre.protocol.manager_api import ReplicationWindow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Exposure:
    open_since: float | None = None
    last_began: float | None = None
    last_ended: float | None = None
    longest_s: float = 0.0
    episodes: int = 0

    @property
    def last_s(self) -> float | None:
        if self.last_began is None or self.last_ended is None:
            return None
        return self.last_ended - self.last_began

    def observe(self, short: int, *, now: float, since: float | None = None) -> None:
        """``short`` chunks have fewer than F good copies as of ``now``; ``since``: when the
        earliest cause of that happened, if known."""
        if short > 0:
            began = min(now, since) if since is not None else now
            if self.open_since is None:
                self.open_since = began
                self.episodes += 1
                log.warning("under-replicated window began chunks=%d at=%.3f", short, began)
            else:
                self.open_since = min(self.open_since, began)
            return
        if self.open_since is None:
            return
        self.last_began, self.last_ended = self.open_since, max(now, self.open_since)
        self.open_since = None
        took = self.last_ended - self.last_began
        self.longest_s = max(self.longest_s, took)
        log.info("under-replicated window ended took_s=%.3f longest_s=%.3f", took, self.longest_s)

    def report(self, now: float) -> ReplicationWindow:
        return ReplicationWindow(
            open_since=self.open_since,
            open_s=None if self.open_since is None else max(0.0, now - self.open_since),
            last_began=self.last_began,
            last_ended=self.last_ended,
            last_s=self.last_s,
            longest_s=max(
                self.longest_s, 0.0 if self.open_since is None else now - self.open_since
            ),
            episodes=self.episodes,
        )
