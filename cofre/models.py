"""Value types shared by every component: ids, chunk references, manifests, node views.

Everything here is pure data with JSON (de)serialisation; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, NewType

from cofre.errors import BadRequest

ChunkHash = NewType("ChunkHash", str)
"""Lower-case hex sha256 of a chunk's bytes; also its address on every node."""

NodeId = NewType("NodeId", str)
"""Stable name of a storage node (pod name in Kubernetes, node-N locally)."""

UploadId = NewType("UploadId", str)
"""Id of one upload session, minted by the manager."""

MANIFEST_FORMAT = "cofre-manifest-1"
# How every manifest's canonical encoding (sorted keys, compact) begins: lets a node list the
# chunks that may be manifests by reading a few bytes of each.
MANIFEST_PREFIX = b'{"chunks":['
# Names are data, never paths; the limits keep catalog rows and URLs bounded.
MAX_NAME_BYTES = 4096
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def is_chunk_hash(value: str) -> bool:
    return bool(_HASH_RE.match(value))


def parse_chunk_hash(value: object) -> ChunkHash:
    if not isinstance(value, str) or not is_chunk_hash(value):
        raise BadRequest(f"not a chunk hash: {str(value)[:80]!r}")
    return ChunkHash(value)


def parse_node_id(value: object) -> NodeId:
    if not isinstance(value, str) or not _NODE_ID_RE.match(value):
        raise BadRequest(f"not a node id: {str(value)[:80]!r}")
    return NodeId(value)


def validate_name(name: object) -> str:
    """A backup name: any non-empty text without NUL, at most MAX_NAME_BYTES bytes of UTF-8."""
    if not isinstance(name, str) or not name:
        raise BadRequest("a name must be a non-empty string")
    if "\x00" in name:
        raise BadRequest("a name must not contain NUL")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadRequest(f"a name must be at most {MAX_NAME_BYTES} bytes")
    return name


def sha256_hex(data: bytes) -> ChunkHash:
    return ChunkHash(hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class ChunkRef:
    hash: ChunkHash
    length: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """One version of one name, as the client built it. Also stored as a chunk on the nodes."""

    name: str
    size: int
    mode: int
    mtime: float
    created: float
    chunks: tuple[ChunkRef, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "created": self.created,
            "chunks": [[c.hash, c.length] for c in self.chunks],
        }

    def encode(self) -> bytes:
        """Canonical bytes: the same manifest always hashes the same."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> ChunkHash:
        return sha256_hex(self.encode())

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise BadRequest("not a cofre manifest")
        try:
            chunks = tuple(
                ChunkRef(parse_chunk_hash(h), _non_negative_int(n, "chunk length"))
                for h, n in data["chunks"]
            )
            manifest = cls(
                name=validate_name(data["name"]),
                size=_non_negative_int(data["size"], "size"),
                mode=_non_negative_int(data["mode"], "mode"),
                mtime=float(data["mtime"]),
                created=float(data["created"]),
                chunks=chunks,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"malformed manifest: {exc}") from exc
        if sum(c.length for c in chunks) != manifest.size:
            raise BadRequest("manifest chunk lengths do not add up to its size")
        return manifest

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BadRequest("manifest is not JSON") from exc
        return cls.from_json(data)


def _non_negative_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{what} must be a non-negative integer")
    return value


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """A storage node as discovery sees it."""

    node_id: NodeId
    url: str
    ready: bool = True


@dataclass(slots=True)
class NodeStats:
    """What a storage node reports about itself (GET /v1/stats)."""

    node_id: NodeId
    stored_bytes: int
    free_bytes: int
    chunk_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "stored_bytes": self.stored_bytes,
            "free_bytes": self.free_bytes,
            "chunk_count": self.chunk_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeStats:
        return cls(
            node_id=NodeId(data["node_id"]),
            stored_bytes=int(data["stored_bytes"]),
            free_bytes=int(data["free_bytes"]),
            chunk_count=int(data["chunk_count"]),
        )


@dataclass(slots=True)
class NodeStatus:
    """The manager's view of a node (GET /v1/nodes): discovery, probes and placement score."""

    node_id: NodeId
    url: str
    ready: bool
    draining: bool
    stored_bytes: int
    free_bytes: int
    in_flight_bytes: int
    latency_ms: float | None
    score: float | None
    chunk_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "url": self.url,
            "ready": self.ready,
            "draining": self.draining,
            "stored_bytes": self.stored_bytes,
            "free_bytes": self.free_bytes,
            "in_flight_bytes": self.in_flight_bytes,
            "latency_ms": self.latency_ms,
            "score": self.score,
            "chunk_count": self.chunk_count,
            **self.extra,
        }
