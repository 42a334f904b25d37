"""`cofre catalog rebuild`: its arguments and what it prints."""

from __future__ import annotations

import pytest

from cofre.cli.cmd_cluster import rebuild_text, run_catalog_rebuild
from cofre.cli.exitcodes import ExitCode
from cofre.cli.main import build_parser, run
from cofre.protocol.manager_api import RebuildReport


def test_catalog_rebuild_parses_with_json_and_connection_flags() -> None:
    args = build_parser().parse_args(["catalog", "rebuild", "--json", "--manager", "http://m:1"])
    assert args.handler is run_catalog_rebuild
    assert args.json is True and args.manager == "http://m:1"


def test_catalog_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["catalog"])
    assert info.value.code == ExitCode.USAGE
    assert capsys.readouterr().err.count("\n") == 1


def test_rebuild_text_names_what_came_back_and_what_was_skipped() -> None:
    full = RebuildReport(
        versions=8, names=7, skipped_incomplete=0, skipped_unreadable=0, nodes_scanned=3
    )
    assert rebuild_text(full) == "recovered 8 versions of 7 names from 3 nodes"
    partial = full.model_copy(update={"skipped_incomplete": 2, "skipped_unreadable": 1})
    lines = rebuild_text(partial).splitlines()
    assert lines[1] == "skipped 2 versions whose chunks are no longer on any node"
    assert lines[2] == "skipped 1 manifest chunks that could not be read intact"
