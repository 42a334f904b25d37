"""The parent snapshot's files by path: an unchanged file re-uses its chunks, a touched one not."""

from __future__ import annotations

import os
from pathlib import Path

from cofre.cli.parentindex import ParentFile, ParentIndex
from cofre.cli.tree import LocalEntry, walk
from cofre.models import ChunkHash, ChunkRef

REF = ChunkRef(ChunkHash("a" * 64), 3)


def _files(root: Path) -> dict[str, LocalEntry]:
    return {e.path: e for e in walk([str(root)], warn=print) if e.kind == "file"}


def _recorded(e: LocalEntry, chunks: tuple[ChunkRef, ...] = (REF,)) -> ParentFile:
    return ParentFile(e.path, e.size, e.mtime_ns, e.ctime_ns, e.inode, chunks)


def test_unchanged_reused_touched_and_new_read(tmp_path: Path) -> None:
    for name in ("same", "touched", "replaced"):
        (tmp_path / name).write_bytes(b"abc")
    before = _files(tmp_path)
    with ParentIndex() as parent:
        parent.add(_recorded(e) for e in before.values())
        assert parent.files == 3
        st = os.stat(tmp_path / "touched")
        os.utime(tmp_path / "touched", ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
        (tmp_path / "replaced.new").write_bytes(b"abc")
        os.replace(tmp_path / "replaced.new", tmp_path / "replaced")
        (tmp_path / "new").write_bytes(b"abc")
        now = _files(tmp_path)
        by_name = {p.rsplit("/", 1)[-1]: e for p, e in now.items()}
        assert parent.reusable(by_name["same"]) == (REF,)
        assert parent.reusable(by_name["touched"]) is None
        assert parent.reusable(by_name["replaced"]) is None  # another inode
        assert parent.reusable(by_name["new"]) is None


def test_a_record_whose_chunks_do_not_add_up_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abcd")
    (e,) = _files(tmp_path).values()
    with ParentIndex() as parent:
        parent.add([_recorded(e, (REF,))])  # 3 bytes of chunks for a 4-byte file
        assert parent.reusable(e) is None


def test_no_parent_reuses_nothing_and_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    (e,) = _files(tmp_path).values()
    parent = ParentIndex()
    where = parent._dir
    assert parent.reusable(e) is None
    parent.close()
    assert not os.path.exists(where)
