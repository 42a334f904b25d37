"""Argument parsing of the `cofre` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cofre.cli.cmd_snapshots import forget_request
from cofre.cli.exitcodes import ExitCode, UsageError
from cofre.cli.local import manager_config
from cofre.cli.main import build_parser, run
from cofre.cli.tree_put import split_tags
from cofre.cli.tree_restore import restore_path


def test_put_takes_paths_and_optional_name() -> None:
    args = build_parser().parse_args(["put", "a.txt", "b.txt", "--json"])
    assert args.paths == ["a.txt", "b.txt"]
    assert args.name is None
    assert args.json is True


def test_get_defaults_to_latest_version_and_no_force() -> None:
    args = build_parser().parse_args(["get", "docs/a.txt"])
    assert args.name == "docs/a.txt"
    assert args.version is None
    assert args.force is False
    assert args.output is None


def test_local_up_defaults(tmp_path: Path) -> None:
    args = build_parser().parse_args(["local", "up"])
    assert args.nodes == 4
    # Unset flags leave the manager's settings to its defaults and environment.
    config = manager_config(args, tmp_path, env={}, token="t")
    assert config.port == 8080
    assert config.placement.replication_factor == 2
    assert config.placement.primary_keeps_copy is False
    assert args.data_dir is None  # resolved later from COFRE_DATA_DIR or ./.cofre-local


def test_connection_flags_after_the_command() -> None:
    args = build_parser().parse_args(["ls", "--manager", "http://m:1", "--token", "t"])
    assert (args.manager, args.token) == ("http://m:1", "t")


def test_gc_grace_is_a_non_negative_number() -> None:
    assert build_parser().parse_args(["gc", "--grace", "0"]).grace == 0.0


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "x", "--version", "0"],
        ["gc", "--grace", "-1"],
        ["put"],
        ["nonsense"],
        ["local"],
        ["rm"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("cofre: error: ")
    assert err.count("\n") == 1


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for code in ExitCode:
        assert f"  {int(code):<4} " in out


def test_name_needs_exactly_one_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COFRE_MANAGER", "https://127.0.0.1:9")
    monkeypatch.setenv("COFRE_TOKEN", "t")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    code = run(["put", str(tmp_path / "a"), str(tmp_path / "b"), "--name", "x"])
    assert code == ExitCode.USAGE
    assert "--name needs exactly one PATH" in capsys.readouterr().err


def test_missing_local_file_is_a_local_file_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COFRE_MANAGER", "https://127.0.0.1:9")
    monkeypatch.setenv("COFRE_TOKEN", "t")
    code = run(["put", str(tmp_path / "absent")])
    assert code == ExitCode.LOCAL_FILE
    err = capsys.readouterr().err
    assert err.startswith("cofre: error: cannot read ")
    assert "Traceback" not in err


def test_put_tree_flags() -> None:
    argv = ["put", "d", "--host", "h", "--tag", "a,b", "--tag", "c", "--parent", "1234abcd"]
    args = build_parser().parse_args([*argv, "--force-read"])
    assert (args.host, args.parent, args.force_read, args.per_file) == (
        "h",
        "1234abcd",
        True,
        False,
    )
    assert split_tags(args.tag) == ["a", "b", "c"]


def test_restore_needs_a_target_and_takes_paths() -> None:
    args = build_parser().parse_args(
        ["restore", "latest", "--target", "/tmp/t", "--path", "a/b", "--path", "/c/"]
    )
    assert (args.snapshot, args.target, args.path) == ("latest", "/tmp/t", ["a/b", "/c/"])
    assert [restore_path(p) for p in args.path] == ["a/b", "c"]
    with pytest.raises(UsageError, match="--path"):
        restore_path("a/../b")


def test_forget_keep_rules_become_the_request() -> None:
    argv = ["forget", "--keep-last", "3", "--keep-daily", "unlimited", "--keep-within", "2w"]
    args = build_parser().parse_args([*argv, "--dry-run", "--host", "h"])
    rules = forget_request(args)
    assert rules is not None
    assert (rules.keep_last, rules.keep_daily, rules.keep_hourly) == (3, -1, 0)
    assert rules.keep_within == 14 * 86400
    assert rules.dry_run and rules.host == "h"
    ids = build_parser().parse_args(["forget", "1234abcd", "5678"])
    assert ids.snapshots == ["1234abcd", "5678"] and forget_request(ids) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["forget", "--keep-last", "0"],
        ["forget", "--keep-daily", "x"],
        ["forget", "--keep-within", "7"],
        ["restore", "latest"],
        ["restore", "nope", "--target", "t"],
        ["forget", "abc"],
        ["put", "d", "--parent", "ABCD1234"],
    ],
)
def test_bad_snapshot_flags_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == ExitCode.USAGE
    assert capsys.readouterr().err.count("\n") == 1


def test_forget_needs_ids_or_rules_not_both(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COFRE_MANAGER", "https://127.0.0.1:9")
    monkeypatch.setenv("COFRE_TOKEN", "t")
    assert run(["forget"]) == ExitCode.USAGE
    assert "keep rules" in capsys.readouterr().err
    assert run(["forget", "1234abcd", "--keep-last", "1"]) == ExitCode.USAGE
    assert "not both" in capsys.readouterr().err
