"""A snapshot's tree as content-addressed objects, stored on the nodes like chunks.

Like restic's tree and snapshot files: the entries, in path order, are cut into *pieces* of at
most ``PIECE_ENTRIES`` entries and about ``PIECE_BYTES`` bytes (an entry is never split), each
named by its sha256; a small *root* object names the pieces in order and carries the
snapshot's id, time, host, tags, paths, parent and counts. A root's bytes begin with
``cofre.models.SNAPSHOT_ROOT_PREFIX``, so a node lists them as it lists manifests, and a
catalog rebuild finds every snapshot from its roots. The encoding is deterministic (fields in
declaration order, compact JSON), so the same tree makes the same objects: pieces of an
unchanged run of entries are shared by consecutive snapshots, and a retried commit writes the
same objects again. Pure: no I/O here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field, ValidationError

from cofre import limits
from cofre.errors import BadRequest
from cofre.models import SNAPSHOT_ROOT_PREFIX, ChunkHash
from cofre.protocol.base import (
    Bytes,
    ChunkHashField,
    Count,
    HostName,
    PathText,
    Request,
    SnapshotIdField,
    SnapshotTag,
    first_error,
)
from cofre.protocol.manager_api import EntryView, TreeEntry

# Entries per piece, and the bytes after which a piece is closed: a piece is one small chunk
# (far below MAX_CHUNK_SIZE), so it is written, read, checked and repaired like any other.
PIECE_ENTRIES = limits.MAX_ENTRY_BATCH
PIECE_BYTES = 1 << 20


class TreePieceDoc(Request):
    """A run of a snapshot's entries, in path order."""

    cofre_tree: Literal[1]
    entries: list[TreeEntry] = Field(min_length=1, max_length=PIECE_ENTRIES)


class SnapshotRootDoc(Request):
    """A snapshot: its metadata and its pieces in order. ``cofre_snapshot`` comes first, so
    the encoding begins with SNAPSHOT_ROOT_PREFIX."""

    cofre_snapshot: Literal[1]
    id: SnapshotIdField
    time: float
    host: HostName
    tags: list[SnapshotTag] = Field(max_length=limits.MAX_SNAPSHOT_TAGS)
    paths: list[PathText] = Field(max_length=limits.MAX_SNAPSHOT_PATHS)
    parent: SnapshotIdField | None
    entries: Count
    files: Count
    bytes: Bytes
    pieces: list[tuple[ChunkHashField, Bytes]]


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def object_hash(data: bytes) -> ChunkHash:
    return ChunkHash(hashlib.sha256(data).hexdigest())


def entry_json(entry: EntryView | TreeEntry) -> dict[str, Any]:
    # Defaults left out: the piece stays small, and reads back to the same entry.
    out: dict[str, Any] = entry.model_dump(mode="json", exclude_defaults=True)
    return out


def pieces(entries: Iterable[EntryView | TreeEntry]) -> Iterator[tuple[ChunkHash, bytes, int]]:
    """The pieces of a tree given in path order: (hash, bytes, entries in it)."""
    run: list[dict[str, Any]] = []
    size = 0
    for e in entries:
        doc = entry_json(e)
        n = len(_encode(doc)) + 1
        if run and (len(run) >= PIECE_ENTRIES or size + n > PIECE_BYTES):
            data = _encode({"cofre_tree": 1, "entries": run})
            yield object_hash(data), data, len(run)
            run, size = [], 0
        run.append(doc)
        size += n
    if run:
        data = _encode({"cofre_tree": 1, "entries": run})
        yield object_hash(data), data, len(run)


def encode_root(root: SnapshotRootDoc) -> bytes:
    data = _encode(root.model_dump(mode="json"))
    assert data.startswith(SNAPSHOT_ROOT_PREFIX)
    return data


def decode_root(raw: bytes) -> SnapshotRootDoc:
    """A root read back from a node; BadRequest if the bytes are not one."""
    try:
        return SnapshotRootDoc.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest(f"not a cofre snapshot root: {first_error(exc)}") from None


def decode_piece(raw: bytes) -> list[TreeEntry]:
    try:
        return list(TreePieceDoc.model_validate_json(raw).entries)
    except ValidationError as exc:
        raise BadRequest(f"not a cofre tree piece: {first_error(exc)}") from None
