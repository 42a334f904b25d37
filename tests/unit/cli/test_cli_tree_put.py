"""Pure parts of a tree backup: the wire form of an entry, a file replaced before it is read,
and what fsck says of snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cofre.cli.cmd_cluster import fsck_text
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.tree import walk
from cofre.cli.tree_put import _read_one, source_paths, tree_entry
from cofre.models import ChunkHash, ChunkRef
from cofre.protocol.manager_api import FsckReport


def test_tree_entry_carries_what_the_next_backup_compares(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    os.symlink("f", tmp_path / "l")
    by = {e.path.rsplit("/", 1)[-1]: e for e in walk([str(tmp_path)], warn=print)}
    ref = ChunkRef(ChunkHash("b" * 64), 3)
    f = tree_entry(by["f"], (ref,))
    assert (f.kind, f.size, f.chunks, f.inode) == ("file", 3, [(ref.hash, 3)], by["f"].inode)
    assert f.ctime_ns == by["f"].ctime_ns and f.device == by["f"].device
    link = tree_entry(by["l"])
    assert (link.kind, link.target, link.inode, link.chunks) == ("symlink", "f", None, [])


def test_a_file_replaced_after_the_walk_is_refused_not_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    (walked,) = [e for e in walk([str(tmp_path)], warn=print) if e.kind == "file"]
    now, data = _read_one(walked)
    assert data == b"abc" and now.inode == walked.inode
    (tmp_path / "g").write_bytes(b"other")
    os.replace(tmp_path / "g", tmp_path / "f")
    with pytest.raises(LocalFileError, match="changed while it was read"):
        _read_one(walked)


def test_source_paths_are_absolute_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert source_paths(["a", "./a/", str(tmp_path / "b")]) == [
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    ]


def test_fsck_text_counts_snapshots_and_names_their_bad_chunks() -> None:
    report = FsckReport.model_validate(
        {
            "healthy": False,
            "summary": {
                "files": 0,
                "versions": 0,
                "snapshots": 2,
                "chunks": 5,
                "ok": 4,
                "under_replicated": 0,
                "missing": 1,
                "corrupt": 0,
            },
            "files": [],
            "snapshots": [
                {"snapshot_id": "a" * 32, "healthy": True, "chunks": 2, "unhealthy": []},
                {
                    "snapshot_id": "c" * 32,
                    "healthy": False,
                    "chunks": 3,
                    "unhealthy": [
                        {
                            "hash": "d" * 64,
                            "length": 9,
                            "nodes": [],
                            "corrupt_on": [],
                            "status": "missing",
                        }
                    ],
                },
            ],
        }
    )
    text = fsck_text(report)
    assert text.startswith("0 files, 0 versions, 2 snapshots, 5 chunks:")
    assert f"snapshot cccccccc: chunk {'d' * 16} missing (on none)" in text
    assert text.endswith("NOT HEALTHY")
