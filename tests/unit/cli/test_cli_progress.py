"""The progress display: its figures (rate, ETA), its text, and that it draws in place only for
a person at a terminal."""

from __future__ import annotations

import io

import pytest

from cofre.cli.progress import (
    RATE_WINDOW_S,
    StatusLine,
    TransferProgress,
    human_duration,
    waiting,
)

from ...helpers import eventually

MiB = 1024 * 1024


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress(stream: io.StringIO, clock: _Clock, width: int = 200) -> TransferProgress:
    return TransferProgress(verb="put", line=StatusLine(stream, width=width), clock=clock)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (0.4, "0:00"), (59.6, "1:00"), (61, "1:01"), (3599, "59:59"), (3723, "1:02:03")],
)
def test_durations(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_rate_is_the_average_until_a_second_is_measured_then_the_recent_window() -> None:
    clock = _Clock()
    p = _progress(_Tty(), clock)
    p.expect("a", 200 * MiB)
    clock.now += 0.5
    p.sample(clock.now)
    p.advance("a", MiB)
    # Half a second measured: the average since the start, 1 MiB in 0.5 s.
    assert p.rate(clock.now) == pytest.approx(2 * MiB)
    for _ in range(20):  # 10 MiB/s for 10 s, sampled every half second
        clock.now += 0.5
        p.advance("a", 5 * MiB)
        p.sample(clock.now)
    assert p.rate(clock.now) == pytest.approx(10 * MiB)
    # The pace halves: within one window the rate follows it, whatever came before.
    for _ in range(int(2 * RATE_WINDOW_S) + 2):
        clock.now += 0.5
        p.advance("a", int(2.5 * MiB))
        p.sample(clock.now)
    assert p.rate(clock.now) == pytest.approx(5 * MiB)
    left = 200 * MiB - p.bytes_done
    assert left > 0
    assert p.eta(clock.now) == pytest.approx(left / (5 * MiB))


def test_eta_is_unknown_until_something_moved_and_zero_when_all_is_done() -> None:
    clock = _Clock()
    p = _progress(_Tty(), clock)
    p.expect("a", 10)
    clock.now += 2
    assert p.eta(clock.now) is None
    p.finished("a", size=10, moved=10)
    assert p.eta(clock.now) == 0.0


def test_events_add_up_to_exact_figures() -> None:
    clock = _Clock()
    p = _progress(_Tty(), clock)
    for name, size in (("a", 1000), ("b", 2000), ("c", 3000), ("d", 4000)):
        p.expect(name, size)
    p.expect("a", 1000)  # reported twice: counted once
    assert (p.files_total, p.bytes_total) == (4, 10_000)
    # A streamed file reports its bytes as they go, some sent, some already stored.
    p.started("a", 1000)
    p.advance("a", 600, moved=True)
    p.advance("a", 400)
    p.finished("a", size=1000, moved=600)
    # A batched file reports only at the end: its bytes are added then.
    p.finished("b", size=2000, moved=2000)
    # A failed file takes what it did not reach out of the total.
    p.started("c", 3000)
    p.advance("c", 1000, moved=True)
    p.finished("c", error=True)
    assert (p.files_done, p.failures) == (3, 1)
    assert (p.bytes_done, p.bytes_total, p.bytes_ok, p.bytes_moved) == (4000, 8000, 3000, 3600)
    clock.now += 2.5
    p.finished("d", size=4000, moved=0)
    p.finished("d", size=4000, moved=0)  # a second report of the end changes nothing
    assert p.summary(moved_as="bytes_sent") == {
        "files": 3,
        "bytes": 7000,
        "bytes_sent": 3600,
        "seconds": 2.5,
        "failures": 1,
    }
    assert "bytes_sent" not in p.summary()


def test_the_line_reads_files_bytes_rate_eta_and_failures() -> None:
    clock = _Clock()
    p = _progress(_Tty(), clock)
    p.expect("x/one", 3 * MiB)
    p.expect("x/two", MiB)
    p.expect("x/bad", MiB)
    p.started("x/one", 3 * MiB)
    p.finished("x/bad", error=True)
    clock.now += 2
    p.advance("x/one", 2 * MiB)
    assert p.render(clock.now) == (
        "put 1/3 files  2.0 MiB/4.0 MiB  1.0 MiB/s  ETA 0:02  1 failed  x/one"
    )


def test_updates_are_drawn_in_place_and_cleared_at_the_end() -> None:
    stream = _Tty()
    clock = _Clock()
    p = _progress(stream, clock)
    p.expect("a", 4 * MiB)
    for _ in range(2):
        clock.now += 1
        p.advance("a", 2 * MiB)
        p.tick()
    p.line.clear()
    assert stream.getvalue() == (
        "\rput 0/1 files  2.0 MiB/4.0 MiB  2.0 MiB/s  ETA 0:01\x1b[K"
        "\rput 0/1 files  4.0 MiB/4.0 MiB  2.0 MiB/s  ETA 0:00\x1b[K"
        "\r\x1b[K"
    )


def test_a_line_is_cut_to_the_terminal_width() -> None:
    stream = _Tty()
    line = StatusLine(stream, width=10)
    line.show("0123456789abcdef")
    assert stream.getvalue() == "\r012345678\x1b[K"


def test_echo_clears_the_line_before_printing_a_result() -> None:
    status, out = _Tty(), io.StringIO()
    line = StatusLine(status, width=80)
    line.show("put 1/2 files")
    line.echo("a  version 1", stream=out)
    assert status.getvalue().endswith("\r\x1b[K")
    assert out.getvalue() == "a  version 1\n"
    line.clear()  # nothing shown since: nothing to clear
    assert status.getvalue().count("\r\x1b[K") == 1


def test_nothing_is_written_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    clock = _Clock()
    p = _progress(stream, clock)
    p.expect("a", 10 * MiB)
    clock.now += 1
    p.advance("a", 5 * MiB)
    p.tick()
    p.line.echo("result", stream=io.StringIO())
    p.line.clear()
    assert stream.getvalue() == ""


async def test_running_redraws_on_its_own_and_clears_the_line_at_the_end() -> None:
    stream = _Tty()
    p = TransferProgress(verb="get", line=StatusLine(stream, width=120))
    async with p.running():
        p.expect("a", 100)
        p.advance("a", 40, moved=True)
        await eventually(
            lambda: stream.getvalue().count("\rget 0/1 files  40 B/100 B"),
            what="two redraws",
            until=lambda n: n >= 2,
        )
    text = stream.getvalue()
    assert text.endswith("\r\x1b[K")
    assert "\n" not in text


async def test_running_without_a_terminal_stays_silent() -> None:
    stream = io.StringIO()
    p = TransferProgress(verb="get", line=StatusLine(stream))
    async with p.running():
        p.expect("a", 100)
        p.advance("a", 100)
    assert stream.getvalue() == ""


async def test_waiting_spins_with_the_elapsed_time_and_clears_when_answered() -> None:
    stream = _Tty()
    async with waiting("repair: copying", line=StatusLine(stream, width=80)):
        await eventually(
            lambda: stream.getvalue(),
            what="two spinner frames",
            until=lambda text: (
                "\r| repair: copying  0:0" in text and "\r/ repair: copying  0:0" in text
            ),
        )
    assert stream.getvalue().endswith("\r\x1b[K")


async def test_waiting_without_a_terminal_writes_nothing() -> None:
    stream = io.StringIO()
    async with waiting("gc", line=StatusLine(stream)):
        pass
    assert stream.getvalue() == ""


def test_without_keep_finished_a_finished_file_costs_no_memory() -> None:
    p = TransferProgress.silent("put")
    p.keep_finished = False
    for i in range(1000):
        p.expect(f"f{i}", 10)
        p.advance(f"f{i}", 4, moved=True)
        p.finished(f"f{i}", size=10, moved=4, error=i % 10 == 0)
    assert p._files == {}
    assert (p.files_done, p.failures, p.bytes_ok, p.bytes_moved) == (1000, 100, 9000, 4000)
    assert p.bytes_total == 9000 + 100 * 4
