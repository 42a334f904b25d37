"""Human sizes, names shown on one line, tables."""

from __future__ import annotations

import json

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


def test_a_put_says_how_much_travelled_when_chunks_were_stored_already() -> None:
    from cofre.cli.upload import PutResult

    fresh = PutResult(name="a", version=1, size=3 << 20, chunks=1, sent_bytes=3 << 20)
    assert fresh.summary() == "version 1  3.0 MiB"
    again = PutResult(name="a", version=2, size=3 << 20, chunks=1, sent_bytes=0)
    assert again.summary() == "version 2  3.0 MiB  (0 B sent, the rest was stored already)"
    empty = PutResult(name="e", version=1, size=0, chunks=0, sent_bytes=0)
    assert empty.summary() == "version 1  0 B"


def test_where_text_prints_each_reason_once() -> None:
    from cofre.cli.cmd_where import where_text
    from cofre.protocol.manager_api import WhereReport

    placed = {"node_id": "n1", "state": "ok", "why": "placed by an upload", "since": None}
    copied = {"node_id": "n2", "state": "missing", "why": "copied off n3", "since": None}
    chunk = {"hash": "ab" * 32, "length": 10, "status": "ok", "copies": [placed, copied]}
    manifest = {"hash": "cd" * 32, "length": 5, "status": "ok", "copies": [placed]}
    report = {
        "name": "f",
        "version": 2,
        "size": 10,
        "mode": 0o644,
        "mtime": 0.0,
        "created": 0.0,
        "replication_factor": 2,
        "chunks": [chunk],
        "manifest": manifest,
    }
    text = where_text(WhereReport.model_validate_json(json.dumps(report)))
    assert text.splitlines() == [
        "f version 2: 10 B in 1 chunk, 2 copies each",
        f"chunk 1/1 {'ab' * 8}  10 B  ok",
        "  n1  ok  since -  [1]",
        "  n2  missing  since -  [2]",
        f"manifest {'cd' * 8}  5 B  ok",
        "  n1  ok  since -  [1]",
        "why:",
        "  [1] placed by an upload",
        "  [2] copied off n3",
    ]
