"""Retention rules: parsing and which snapshots each keeps."""

from __future__ import annotations

import datetime as dt

import pytest

from cofre.cli.exitcodes import UsageError
from cofre.cli.retention import Duration, Policy, apply, parse_duration

UTC = dt.UTC


def _t(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_parse_duration() -> None:
    assert parse_duration("7d") == Duration(days=7)
    assert parse_duration("1y6m2w3d4h") == Duration(years=1, months=6, days=17, hours=4)
    for bad in ["", "7", "d", "1x", "-1d", "1.5d", "7d "]:
        with pytest.raises(UsageError, match="not a duration"):
            parse_duration(bad)
    assert str(parse_duration("2w")) == "14d"


def test_duration_before_moves_calendar_months() -> None:
    when = dt.datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert Duration(months=1).before(when) == dt.datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert Duration(years=1, hours=12).before(when) == dt.datetime(2023, 3, 31, tzinfo=UTC)
    assert Duration(months=3).before(when) == dt.datetime(2023, 12, 31, 12, tzinfo=UTC)


def _kept(policy: Policy, times: list[float]) -> dict[float, list[str]]:
    out = apply(policy, times, when=lambda t: t, tz=UTC)
    assert [d.item for d in out] == sorted(times, reverse=True)
    return {d.item: d.reasons for d in out if d.keep}


def test_keep_last() -> None:
    times = [_t(2024, 1, d) for d in range(1, 6)]
    kept = _kept(Policy(last=2), times)
    assert kept == {times[4]: ["last"], times[3]: ["last 2"]}


def test_keep_daily_takes_the_newest_of_each_day() -> None:
    times = [_t(2024, 1, 1, 8), _t(2024, 1, 1, 20), _t(2024, 1, 2, 9), _t(2024, 1, 4, 1)]
    kept = _kept(Policy(daily=2), times)
    assert kept == {times[3]: ["daily 1"], times[2]: ["daily 2"]}
    kept = _kept(Policy(daily=10), times)
    assert set(kept) == {times[1], times[2], times[3]}  # 1 Jan 08:00 is not its day's newest


def test_hourly_weekly_monthly_yearly_buckets() -> None:
    times = [
        _t(2022, 6, 1),
        _t(2023, 1, 2),  # Monday, ISO week 1 of 2023
        _t(2023, 1, 8),  # Sunday, same ISO week
        _t(2023, 2, 1, 10, 5),
        _t(2023, 2, 1, 10, 55),
        _t(2023, 2, 1, 11, 0),
    ]
    assert set(_kept(Policy(hourly=2), times)) == {times[5], times[4]}
    assert set(_kept(Policy(weekly=2), times)) == {times[5], times[2]}
    assert set(_kept(Policy(monthly=3), times)) == {times[5], times[2], times[0]}
    assert set(_kept(Policy(yearly=5), times)) == {times[5], times[0]}


def test_keep_within_counts_from_the_newest_and_reasons_add_up() -> None:
    times = [_t(2024, 1, 1), _t(2024, 1, 5), _t(2024, 1, 9), _t(2024, 1, 10)]
    kept = _kept(Policy(within=Duration(days=5), last=1), times)
    assert kept == {
        times[3]: ["last", "within 5d"],
        times[2]: ["within 5d"],
        times[1]: ["within 5d"],
    }


def test_policy_text_and_empty() -> None:
    assert Policy().empty
    assert not Policy(within=Duration(days=1)).empty
    assert str(Policy(last=3, daily=7, within=Duration(days=2))) == (
        "--keep-last 3 --keep-daily 7 --keep-within 2d"
    )
