"""The keep rules of `cofre forget`, as the manager takes them (it applies restic's rules).

``--keep-within`` takes a duration such as ``7d``, ``2w``, ``1y6m`` or ``36h``; the manager takes
seconds, so a year counts 365 days and a month 30.
"""

from __future__ import annotations

import re

from cofre.cli.exitcodes import UsageError

_DURATION = re.compile(r"(\d+)([ymwdh])")
_SECONDS = {"y": 365 * 86400, "m": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600}


def parse_duration(text: str) -> int:
    """Seconds in ``text``: parts of years, months, weeks, days, hours (``1y2m3w4d5h``);
    UsageError for anything else."""
    if not text or _DURATION.sub("", text) != "":
        raise UsageError(f"not a duration: {text!r} (e.g. 7d, 2w, 1y6m, 36h: y, m(onths), w, d, h)")
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(text))


def keep_count(text: str) -> int:
    """A --keep-* count: a whole number from 1, or ``unlimited`` (-1 on the wire)."""
    if text == "unlimited":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"not a count: {text!r} (a whole number, or unlimited)") from None
    if value < 1:
        raise UsageError(f"a keep count must be at least 1 (or unlimited): {text}")
    return value
