"""The capacity forecast (pure): the growth rate of used bytes, when they reach capacity, and
the short history the probe loop fills."""

from __future__ import annotations

import pytest

from cofre.manager.capacity import UsageHistory, UsageSample, forecast, growth_rate
from cofre.models import NodeId

NODES = frozenset({NodeId("node-0"), NodeId("node-1")})


def samples(*points: tuple[float, int], capacity: int = 1000) -> list[UsageSample]:
    return [UsageSample(at=t, used_bytes=u, capacity_bytes=capacity) for t, u in points]


def test_growth_rate_is_the_least_squares_slope() -> None:
    assert growth_rate(samples((0, 100), (10, 200), (20, 300))) == pytest.approx(10.0)
    # Noise around a line of slope 2: the fit, not the last two points.
    assert growth_rate(samples((0, 0), (1, 3), (2, 3), (3, 6))) == pytest.approx(1.8)
    assert growth_rate(samples((0, 50), (5, 50), (9, 50))) == 0.0
    assert growth_rate(samples((0, 50))) is None
    assert growth_rate(samples((4, 50), (4, 60))) is None  # no time between them
    assert growth_rate([]) is None


def test_forecast_is_when_capacity_is_reached_at_that_rate() -> None:
    grown = forecast(
        samples((100, 100), (110, 200)), used_bytes=200, capacity_bytes=1000, now=110.0
    )
    assert grown.growth_bytes_per_s == pytest.approx(10.0)
    assert grown.full_at == pytest.approx(110.0 + 80.0)
    assert (grown.samples, grown.window_s) == (2, 10.0)
    flat = forecast(samples((0, 5), (10, 5)), used_bytes=5, capacity_bytes=1000, now=10.0)
    assert flat.growth_bytes_per_s == 0.0 and flat.full_at is None
    shrinking = forecast(samples((0, 9), (10, 5)), used_bytes=5, capacity_bytes=1000, now=10.0)
    assert shrinking.growth_bytes_per_s is not None and shrinking.growth_bytes_per_s < 0
    assert shrinking.full_at is None
    unknown = forecast([], used_bytes=0, capacity_bytes=1000, now=0.0)
    assert (unknown.growth_bytes_per_s, unknown.full_at, unknown.window_s) == (None, None, 0.0)
    over = forecast(samples((0, 900), (10, 1100)), used_bytes=1100, capacity_bytes=1000, now=10)
    assert over.full_at == 10.0  # already past it: full now


def test_history_keeps_spaced_samples_and_restarts_when_the_nodes_change() -> None:
    history = UsageHistory(sample_every_s=5.0, max_samples=3)
    for t in (0.0, 1.0, 4.9, 5.0, 10.0, 15.0, 20.0):
        history.record(UsageSample(at=t, used_bytes=int(t), capacity_bytes=100), nodes=NODES)
    # Samples closer than 5 s to the last kept one are dropped; only the newest 3 are kept.
    assert [s.at for s in history.samples()] == [10.0, 15.0, 20.0]
    fewer = frozenset({NodeId("node-0")})
    history.record(UsageSample(at=21.0, used_bytes=0, capacity_bytes=50), nodes=fewer)
    assert [s.at for s in history.samples()] == [21.0]
