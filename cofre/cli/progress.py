"""A one-line progress bar on stderr for big transfers, shown only to a person at a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from cofre.cli.output import display_name, human_size

# Below this a transfer is over before a bar helps anyone.
MIN_BYTES_FOR_BAR = 8 * 1024 * 1024
_REDRAW_EVERY_S = 0.1
_WIDTH = 24


class Progress:
    """Counts bytes of one transfer; draws only when ``stream`` is a TTY and the size is large."""

    def __init__(
        self, *, label: str, total: int, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = _is_tty(self.stream) and total >= MIN_BYTES_FOR_BAR
        self.enabled = enabled
        self.label = display_name(label)
        self.total = total
        self.done = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= _REDRAW_EVERY_S or self.done >= self.total:
            self._last_draw = now
            self._draw(now)

    def finish(self) -> None:
        """End the bar's line (if one was drawn), leaving the terminal clean for the result."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        fraction = 1.0 if self.total == 0 else min(1.0, self.done / self.total)
        filled = int(fraction * _WIDTH)
        elapsed = max(now - self._start, 1e-6)
        rate = human_size(self.done / elapsed)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        text = (
            f"\r{self.label[:40]} [{bar}] {fraction * 100:5.1f}% "
            f"{human_size(self.done)}/{human_size(self.total)} {rate}/s"
        )
        self.stream.write(text + "\x1b[K")
        self.stream.flush()
        self._drawn = True


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
