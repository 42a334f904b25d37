"""Progress bars appear only for a person at a terminal."""

from __future__ import annotations

import io

from cofre.cli.progress import MIN_BYTES_FOR_BAR, Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_tty() -> None:
    stream = io.StringIO()
    p = Progress(label="big", total=MIN_BYTES_FOR_BAR * 4, stream=stream)
    for _ in range(4):
        p.advance(MIN_BYTES_FOR_BAR)
    p.finish()
    assert stream.getvalue() == ""


def test_draws_on_a_tty_and_clears_the_line() -> None:
    stream = _Tty()
    p = Progress(label="big", total=MIN_BYTES_FOR_BAR, stream=stream)
    p.advance(MIN_BYTES_FOR_BAR)
    p.finish()
    text = stream.getvalue()
    assert "100.0%" in text
    assert text.endswith("\r\x1b[K")


def test_small_transfers_get_no_bar_even_on_a_tty() -> None:
    stream = _Tty()
    p = Progress(label="small", total=10, stream=stream)
    p.advance(10)
    p.finish()
    assert stream.getvalue() == ""
