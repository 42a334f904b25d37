"""Walking a tree for a snapshot: what is recorded, what is skipped and said, change detection."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from cofre.cli.exitcodes import LocalFileError
from cofre.cli.tree import LocalEntry, snapshot_path, unchanged, walk


def _tree(root: Path) -> None:
    (root / "b").mkdir()
    (root / "b" / "empty").mkdir()
    (root / "a.txt").write_bytes(b"hello")
    (root / "b" / "x").write_bytes(b"12345678")
    os.chmod(root / "b" / "x", 0o640)
    os.symlink("../a.txt", root / "b" / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "odd name\nwith newline").write_bytes(b"")
    os.utime(root / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def test_walk_records_files_dirs_symlinks_in_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    warnings: list[str] = []
    entries = list(walk([str(src)], warn=warnings.append))
    top = str(src).lstrip("/")
    paths = [e.path for e in entries]
    assert paths == [
        top,
        f"{top}/a.txt",
        f"{top}/b",
        f"{top}/b/empty",
        f"{top}/b/link",
        f"{top}/b/x",
        f"{top}/dangling",
        f"{top}/odd name\nwith newline",
    ]
    by = {e.path[len(top) + 1 :]: e for e in entries[1:]}
    assert by["a.txt"].kind == "file" and by["a.txt"].size == 5
    assert by["a.txt"].mtime_ns == 1_600_000_000_123_456_789
    assert by["b/x"].mode == 0o640 and by["b/x"].inode == os.stat(src / "b" / "x").st_ino
    assert by["b/empty"].kind == "dir"
    assert by["b/link"].kind == "symlink" and by["b/link"].target == "../a.txt"
    assert by["dangling"].target == "/nonexistent/target"
    assert by["a.txt"].uid == os.getuid()
    assert warnings == []


def test_special_files_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    (tmp_path / "f").write_bytes(b"x")
    warnings: list[str] = []
    try:
        entries = list(walk([str(tmp_path)], warn=warnings.append))
    finally:
        sock.close()
    assert [e.path.rsplit("/", 1)[-1] for e in entries[1:]] == ["f"]
    assert len(warnings) == 2
    assert "fifo: a fifo" in warnings[0] and "sock: a socket" in warnings[1]


def test_names_that_are_not_text_are_skipped_with_a_warning(tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(tmp_path), b"bad\xff")
    with open(bad, "wb") as f:
        f.write(b"x")
    warnings: list[str] = []
    entries = list(walk([str(tmp_path)], warn=warnings.append))
    assert len(entries) == 1
    assert len(warnings) == 1 and "valid Unicode" in warnings[0]


def test_unreadable_directory_is_said_not_silent(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any directory")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret").write_bytes(b"x")
    locked.chmod(0)
    warnings: list[str] = []
    try:
        entries = list(walk([str(tmp_path)], warn=warnings.append))
    finally:
        locked.chmod(0o700)
    assert [e.path.rsplit("/", 1)[-1] for e in entries[1:]] == ["locked"]
    assert len(warnings) == 1 and "cannot list" in warnings[0]


def test_snapshot_paths_of_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    here = str(tmp_path).lstrip("/")
    assert snapshot_path("photos/") == f"{here}/photos"
    assert snapshot_path("./photos//2020/") == f"{here}/photos/2020"
    assert snapshot_path("/srv/data/") == "srv/data"
    assert snapshot_path(".") == str(tmp_path).lstrip("/")
    assert snapshot_path("../x") == str(tmp_path.parent / "x").lstrip("/")


def test_a_source_that_is_no_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(LocalFileError, match="not a directory"):
        list(walk([str(tmp_path / "f")], warn=print))
    with pytest.raises(LocalFileError, match="cannot read"):
        list(walk([str(tmp_path / "missing")], warn=print))


def _only_file(root: Path) -> LocalEntry:
    return next(e for e in walk([str(root)], warn=print) if e.kind == "file")


def test_unchanged_by_size_mtime_ctime_inode(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    before = _only_file(tmp_path)
    rec = {
        "size": before.size,
        "mtime_ns": before.mtime_ns,
        "ctime_ns": before.ctime_ns,
        "inode": before.inode,
    }
    assert unchanged(_only_file(tmp_path), **rec)
    # touched: same bytes, new mtime and ctime
    os.utime(f, ns=(before.mtime_ns + 1_000, before.mtime_ns + 1_000))
    assert not unchanged(_only_file(tmp_path), **rec)
    now = _only_file(tmp_path)
    assert not unchanged(now, **{**rec, "inode": before.inode + 1})
    assert not unchanged(now, **{**rec, "size": 4})


def test_overlapping_sources_are_walked_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    sources = [str(tmp_path / "a" / "b"), str(tmp_path / "a"), str(tmp_path / "a") + "/"]
    paths = [e.path for e in walk(sources, warn=print)]
    assert len(paths) == len(set(paths)) == 3
