"""The stored form of a snapshot's tree: pieces that read back to the same entries, bounded,
deterministic; a root that begins with the prefix the nodes list by."""

from __future__ import annotations

import json

import pytest

from cofre.errors import BadRequest
from cofre.manager.tree_objects import (
    PIECE_BYTES,
    PIECE_ENTRIES,
    SnapshotRootDoc,
    decode_piece,
    decode_root,
    encode_root,
    object_hash,
    pieces,
)
from cofre.models import SNAPSHOT_ROOT_PREFIX, ChunkHash
from cofre.protocol.manager_api import TreeEntry

H = ChunkHash("ab" * 32)


def _entries(n: int, *, name_len: int = 10) -> list[TreeEntry]:
    out = [TreeEntry(path="top", kind="dir", mode=0o40755, mtime_ns=1, uid=0, gid=0)]
    out.append(TreeEntry(path="top/l", kind="symlink", mode=0o120777, mtime_ns=2, target="../ü"))
    for i in range(n):
        out.append(
            TreeEntry(
                path=f"top/{i:07d}" + "x" * name_len,
                kind="file",
                mode=0o100600,
                mtime_ns=-5 + i,
                size=7,
                chunks=[(H, 3), (H, 4)],
                ctime_ns=9,
                inode=2**64 - 1,
                device=0,
            )
        )
    return out


def test_pieces_read_back_to_the_same_entries_in_order() -> None:
    entries = _entries(2500)
    cut = list(pieces(entries))
    assert [n for _, _, n in cut] == [PIECE_ENTRIES, PIECE_ENTRIES, 502]
    back = [e for h, data, _ in cut for e in decode_piece(data)]
    assert back == entries
    assert all(object_hash(data) == h for h, data, _ in cut)
    # The same tree makes the same objects.
    assert list(pieces(entries)) == cut


def test_a_piece_is_closed_by_its_bytes_too() -> None:
    entries = _entries(600, name_len=3000)  # about 2 MiB
    cut = list(pieces(entries))
    assert len(cut) > 1
    assert all(len(data) <= PIECE_BYTES + 100 for _, data, _ in cut)
    assert [e for _, data, _ in cut for e in decode_piece(data)] == entries


def test_the_root_begins_with_the_listed_prefix_and_reads_back() -> None:
    root = SnapshotRootDoc(
        cofre_snapshot=1,
        id="0123456789abcdef0123456789abcdef",
        time=1.5,
        host="h",
        tags=["a"],
        paths=["/x"],
        parent=None,
        entries=3,
        files=1,
        bytes=7,
        pieces=[(H, 10)],
    )
    raw = encode_root(root)
    assert raw.startswith(SNAPSHOT_ROOT_PREFIX)
    assert decode_root(raw) == root


@pytest.mark.parametrize(
    "raw",
    [
        b'{"cofre_snapshot":2,"id":"x"}',
        b"{}",
        b'{"chunks":[]}',
        json.dumps({"cofre_tree": 1, "entries": []}).encode(),
    ],
)
def test_other_bytes_are_no_root_and_no_piece(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="not a cofre snapshot root"):
        decode_root(raw)
    with pytest.raises(BadRequest, match="not a cofre tree piece"):
        decode_piece(raw)
