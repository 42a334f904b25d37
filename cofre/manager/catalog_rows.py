"""The catalog's rows as values: upload sessions, versions, live chunks, what a commit or a
rebuild records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cofre.models import ChunkHash, Manifest, NodeId, SnapshotId, UploadId


@dataclass(frozen=True, slots=True)
class SessionRow:
    upload_id: UploadId
    name: str
    size: int
    mode: int
    mtime: float
    created: float
    expires: float
    primary: NodeId
    nodes: tuple[NodeId, ...]  # every chosen node, the primary first
    keep_copy: bool
    state: str = "open"  # open, committed, aborted, expired
    version: int | None = None
    # Why its nodes were chosen; becomes the reason of every copy the upload places.
    why: str = ""

    @property
    def copy_holders(self) -> tuple[NodeId, ...]:
        return self.nodes if self.keep_copy else self.nodes[1:]


@dataclass(frozen=True, slots=True)
class VersionRow:
    name: str
    version: int
    size: int
    mode: int
    mtime: float
    created: float
    manifest_hash: ChunkHash
    chunk_count: int
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class LiveChunk:
    hash: ChunkHash
    length: int
    holders: frozenset[NodeId]


@dataclass(frozen=True, slots=True)
class CommitEntry:
    manifest: Manifest
    manifest_hash: ChunkHash
    manifest_length: int


@dataclass(frozen=True, slots=True)
class RecoveredVersion:
    """A version rebuilt from its manifest on the nodes, with every node holding each chunk."""

    number: int
    manifest: Manifest
    manifest_hash: ChunkHash
    manifest_length: int
    # chunk (data chunks and the manifest) -> nodes holding it
    locations: Mapping[ChunkHash, frozenset[NodeId]]


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    snapshot_id: SnapshotId
    time: float  # when the backup began, by the client's clock
    host: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    parent: SnapshotId | None
    state: str  # open, committed
    created: float  # when it was opened, by the manager's clock
    expires: float  # an open snapshot's end, renewed by every request that adds to it
    committed: float | None = None
    entries: int = 0
    files: int = 0
    bytes: int = 0

    def matches(
        self, *, host: str | None = None, tags: Sequence[str] = (), path: str | None = None
    ) -> bool:
        """Of ``host``, carrying every one of ``tags``, holding the source ``path``."""
        return (
            (host is None or self.host == host)
            and set(tags) <= set(self.tags)
            and (path is None or path in self.paths)
        )


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A client key as the catalog keeps it: a sha256 of its secret, never the secret."""

    key_id: str
    name: str
    role: str
    digest: str
    created: float
    last_used: float | None = None
