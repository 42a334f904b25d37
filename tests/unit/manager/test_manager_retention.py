"""Keep rules as restic's `forget` applies them (cofre.manager.retention, pure)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cofre.manager.catalog_rows import SnapshotRow
from cofre.manager.retention import Decision, KeepRules, apply, describe_duration
from cofre.models import SnapshotId

UTC = ZoneInfo("UTC")


def snap(when: str, *, tags: tuple[str, ...] = (), sid: str | None = None) -> SnapshotRow:
    """A committed snapshot taken at ``when`` (ISO, UTC unless it says otherwise)."""
    moment = dt.datetime.fromisoformat(when)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    t = moment.timestamp()
    return SnapshotRow(
        snapshot_id=SnapshotId(sid or f"{int(t):032x}"),
        time=t,
        host="h",
        tags=tags,
        paths=("/p",),
        parent=None,
        state="committed",
        created=t,
        expires=t,
        committed=t,
    )


def kept(decision: Decision) -> list[str]:
    return [
        dt.datetime.fromtimestamp(s.time, dt.UTC).strftime("%m-%d %H:%M") for s, _ in decision.keep
    ]


def reasons(decision: Decision) -> dict[str, list[str]]:
    return {
        dt.datetime.fromtimestamp(s.time, dt.UTC).strftime("%m-%d %H:%M"): why
        for s, why in decision.keep
    }


# Two snapshots a day, 1-10 March 2024 (a Friday to a Sunday), at 09:00 and 21:00 UTC.
TWICE_DAILY = [snap(f"2024-03-{d:02d}T{h:02d}:00") for d in range(1, 11) for h in (9, 21)]


def test_keep_last_keeps_the_newest_n_and_minus_one_keeps_all() -> None:
    d = apply(TWICE_DAILY, KeepRules(last=3), tz=UTC)
    assert kept(d) == ["03-10 21:00", "03-10 09:00", "03-09 21:00"]
    assert all(why == ["last snapshot"] for _, why in d.keep)
    assert len(d.remove) == len(TWICE_DAILY) - 3
    # newest first, whatever order they came in
    assert [s.time for s in d.remove] == sorted((s.time for s in d.remove), reverse=True)
    assert len(apply(TWICE_DAILY, KeepRules(last=-1), tz=UTC).keep) == len(TWICE_DAILY)


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    d = apply(TWICE_DAILY, KeepRules(daily=3), tz=UTC)
    assert kept(d) == ["03-10 21:00", "03-09 21:00", "03-08 21:00"]
    unlimited = apply(TWICE_DAILY, KeepRules(daily=-1), tz=UTC)
    assert len(unlimited.keep) == 10 and all(s.time % 86400 == 75600 for s, _ in unlimited.keep)


def test_days_are_the_time_zones_days() -> None:
    # 21:00 UTC is the next day at UTC+5: each day's 21:00 joins the next day's 09:00, and
    # the newest of that local day is the 09:00 one.
    plus5 = ZoneInfo("Etc/GMT-5")
    d = apply(TWICE_DAILY, KeepRules(daily=2), tz=plus5)
    assert kept(d) == ["03-10 21:00", "03-10 09:00"]
    assert kept(apply(TWICE_DAILY, KeepRules(daily=2), tz=UTC)) == ["03-10 21:00", "03-09 21:00"]


def test_keep_hourly_counts_hours_not_snapshots() -> None:
    snaps = [snap("2024-03-01T10:05"), snap("2024-03-01T10:55"), snap("2024-03-01T11:00")]
    snaps.append(snap("2024-03-01T11:59:59"))
    d = apply(snaps, KeepRules(hourly=5), tz=UTC)
    assert kept(d) == ["03-01 11:59", "03-01 10:55"]
    assert kept(apply(snaps, KeepRules(hourly=1), tz=UTC)) == ["03-01 11:59"]


def test_keep_weekly_uses_iso_weeks_across_a_year_end() -> None:
    # Thu 2020-12-31 and Sun 2021-01-03 are both in ISO week 53 of 2020; Mon 2021-01-04 opens
    # week 1 of 2021; Sun 2020-12-27 closes week 52.
    snaps = [
        snap("2020-12-27T12:00"),
        snap("2020-12-31T12:00"),
        snap("2021-01-03T12:00"),
        snap("2021-01-04T12:00"),
    ]
    d = apply(snaps, KeepRules(weekly=3), tz=UTC)
    assert kept(d) == ["01-04 12:00", "01-03 12:00", "12-27 12:00"]
    assert reasons(d)["01-03 12:00"] == ["weekly snapshot"]


def test_keep_monthly_and_yearly() -> None:
    snaps = [snap(f"{y}-{m:02d}-15T00:00") for y in (2022, 2023) for m in (1, 6, 12)]
    snaps.append(snap("2023-12-31T23:59"))
    monthly = apply(snaps, KeepRules(monthly=3), tz=UTC)
    assert kept(monthly) == ["12-31 23:59", "06-15 00:00", "01-15 00:00"]
    yearly = apply(snaps, KeepRules(yearly=5), tz=UTC)
    assert [dt.datetime.fromtimestamp(s.time, dt.UTC).year for s, _ in yearly.keep] == [2023, 2022]
    assert kept(yearly) == ["12-31 23:59", "12-15 00:00"]


def test_within_counts_back_from_the_newest_snapshot_not_from_now() -> None:
    # Snapshots from years ago: "within 2 days" keeps the newest two days of them.
    day = 86400.0
    d = apply(TWICE_DAILY, KeepRules(within_s=2 * day), tz=UTC)
    # strictly after newest - 2 days: 03-08 21:00 is exactly on the boundary and goes
    assert kept(d) == ["03-10 21:00", "03-10 09:00", "03-09 21:00", "03-09 09:00"]
    assert all(why == ["within 2d"] for _, why in d.keep)
    one_more = apply(TWICE_DAILY, KeepRules(within_s=2 * day + 1), tz=UTC)
    assert kept(one_more)[-1] == "03-08 21:00"


def test_keep_tags_keeps_any_snapshot_carrying_one() -> None:
    snaps = [snap("2024-03-01T00:00", tags=("release",)), snap("2024-03-02T00:00")]
    snaps.append(snap("2024-03-03T00:00", tags=("other", "pin")))
    d = apply(snaps, KeepRules(tags=frozenset({"release", "pin"})), tz=UTC)
    assert reasons(d) == {"03-03 00:00": ["has tags pin"], "03-01 00:00": ["has tags release"]}
    assert kept(apply(snaps, KeepRules(tags=frozenset({"nope"})), tz=UTC)) == []


def test_every_rule_sees_every_snapshot_as_restic_does() -> None:
    # The newest is kept as the last and the daily of 03-10; the 09:00 of that day is neither
    # (last and daily are both used up), and no older day is kept.
    d = apply(TWICE_DAILY, KeepRules(last=1, daily=1), tz=UTC)
    assert reasons(d) == {"03-10 21:00": ["last snapshot", "daily snapshot"]}
    combined = apply(TWICE_DAILY, KeepRules(last=2, daily=3, weekly=2, monthly=1), tz=UTC)
    assert reasons(combined) == {
        "03-10 21:00": ["last snapshot", "daily snapshot", "weekly snapshot", "monthly snapshot"],
        "03-10 09:00": ["last snapshot"],
        "03-09 21:00": ["daily snapshot"],
        "03-08 21:00": ["daily snapshot"],
        # Sunday 03-03 closes the ISO week before
        "03-03 21:00": ["weekly snapshot"],
    }
    assert len(combined.keep) + len(combined.remove) == len(TWICE_DAILY)


def test_ties_and_empty_input() -> None:
    a = snap("2024-03-01T00:00", sid="a" * 32)
    b = snap("2024-03-01T00:00", sid="b" * 32)
    d = apply([a, b], KeepRules(last=1), tz=UTC)
    assert [s.snapshot_id for s, _ in d.keep] == ["b" * 32]
    assert apply([], KeepRules(last=1), tz=UTC) == Decision(keep=[], remove=[])
    assert len(apply([a, b], KeepRules(), tz=UTC).keep) == 2  # no rule: nothing removed


def test_durations_read_as_restic_writes_them() -> None:
    assert describe_duration(86400 * 2 + 3600 * 3) == "2d3h"
    assert describe_duration(90) == "1m30s"
    assert describe_duration(0) == "0s"
