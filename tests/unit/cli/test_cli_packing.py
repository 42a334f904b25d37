"""Packing small things into bounded groups, and the restore's temp file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cofre.cli.download import install, part_file
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.packing import pack


def test_pack_bounds_items_and_bytes_and_keeps_order() -> None:
    sizes = [3, 3, 3, 9, 1, 1, 1, 1]
    groups = pack(sizes, size=lambda n: n, max_items=3, max_bytes=6)
    # A group closes before it would pass 6 bytes or 3 items; 9 is too big and goes alone.
    assert groups == [[3, 3], [3], [9], [1, 1, 1], [1]]
    assert pack([], size=lambda n: n, max_items=3, max_bytes=6) == []


def test_part_file_sets_mode_and_mtime_and_install_refuses_existing(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with part_file(dest, mode=0o4751, mtime=1_600_000_000.0) as (f, tmp):
        f.write(b"data")
    st = os.stat(tmp)
    assert st.st_mode & 0o7777 == 0o751  # permission bits only, never setuid
    assert st.st_mtime == 1_600_000_000.0
    dest.write_bytes(b"other")
    with pytest.raises(LocalFileError, match="already exists"):
        install(tmp, dest, force=False)
    assert not os.path.exists(tmp)
    assert dest.read_bytes() == b"other"


def test_part_file_is_removed_when_the_write_fails(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with (
        pytest.raises(LocalFileError, match="cannot write"),
        part_file(dest, mode=0o644, mtime=0.0) as (f, _),
    ):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
