"""Which snapshots keep rules keep: restic's `forget` policy, as a pure function.

The snapshots of one group are taken newest first. Each count rule (last, hourly, daily, weekly,
monthly, yearly) keeps a snapshot when it falls into a period that rule has not seen yet and the
rule has periods left; every rule looks at every snapshot, so one snapshot may be kept for
several reasons and uses a period of each. -1 means no limit. ``within`` keeps what is less
than that long before the group's newest snapshot (not before now: an idle host's last
snapshots are not all removed), ``tags`` what carries any of those tags. Periods are the
calendar's in the given time zone; weeks are ISO weeks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cofre.manager.catalog_rows import SnapshotRow


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepRules:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_s: float | None = None
    tags: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and self.within_s is None and not self.tags


@dataclass(frozen=True, slots=True)
class Decision:
    keep: list[tuple[SnapshotRow, list[str]]]  # newest first, with the reasons
    remove: list[SnapshotRow]  # newest first


def _hour(t: dt.datetime, _: int) -> int:
    return ((t.year * 100 + t.month) * 100 + t.day) * 100 + t.hour


def _day(t: dt.datetime, _: int) -> int:
    return (t.year * 100 + t.month) * 100 + t.day


def _week(t: dt.datetime, _: int) -> int:
    year, week, _day_of_week = t.isocalendar()
    return year * 100 + week


def _month(t: dt.datetime, _: int) -> int:
    return t.year * 100 + t.month


def _year(t: dt.datetime, _: int) -> int:
    return t.year


def _position(_: dt.datetime, nr: int) -> int:
    return nr  # every snapshot is a period of its own for keep-last


def describe_duration(seconds: float) -> str:
    """``2d3h`` style, as the reason of a keep-within."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def apply(snapshots: Sequence[SnapshotRow], rules: KeepRules, *, tz: ZoneInfo) -> Decision:
    """Split one group's snapshots into those the rules keep (and why) and those they remove.
    Empty rules keep everything (the caller refuses them before)."""
    ordered = sorted(snapshots, key=lambda s: (s.time, s.snapshot_id), reverse=True)
    if rules.empty:
        return Decision(keep=[(s, ["no keep rule"]) for s in ordered], remove=[])
    buckets: list[tuple[str, int, Callable[[dt.datetime, int], int]]] = [
        ("last snapshot", rules.last, _position),
        ("hourly snapshot", rules.hourly, _hour),
        ("daily snapshot", rules.daily, _day),
        ("weekly snapshot", rules.weekly, _week),
        ("monthly snapshot", rules.monthly, _month),
        ("yearly snapshot", rules.yearly, _year),
    ]
    left = [count for _, count, _ in buckets]
    seen: list[int | None] = [None] * len(buckets)
    newest = ordered[0].time if ordered else 0.0
    keep: list[tuple[SnapshotRow, list[str]]] = []
    remove: list[SnapshotRow] = []
    for nr, snap in enumerate(ordered):
        reasons: list[str] = []
        carried = sorted(rules.tags.intersection(snap.tags))
        if carried:
            reasons.append(f"has tags {','.join(carried)}")
        local = dt.datetime.fromtimestamp(snap.time, tz)
        for i, (reason, _, key) in enumerate(buckets):
            period = key(local, nr)
            if period != seen[i] and (left[i] > 0 or left[i] == -1):
                seen[i] = period
                if left[i] > 0:
                    left[i] -= 1
                reasons.append(reason)
        if rules.within_s is not None and snap.time > newest - rules.within_s:
            reasons.append(f"within {describe_duration(rules.within_s)}")
        if reasons:
            keep.append((snap, reasons))
        else:
            remove.append(snap)
    return Decision(keep=keep, remove=remove)
