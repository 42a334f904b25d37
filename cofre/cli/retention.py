"""Which snapshots a retention policy keeps, and why (restic's `forget` rules).

Within each group of snapshots (same host and paths), newest first:
- ``--keep-last N``: the N newest;
- ``--keep-hourly/daily/weekly/monthly/yearly N``: the newest of each of the N most recent
  hours (days, ISO weeks, months, years) that have a snapshot, in local time;
- ``--keep-within DURATION`` (``1y2m3w4d5h``): every snapshot less than DURATION older than
  the group's newest one (not than now: a machine that stopped backing up keeps its last ones).
A snapshot kept by any rule is kept, with every rule that keeps it as its reasons; the others
are removed. A group with no rule given is not a thing this module is asked about.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cofre.cli.exitcodes import UsageError

T = TypeVar("T")

_BUCKETS: dict[str, Callable[[dt.datetime], Hashable]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
RULES = ("last", *_BUCKETS)
_DURATION = re.compile(r"(\d+)([ymwdh])")


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration: months and years move the date, the rest are fixed lengths."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def before(self, when: dt.datetime) -> dt.datetime:
        """``when`` minus this duration."""
        months = when.year * 12 + (when.month - 1) - self.years * 12 - self.months
        year, month = divmod(months, 12)
        day = min(when.day, _month_days(year, month + 1))
        moved = when.replace(year=year, month=month + 1, day=day)
        return moved - dt.timedelta(days=self.days, hours=self.hours)

    def __str__(self) -> str:
        units = (("y", self.years), ("m", self.months), ("d", self.days), ("h", self.hours))
        return "".join(f"{n}{u}" for u, n in units if n) or "0h"


def _month_days(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (dt.date(year, month + 1, 1) - dt.date(year, month, 1)).days


def parse_duration(text: str) -> Duration:
    """``1y2m3w4d5h`` (any of the parts, in that order or not): years, months, weeks, days,
    hours. UsageError for anything else."""
    if not text or _DURATION.sub("", text) != "":
        raise UsageError(f"not a duration: {text!r} (e.g. 7d, 2w, 1y6m, 12h: y, m(onths), w, d, h)")
    total = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
    for number, unit in _DURATION.findall(text):
        total[unit] += int(number)
    return Duration(
        years=total["y"], months=total["m"], days=total["d"] + 7 * total["w"], hours=total["h"]
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """How many to keep per rule (0: the rule is not used), and ``within``."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None

    @property
    def empty(self) -> bool:
        return self.within is None and not any(self.count(rule) for rule in RULES)

    def count(self, rule: str) -> int:
        value: int = getattr(self, rule)
        return value

    def __str__(self) -> str:
        parts = [f"--keep-{rule} {self.count(rule)}" for rule in RULES if self.count(rule)]
        if self.within is not None:
            parts.append(f"--keep-within {self.within}")
        return " ".join(parts) or "no rule"


@dataclass(slots=True)
class Decision(Generic[T]):
    item: T
    reasons: list[str] = field(default_factory=list)

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


def apply(
    policy: Policy, items: Sequence[T], *, when: Callable[[T], float], tz: dt.tzinfo | None = None
) -> list[Decision[T]]:
    """Each of ``items`` (one group) with the reasons ``policy`` keeps it for (none: removed),
    newest first; ``when`` gives an item's unix time, buckets are in ``tz`` (local time)."""
    ordered = sorted(items, key=when, reverse=True)
    decisions = [Decision(item) for item in ordered]
    times = [dt.datetime.fromtimestamp(when(item), tz=tz) for item in ordered]
    for i, decision in enumerate(decisions[: policy.last]):
        decision.reasons.append("last" if i == 0 else f"last {i + 1}")
    for rule, bucket_of in _BUCKETS.items():
        wanted = policy.count(rule)
        seen: list[Hashable] = []
        for decision, t in zip(decisions, times, strict=True):
            if len(seen) >= wanted:
                break
            bucket = bucket_of(t)
            if seen and seen[-1] == bucket:
                continue
            seen.append(bucket)
            decision.reasons.append(f"{rule} {len(seen)}")
    if policy.within is not None and times:
        cutoff = policy.within.before(times[0])
        for decision, t in zip(decisions, times, strict=True):
            if t >= cutoff:
                decision.reasons.append(f"within {policy.within}")
    return decisions
