"""The byte-rate budget, on a clock the test turns by hand."""

from __future__ import annotations

import pytest

from cofre.pacing import Pacer

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_within_the_burst_nothing_waits_and_past_it_the_debt_is_paid_at_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(8 * MIB, clock=clock)
    assert pacer.take(4 * MIB) == 0.0
    assert pacer.take(4 * MIB) == 0.0
    # The bucket is empty: 16 MiB more at 8 MiB/s is 2 s of debt.
    assert pacer.take(16 * MIB) == pytest.approx(2.0)
    clock.now += 2.0
    assert pacer.take(8 * MIB) == pytest.approx(1.0)


def test_the_average_rate_holds_over_many_reads() -> None:
    clock = Clock()
    pacer = Pacer(10 * MIB, burst=MIB, clock=clock)
    start = clock.now
    for _ in range(100):
        clock.now += pacer.take(4 * MIB)  # a reader that sleeps as told
    # 400 MiB at 10 MiB/s: 40 s, less the one burst allowed up front.
    assert clock.now - start == pytest.approx(40.0 - 0.1, abs=0.01)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = Clock()
    pacer = Pacer(MIB, clock=clock)
    clock.now += 3600.0
    assert pacer.take(MIB) == 0.0
    assert pacer.take(MIB) == pytest.approx(1.0)


def test_zero_is_no_limit_and_a_negative_rate_is_refused() -> None:
    assert Pacer(0).take(1 << 40) == 0.0
    with pytest.raises(ValueError, match="rate must not be negative"):
        Pacer(-1)
