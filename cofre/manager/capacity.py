"""How fast the ready nodes fill: a short in-memory history of used bytes and a linear forecast
(pure; the probe loop records a sample after each pass).

The history restarts when the set of ready nodes changes: a node joining or leaving moves the
total by its whole content, which is not growth.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from cofre.models import NodeId
from cofre.protocol.manager_api import CapacityForecast

# Seconds between kept samples: probes run every second locally, a forecast needs no more.
SAMPLE_EVERY_S = 5.0
# Samples kept: an hour at SAMPLE_EVERY_S, so the rate follows the recent past.
MAX_SAMPLES = 720


@dataclass(frozen=True, slots=True)
class UsageSample:
    at: float
    used_bytes: int
    capacity_bytes: int


class UsageHistory:
    def __init__(
        self, *, sample_every_s: float = SAMPLE_EVERY_S, max_samples: int = MAX_SAMPLES
    ) -> None:
        self.sample_every_s = sample_every_s
        self._samples: deque[UsageSample] = deque(maxlen=max_samples)
        self._nodes: frozenset[NodeId] = frozenset()

    def record(self, sample: UsageSample, *, nodes: frozenset[NodeId]) -> None:
        """Keep ``sample`` if the last kept one is old enough; restart if ``nodes`` changed."""
        if nodes != self._nodes:
            self._samples.clear()
            self._nodes = nodes
        if self._samples and sample.at - self._samples[-1].at < self.sample_every_s:
            return
        self._samples.append(sample)

    def samples(self) -> list[UsageSample]:
        return list(self._samples)


def growth_rate(samples: Sequence[UsageSample]) -> float | None:
    """Bytes per second: the least-squares slope of used bytes over time; None with fewer than
    two samples or no time between them."""
    if len(samples) < 2:
        return None
    n = len(samples)
    t0 = samples[0].at
    mean_t = sum(s.at - t0 for s in samples) / n
    mean_u = sum(s.used_bytes for s in samples) / n
    var = sum((s.at - t0 - mean_t) ** 2 for s in samples)
    if var <= 0:
        return None
    cov = sum((s.at - t0 - mean_t) * (s.used_bytes - mean_u) for s in samples)
    return cov / var


def forecast(
    samples: Sequence[UsageSample], *, used_bytes: int, capacity_bytes: int, now: float
) -> CapacityForecast:
    """When ``used_bytes`` reaches ``capacity_bytes`` at the samples' rate (None: not growing)."""
    rate = growth_rate(samples)
    full_at: float | None = None
    if rate is not None and rate > 0:
        full_at = now + max(0, capacity_bytes - used_bytes) / rate
    return CapacityForecast(
        used_bytes=used_bytes,
        capacity_bytes=capacity_bytes,
        growth_bytes_per_s=rate,
        full_at=full_at,
        samples=len(samples),
        window_s=samples[-1].at - samples[0].at if samples else 0.0,
    )
