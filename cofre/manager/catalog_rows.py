"""The catalog's rows as values: upload sessions, versions, live chunks, what a commit or a
rebuild records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cofre.models import ChunkHash, Manifest, NodeId, UploadId


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
class KeyRow:
    """A client key as the catalog keeps it: a sha256 of its secret, never the secret."""

    key_id: str
    name: str
    role: str
    digest: str
    created: float
    last_used: float | None = None
