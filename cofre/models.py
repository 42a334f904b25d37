"""Value types shared by every component: ids, chunk references, manifests, node views.

Everything here is pure data with JSON (de)serialisation; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import NewType

from cofre.errors import BadRequest
from cofre.limits import MAX_NAME_BYTES, MAX_PATH_BYTES

ChunkHash = NewType("ChunkHash", str)
"""Lower-case hex sha256 of a chunk's bytes; also its address on every node."""

NodeId = NewType("NodeId", str)
"""Stable name of a storage node (pod name in Kubernetes, node-N locally)."""

UploadId = NewType("UploadId", str)
"""Id of one upload session, minted by the manager."""

SnapshotId = NewType("SnapshotId", str)
"""Id of one tree snapshot, minted by the manager (32 lower-case hex digits)."""

MANIFEST_FORMAT = "cofre-manifest-1"
# How every manifest's canonical encoding (sorted keys, compact) begins: lets a node list the
# chunks that may be manifests by reading a few bytes of each.
MANIFEST_PREFIX = b'{"chunks":['
# How every snapshot root object (cofre/manager/tree_objects.py) begins, for the same listing.
SNAPSHOT_ROOT_PREFIX = b'{"cofre_snapshot":1,'
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


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a backup name, or None. A name is data, never a path: any non-empty
    text without NUL, valid Unicode, at most MAX_NAME_BYTES bytes of UTF-8."""
    if not name:
        return "a name must not be empty"
    if "\x00" in name:
        return "a name must not contain NUL"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "a name must be valid Unicode (no lone surrogates)"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name must be at most {MAX_NAME_BYTES} bytes of UTF-8"
    return None


def tree_path_problem(path: str) -> str | None:
    """Why ``path`` is not a path inside a snapshot's tree, or None. A tree path is relative
    and normalised (components joined by single slashes, none empty, ``.`` or ``..``), so a
    restore joins it under its target and can never leave it; no NUL, valid Unicode, at most
    MAX_PATH_BYTES bytes of UTF-8."""
    if not path:
        return "a path must not be empty"
    if "\x00" in path:
        return "a path must not contain NUL"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "a path must be valid Unicode (no lone surrogates)"
    if len(encoded) > MAX_PATH_BYTES:
        return f"a path must be at most {MAX_PATH_BYTES} bytes of UTF-8"
    if path.startswith("/"):
        return "a path must be relative (no leading /)"
    for part in path.split("/"):
        if part == "":
            return "a path must be normalised (no empty component, no trailing /)"
        if part in (".", ".."):
            return f"a path must be normalised (no {part!r} component)"
    return None


def validate_name(name: object) -> str:
    """``name`` if it is a backup name; BadRequest saying why not otherwise."""
    if not isinstance(name, str):
        raise BadRequest("a name must be a string")
    problem = name_problem(name)
    if problem:
        raise BadRequest(problem)
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

    def to_json(self) -> dict[str, object]:
        """The canonical fields (``cofre.protocol.manager_api.ManifestDoc`` is the same on the
        wire); a plain dict, since its exact JSON encoding is what the manifest's hash covers."""
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


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """A storage node as discovery sees it."""

    node_id: NodeId
    url: str
    ready: bool = True
