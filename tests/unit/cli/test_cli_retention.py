"""Parsing the keep rules of `cofre forget`."""

from __future__ import annotations

import pytest

from cofre.cli.exitcodes import UsageError
from cofre.cli.retention import keep_count, parse_duration

DAY = 86400


def test_parse_duration() -> None:
    assert parse_duration("7d") == 7 * DAY
    assert parse_duration("36h") == 36 * 3600
    assert parse_duration("1y6m2w3d4h") == 365 * DAY + 180 * DAY + 17 * DAY + 4 * 3600
    assert parse_duration("2w") == 14 * DAY
    for bad in ["", "7", "d", "1x", "-1d", "1.5d", "7d ", "d7"]:
        with pytest.raises(UsageError, match="not a duration"):
            parse_duration(bad)


def test_keep_count() -> None:
    assert keep_count("3") == 3
    assert keep_count("unlimited") == -1
    for bad, why in [("0", "at least 1"), ("-2", "at least 1"), ("x", "not a count")]:
        with pytest.raises(UsageError, match=why):
            keep_count(bad)
