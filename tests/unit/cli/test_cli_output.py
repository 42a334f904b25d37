"""Human sizes, names shown on one line, tables."""

from __future__ import annotations

import pytest

from cofre.cli.output import display_name, human_size, table


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (3.5 * 1024 * 1024, "3.5 MiB"),
        (200 * 1024**3, "200.0 GiB"),
        (5 * 1024**6, "5120.0 PiB"),
    ],
)
def test_human_size(n: float, text: str) -> None:
    assert human_size(n) == text


def test_display_name_escapes_control_characters_only() -> None:
    assert display_name("docs/a.txt") == "docs/a.txt"
    assert display_name("ünïcødé/名前") == "ünïcødé/名前"
    assert display_name("two\nlines") == "two\\nlines"
    assert "\n" not in display_name("a\n\tb\x1b[2J")


def test_table_aligns_columns() -> None:
    text = table(["NAME", "SIZE"], [["a", "1 B"], ["longer", "10.0 KiB"]], right={1})
    lines = text.splitlines()
    assert lines[0] == "NAME        SIZE"
    assert lines[1] == "a            1 B"
    assert lines[2] == "longer  10.0 KiB"
