"""Writing a snapshot's entries below a target: paths checked, never through a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cofre.cli.exitcodes import LocalFileError
from cofre.cli.restorefs import HostileEntry, Meta, RestoreRoot, entry_parts

META = Meta(mode=0o640, mtime_ns=1_500_000_000_000_000_001, uid=os.getuid(), gid=os.getgid())


def _write(root: RestoreRoot, path: str, data: bytes, meta: Meta = META) -> None:
    with root.file(path, meta) as fd:
        os.write(fd, data)


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "a/../../x", "..", "a/./b", "a//b", "a/", "./a", "a\x00b"]
)
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(HostileEntry, match="refused entry"):
        entry_parts(path)


def test_plain_paths_split() -> None:
    assert entry_parts("srv/data/a b\nc") == ("srv", "data", "a b\nc")
    assert entry_parts("...") == ("...",)


def test_files_dirs_symlinks_with_modes_and_mtimes(tmp_path: Path) -> None:
    target = tmp_path / "not" / "there" / "yet"
    dir_meta = Meta(mode=0o555, mtime_ns=1_400_000_000_000_000_000, uid=0, gid=0)
    with RestoreRoot(target, force=False, owners=False) as root:
        root.make_dir("d", dir_meta)
        root.make_dir("d/empty", dir_meta)
        _write(root, "d/f", b"bytes")  # into a 0o555 dir: its mode is set only at the end
        root.symlink("d/link", "f", META)
        _write(root, "deep/er/g", b"g")  # parents not in the snapshot are made
        assert root.finish() == []
    assert (target / "d" / "f").read_bytes() == b"bytes"
    st = os.stat(target / "d" / "f")
    assert st.st_mode & 0o7777 == 0o640 and st.st_mtime_ns == META.mtime_ns
    assert os.readlink(target / "d" / "link") == "f"
    assert os.lstat(target / "d" / "link").st_mtime_ns == META.mtime_ns
    for d in ("d", "d/empty"):
        st = os.stat(target / d)
        assert st.st_mode & 0o7777 == 0o555
        assert st.st_mtime_ns == dir_meta.mtime_ns  # set after the content was written
    assert (target / "deep" / "er" / "g").read_bytes() == b"g"
    assert not [p for p in target.rglob("*") if p.name.endswith(".cofre-part")]


def test_setuid_bits_only_for_root(tmp_path: Path) -> None:
    with RestoreRoot(tmp_path, force=False, owners=False) as root:
        _write(root, "s", b"x", Meta(mode=0o4755, mtime_ns=0, uid=0, gid=0))
    assert os.stat(tmp_path / "s").st_mode & 0o7777 == 0o755


def test_never_writes_through_a_symlink_the_restore_made(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    with RestoreRoot(target, force=True, owners=False) as root:
        root.symlink("a", str(outside), META)
        with pytest.raises(HostileEntry, match="'a' is not a directory"):
            _write(root, "a/evil", b"x")
        with pytest.raises(HostileEntry):
            root.make_dir("a/sub", META)
        with pytest.raises(HostileEntry):
            root.symlink("a/l2", "/etc", META)
    assert list(outside.iterdir()) == []


def test_never_writes_through_a_symlink_found_in_the_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    (target / "real").mkdir(parents=True)
    os.symlink(outside, target / "real" / "sub")
    with RestoreRoot(target, force=True, owners=False) as root:
        with pytest.raises(HostileEntry, match="not a directory"):
            _write(root, "real/sub/f", b"x")
        # a file where a directory is wanted is refused the same way
        _write(root, "plain", b"x")
        with pytest.raises(HostileEntry):
            _write(root, "plain/f", b"x")
    assert list(outside.iterdir()) == []


def test_existing_files_need_force_and_a_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target = tmp_path / "t"
    target.mkdir()
    (target / "f").write_bytes(b"old")
    os.symlink(victim, target / "l")
    with (
        RestoreRoot(target, force=False, owners=False) as root,
        pytest.raises(LocalFileError, match="already exists"),
    ):
        _write(root, "f", b"new")
    assert (target / "f").read_bytes() == b"old"
    with RestoreRoot(target, force=True, owners=False) as root:
        _write(root, "f", b"new")
        _write(root, "l", b"new")
    assert (target / "f").read_bytes() == b"new"
    assert not (target / "l").is_symlink() and (target / "l").read_bytes() == b"new"
    assert victim.read_bytes() == b"keep"
    assert sorted(p.name for p in target.iterdir()) == ["f", "l"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with (
        RestoreRoot(tmp_path, force=False, owners=False) as root,
        pytest.raises(RuntimeError),
        root.file("f", META) as fd,
    ):
        os.write(fd, b"partial")
        raise RuntimeError("fetch failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="owners are restored only by root")
def test_owners_restored_as_root(tmp_path: Path) -> None:
    meta = Meta(mode=0o600, mtime_ns=0, uid=12345, gid=23456)
    with RestoreRoot(tmp_path, force=False) as root:
        root.make_dir("d", meta)
        _write(root, "d/f", b"x", meta)
        root.symlink("d/l", "f", meta)
        assert root.finish() == []
    for p in ("d", "d/f"):
        st = os.stat(tmp_path / p)
        assert (st.st_uid, st.st_gid) == (12345, 23456)
    st = os.lstat(tmp_path / "d" / "l")
    assert (st.st_uid, st.st_gid) == (12345, 23456)
