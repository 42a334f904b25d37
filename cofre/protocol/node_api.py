"""Request and response bodies of a storage node's /v1 API (docs/architecture.md, Node table).

Chunk bytes travel as raw bodies (one chunk) or framed bodies (``cofre.protocol.framing``);
everything else is one of these models. The manager, the primary relaying to its replicas, and
the CLI all speak to nodes through ``NodeClient`` with the same classes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from cofre import limits
from cofre.protocol.base import (
    Bytes,
    ChunkHashField,
    Count,
    NodeIdField,
    NodeUrl,
    Query,
    Ratio,
    Reply,
    Request,
    Seconds,
    Ticket,
    UnixTime,
    UploadIdField,
)


class HashList(Request):
    """POST /v1/chunks/delete, /v1/sessions/{upload_id}/missing."""

    hashes: list[ChunkHashField] = Field(max_length=limits.MAX_HASHES)


class ReadRequest(Request):
    """POST /v1/chunks/read: the answer is framed, and left-out chunks are asked again."""

    hashes: list[ChunkHashField] = Field(max_length=limits.MAX_FRAMED_CHUNKS)


ChunkLength = Annotated[
    int, Field(ge=0, le=limits.MAX_CHUNK_SIZE, description="A chunk's length in bytes.")
]


class SizedHashes(Request):
    """Chunk hashes, and optionally each one's length: a copy of another size is corrupt."""

    hashes: list[ChunkHashField] = Field(max_length=limits.MAX_HASHES)
    lengths: list[ChunkLength] | None = Field(
        None,
        max_length=limits.MAX_HASHES,
        description="Each chunk's length, in the order of hashes: a copy of another size is "
        "corrupt (and quarantined). Without it only an empty copy of a non-empty chunk is.",
    )

    @model_validator(mode="after")
    def _one_length_per_hash(self) -> SizedHashes:
        if self.lengths is not None and len(self.lengths) != len(self.hashes):
            raise ValueError("lengths must give one length per hash, in the same order")
        return self


class CheckRequest(SizedHashes):
    verify: bool = Field(False, description="Re-hash each copy; a corrupt one is quarantined.")
    touch: bool = Field(False, description="Mark the chunks used now, so GC keeps them.")


class MissingRequest(SizedHashes):
    """POST /v1/sessions/{upload_id}/missing: a copy of the wrong size counts as lacking."""


class CheckResult(Reply):
    present: list[ChunkHashField]
    missing: list[ChunkHashField]
    corrupt: list[ChunkHashField] = Field(default_factory=list)


class PullRequest(Request):
    hash: ChunkHashField
    sources: list[NodeUrl] = Field(min_length=1, max_length=limits.MAX_SOURCES)


class ChunkStored(Reply):
    created: bool = Field(description="False if the node held the chunk already.")


class BatchStored(Reply):
    stored: Count
    created: list[ChunkHashField] = Field(description="The chunks that were new.")


class InventoryQuery(Query):
    before: UnixTime | None = Field(None, description="Only chunks last written before this.")


class InventoryEntry(Reply):
    hash: ChunkHashField
    length: Bytes
    mtime: UnixTime


class Inventory(Reply):
    chunks: list[InventoryEntry]


class ManifestCandidate(Reply):
    hash: ChunkHashField
    length: Bytes


class ManifestCandidates(Reply):
    manifests: list[ManifestCandidate] = Field(
        description="Chunks that start like a manifest (not verified)."
    )


class ChunksDeleted(Reply):
    deleted: Count
    freed_bytes: Bytes


class ScrubFinding(Reply):
    """A copy the scrub found corrupt (and quarantined)."""

    seq: Count = Field(description="Numbers findings from 1 since the node started.")
    hash: ChunkHashField
    at: UnixTime


class ScrubProgress(Reply):
    """The background scrub: every stored chunk re-read and re-hashed once per cycle."""

    enabled: bool
    started_at: UnixTime = Field(
        description="When this node process started scrubbing: finding numbers count from here."
    )
    cycle_s: Seconds
    bytes_per_s: Bytes
    cycle_started_at: UnixTime | None = Field(None, description="None before the first cycle.")
    cycle_bytes: Bytes = Field(0, description="Bytes scrubbed this cycle.")
    cycle_chunks: Count = Field(0, description="Chunks scrubbed this cycle.")
    cycle_progress: Ratio = Field(
        0.0, description="Share of the cycle's bytes read so far; 1 once its walk finished."
    )
    last_full_pass_at: UnixTime | None = Field(None, description="When a cycle last finished.")
    findings_total: Count = Field(0, description="Corrupt copies found since the node started.")
    findings: list[ScrubFinding] = Field(
        default_factory=list,
        max_length=limits.MAX_SCRUB_FINDINGS,
        description="The latest findings, oldest first.",
    )


class NodeStats(Reply):
    """What a storage node reports about itself."""

    node_id: NodeIdField
    stored_bytes: Bytes
    free_bytes: Bytes
    chunk_count: Count
    scrub: ScrubProgress | None = None


class Replica(Request):
    node_id: NodeIdField
    url: NodeUrl


class OpenSession(Request):
    """POST /v1/sessions, manager -> primary: where this upload's chunks go."""

    upload_id: UploadIdField
    replicas: list[Replica] = Field(max_length=limits.MAX_REPLICAS)
    replica_ticket: Ticket
    keep_copy: bool = False
    expires: UnixTime

    @model_validator(mode="after")
    def _somewhere_to_store(self) -> OpenSession:
        if not self.replicas and not self.keep_copy:
            raise ValueError("a session needs at least one replica or keep_copy")
        return self


class SessionOpened(Reply):
    upload_id: UploadIdField


class Missing(Reply):
    missing: list[ChunkHashField] = Field(description="Still to be sent, in the order asked.")


class Relayed(Reply):
    hash: ChunkHashField


class BatchRelayed(Reply):
    stored: Count


class ChunkPath(Query):
    hash: ChunkHashField


class SessionPath(Query):
    upload_id: UploadIdField


class SessionChunkPath(Query):
    upload_id: UploadIdField
    hash: ChunkHashField
