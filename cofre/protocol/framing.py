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

from pydantic import Field, ValidationError

from cofre.errors import BadRequest
from cofre.limits import MAX_FRAMED_CHUNKS, MAX_FRAMED_HEADER_BYTES
from cofre.models import ChunkHash
from cofre.protocol.base import Bytes, ChunkHashField, Request, first_error

CONTENT_TYPE = "application/x-cofre-chunks"

Frame = tuple[ChunkHash, bytes | memoryview]


class FrameHeader(Request):
    """The first line of a framed body: each chunk's hash and length, in order."""

    chunks: list[tuple[ChunkHashField, Bytes]] = Field(max_length=MAX_FRAMED_CHUNKS)


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
    end = body.find(b"\n", 0, MAX_FRAMED_HEADER_BYTES)
    if end < 0:
        raise BadRequest("framed body lacks its header line")
    try:
        header = FrameHeader.model_validate_json(body[:end])
    except ValidationError as exc:
        raise BadRequest(f"framed body header: {first_error(exc)}") from None
    view = memoryview(body)
    offset = end + 1
    out: list[tuple[ChunkHash, memoryview]] = []
    for chunk_hash, length in header.chunks:
        if offset + length > len(body):
            raise BadRequest("framed body is shorter than its header says")
        out.append((chunk_hash, view[offset : offset + length]))
        offset += length
    if offset != len(body):
        raise BadRequest("framed body is longer than its header says")
    return out
