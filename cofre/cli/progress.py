"""What a command is doing, shown to a person at a terminal: one line on stderr, redrawn in place.

``StatusLine`` is the one place that draws: it writes ``\\r<text>\\x1b[K`` only when its stream
is a TTY, fits the text to the terminal's width and clears the line at the end, so the results
that follow start on a clean line. ``TransferProgress`` counts what the transfer code reports
(file started, bytes moved, file finished) and renders files done/total, bytes done/total, rate
and ETA a few times a second from a timer, never from the transfer's own hot path. ``waiting``
shows a spinner and the elapsed time while a single long request (repair, gc) is answered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TextIO

from cofre.aio import Periodic
from cofre.cli.output import display_name, human_size

# Redraws per second at most: often enough to look alive, rarely enough to cost nothing.
TICK_S = 0.25
# The rate (and so the ETA) is measured over this recent stretch, so it follows a change of
# pace within seconds instead of averaging over the whole run.
RATE_WINDOW_S = 5.0
# Below this much measured time the whole run's average is the better guess.
MIN_RATE_SPAN_S = 1.0
_DEFAULT_WIDTH = 80
_SPINNER = "|/-\\"
_CLEAR = "\r\x1b[K"

Clock = Callable[[], float]


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def human_duration(seconds: float) -> str:
    """``M:SS`` below an hour, ``H:MM:SS`` from there."""
    whole = max(0, int(seconds + 0.5))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


class StatusLine:
    """One line on ``stream`` (stderr) rewritten in place; nothing at all unless it is a TTY."""

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool | None = None, width: int | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_tty(self.stream) if enabled is None else enabled
        self._width = width
        self._shown = False

    def width(self) -> int:
        """The terminal's width now (it may have been resized), else the given or a default."""
        if self._width is not None:
            return self._width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or _DEFAULT_WIDTH
        except (AttributeError, ValueError, OSError):
            return _DEFAULT_WIDTH

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        # One column spare: a line that fills the last column wraps on some terminals, and a
        # wrapped line can no longer be rewritten with \r.
        fitted = text[: max(1, self.width() - 1)]
        self.stream.write(f"\r{fitted}\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Remove the line, leaving the cursor at the start of an empty line."""
        if self._shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._shown = False

    def echo(self, text: str, *, stream: TextIO | None = None) -> None:
        """Print ``text`` as a line of output (stdout by default) without tearing the status
        line: it is cleared first and redrawn by the next tick."""
        self.clear()
        out = stream if stream is not None else sys.stdout
        print(text, file=out, flush=True)


@dataclass(slots=True)
class _File:
    size: int
    done: int = 0
    moved: int = 0
    ended: bool = False


class TransferProgress:
    """Counts a transfer of many files and renders it on a ``StatusLine``.

    The transfer code reports events by name: ``expect`` (a file to come, with its size),
    ``started``, ``advance`` (bytes of it done; ``moved`` when they travelled over the network)
    and ``finished`` (with the file's final size and bytes moved, or the error). A file that
    fails takes the bytes it did not reach out of the total, so the total stays what will be
    done. Counting costs a few additions; drawing happens only on ``tick``.
    """

    def __init__(
        self,
        *,
        verb: str,
        line: StatusLine | None = None,
        clock: Clock | None = None,
        keep_finished: bool = True,
    ):
        self.verb = verb
        # False: a finished file's record is dropped, so a tree of millions of files costs no
        # memory per file (each name must then be reported once).
        self.keep_finished = keep_finished
        self.line = line if line is not None else StatusLine()
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._end: float | None = None
        self._files: dict[str, _File] = {}
        self.files_total = 0
        self.files_done = 0
        self.failures = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.bytes_ok = 0  # bytes of the files that finished without error
        self.bytes_moved = 0
        self.current = ""
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    @classmethod
    def silent(cls, verb: str) -> TransferProgress:
        """One that counts and never draws: for callers that show nothing."""
        return cls(verb=verb, line=StatusLine(enabled=False))

    # -- events -----------------------------------------------------------------------------

    def expect(self, name: str, size: int) -> None:
        """A file that will be transferred; reporting it again changes nothing."""
        if name not in self._files:
            self._files[name] = _File(size=size)
            self.files_total += 1
            self.bytes_total += size

    def started(self, name: str, size: int) -> None:
        self.expect(name, size)
        self.current = name

    def advance(self, name: str, n: int, *, moved: bool = False) -> None:
        f = self._files.get(name)
        if f is None or f.ended:
            return
        f.done += n
        self.bytes_done += n
        if moved:
            f.moved += n
            self.bytes_moved += n

    def finished(
        self, name: str, *, size: int | None = None, moved: int | None = None, error: bool = False
    ) -> None:
        """The file is done: ``size`` bytes of it (its final size) with ``moved`` of them over
        the network, or failed (``error``). Bytes not reported along the way are added now."""
        self.expect(name, size or 0)
        f = self._files[name]
        if f.ended:
            return
        f.ended = True
        self.files_done += 1
        if error:
            self.failures += 1
            self.bytes_total -= max(0, f.size - f.done)
            if not self.keep_finished:
                del self._files[name]
            return
        final = f.size if size is None else size
        self.bytes_total += final - f.size
        f.size = final
        if final > f.done:
            self.bytes_done += final - f.done
            f.done = final
        self.bytes_ok += final
        if moved is not None and moved > f.moved:
            self.bytes_moved += moved - f.moved
            f.moved = moved
        if not self.keep_finished:
            del self._files[name]

    # -- figures ----------------------------------------------------------------------------

    def elapsed(self, now: float | None = None) -> float:
        if self._end is not None:
            return self._end - self._start
        return (self._clock() if now is None else now) - self._start

    def sample(self, now: float) -> None:
        """Note the bytes done at ``now``; the rate is measured between such samples."""
        self._samples.append((now, self.bytes_done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Bytes per second over the last RATE_WINDOW_S, or the average since the start when
        less than MIN_RATE_SPAN_S has been measured."""
        if self._samples:
            then, done_then = self._samples[0]
            span = now - then
            if span >= MIN_RATE_SPAN_S:
                return max(0.0, (self.bytes_done - done_then) / span)
        elapsed = now - self._start
        return self.bytes_done / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left at the current rate; None while nothing has moved yet."""
        left = max(0, self.bytes_total - self.bytes_done)
        if left == 0:
            return 0.0
        rate = self.rate(now)
        return left / rate if rate > 0 else None

    def render(self, now: float) -> str:
        eta = self.eta(now)
        parts = [
            f"{self.verb} {self.files_done}/{self.files_total} files",
            f"{human_size(self.bytes_done)}/{human_size(self.bytes_total)}",
            f"{human_size(self.rate(now))}/s",
            f"ETA {'--:--' if eta is None else human_duration(eta)}",
        ]
        if self.failures:
            parts.append(f"{self.failures} failed")
        if self.current and self.files_done < self.files_total:
            parts.append(display_name(self.current))
        return "  ".join(parts)

    def summary(self, *, moved_as: str | None = None) -> dict[str, int | float]:
        """The figures of a finished transfer: ``files`` and ``bytes`` that made it,
        ``failures``, ``seconds``, and the bytes moved under the key ``moved_as``."""
        out: dict[str, int | float] = {
            "files": self.files_done - self.failures,
            "bytes": self.bytes_ok,
        }
        if moved_as is not None:
            out[moved_as] = self.bytes_moved
        out["seconds"] = round(self.elapsed(), 3)
        out["failures"] = self.failures
        return out

    # -- drawing ----------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        self.sample(now)
        self.line.show(self.render(now))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TransferProgress]:
        """Redraw every TICK_S while the body runs (on a TTY); clear the line at the end."""
        self._start = self._clock()
        self._end = None
        ticker = _ticker("progress", self.tick) if self.line.enabled else None
        try:
            yield self
        finally:
            self._end = self._clock()
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            self.line.clear()


def _ticker(name: str, draw: Callable[[], None]) -> asyncio.Task[None]:
    async def once() -> None:
        draw()

    return Periodic(name, once, interval_s=TICK_S, jitter=0.0).start()


@contextlib.asynccontextmanager
async def waiting(
    what: str, *, line: StatusLine | None = None, clock: Clock | None = None
) -> AsyncIterator[None]:
    """While the body waits for one long answer, show ``what``, a spinner and the time spent,
    redrawn every TICK_S; the line is cleared when the answer (or an error) comes."""
    shown = line if line is not None else StatusLine()
    now = clock or time.monotonic
    start = now()
    turns = 0

    def draw() -> None:
        nonlocal turns
        spin = _SPINNER[turns % len(_SPINNER)]
        turns += 1
        shown.show(f"{spin} {what}  {human_duration(now() - start)}")

    ticker = _ticker("waiting", draw) if shown.enabled else None
    try:
        yield
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        shown.clear()
