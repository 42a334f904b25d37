"""Names are data: which files a put picks up, and where a restore may write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cofre.cli.cmd_files import collect
from cofre.cli.download import default_dest, dest_under
from cofre.cli.exitcodes import LocalFileError, UsageError


def test_collect_names_files_by_the_path_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("a")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("b")
    os.symlink("a.txt", tmp_path / "docs" / "link")
    assert collect(["docs"], name=None) == [
        (Path("docs/a.txt"), "docs/a.txt"),
        (Path("docs/sub/b.txt"), "docs/sub/b.txt"),
    ]
    assert collect(["docs/a.txt"], name=None) == [(Path("docs/a.txt"), "docs/a.txt")]
    assert collect(["docs/a.txt"], name="x") == [(Path("docs/a.txt"), "x")]
    assert [n for _, n in collect(["."], name=None)] == ["docs/a.txt", "docs/sub/b.txt"]


def test_collect_refuses_name_for_a_directory_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        collect([str(tmp_path)], name="x")
    with pytest.raises(LocalFileError):
        collect([str(tmp_path / "absent")], name=None)


@pytest.mark.parametrize(
    ("name", "dest"),
    [("docs/a.txt", "a.txt"), ("../../etc/passwd", "passwd"), ("two\nlines", "two\nlines")],
)
def test_default_dest_is_the_last_part_in_the_current_dir(name: str, dest: str) -> None:
    assert default_dest(name) == Path(dest)


@pytest.mark.parametrize("name", ["..", "a/..", "/"])
def test_default_dest_refuses_names_without_a_file_part(name: str) -> None:
    with pytest.raises(UsageError):
        default_dest(name)


def test_dest_under_keeps_restores_inside_the_root(tmp_path: Path) -> None:
    assert dest_under(tmp_path, "small/a/b.txt") == tmp_path / "small" / "a" / "b.txt"
    for hostile in ["../../etc/passwd", "/etc/passwd", "a/../../x"]:
        with pytest.raises(UsageError):
            dest_under(tmp_path, hostile)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "link")
    with pytest.raises(UsageError):
        dest_under(tmp_path, "link/x")
