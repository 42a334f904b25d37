"""Several chunks in one body: a JSON header line listing (hash, length), then their bytes.

    {"chunks": [["<sha256>", 4096], ["<sha256>", 812]]}\n<4096 bytes><812 bytes>

Small files make small chunks; sending each in its own request costs a round trip and, on the
node, a directory fsync each. A framed body carries a batch of them in one request. Decoding
only slices the body (memoryviews, no copies) and checks that the lengths add up; verifying each
chunk's hash is the receiver's job, as for single chunks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cofre.errors import BadRequest
from cofre.models import ChunkHash, parse_chunk_hash

CONTENT_TYPE = "application/x-cofre-chunks"
# Chunks in one framed body at most, and bytes of one framed body at most (header included).
MAX_FRAMED_CHUNKS = 1024
MAX_FRAMED_BYTES = 32 * 1024 * 1024
# The header line: MAX_FRAMED_CHUNKS entries of ~80 bytes each, with slack.
MAX_HEADER_BYTES = 128 * 1024

Frame = tuple[ChunkHash, bytes | memoryview]


def encode_frames(items: Sequence[Frame]) -> bytes:
    """One framed body holding ``items`` in order."""
    header = json.dumps(
        {"chunks": [[h, len(data)] for h, data in items]}, separators=(",", ":")
    ).encode()
    return b"".join([header, b"\n", *(bytes(data) for _, data in items)])


def framed_size(items: Sequence[Frame]) -> int:
    """Bytes of the body ``encode_frames(items)`` would make, about (header estimated)."""
    return sum(len(data) + 80 for _, data in items) + 16


def decode_frames(body: bytes) -> list[tuple[ChunkHash, memoryview]]:
    """The (hash, bytes) of a framed body; BadRequest for anything malformed."""
    end = body.find(b"\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise BadRequest("framed body lacks its header line")
    try:
        header = json.loads(body[:end])
    except ValueError as exc:
        raise BadRequest("framed body header is not JSON") from exc
    entries = header.get("chunks") if isinstance(header, dict) else None
    if not isinstance(entries, list) or len(entries) > MAX_FRAMED_CHUNKS:
        raise BadRequest(f"framed body header must list at most {MAX_FRAMED_CHUNKS} chunks")
    view = memoryview(body)
    offset = end + 1
    out: list[tuple[ChunkHash, memoryview]] = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            raise BadRequest("each framed chunk must be [hash, length]")
        chunk_hash = parse_chunk_hash(entry[0])
        length = entry[1]
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise BadRequest("a framed chunk length must be a non-negative integer")
        if offset + length > len(body):
            raise BadRequest("framed body is shorter than its header says")
        out.append((chunk_hash, view[offset : offset + length]))
        offset += length
    if offset != len(body):
        raise BadRequest("framed body is longer than its header says")
    return out
