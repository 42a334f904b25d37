"""Splitting files into content-addressed chunks.

Fixed-size chunks: simple, streamable with bounded memory, and identical files or identical
prefixes dedupe. Chunk size is a cluster setting the manager hands out with each upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from cofre.limits import MAX_CHUNK_SIZE
from cofre.models import ChunkHash, ChunkRef

# 4 MiB: large enough that per-chunk HTTP and fsync costs vanish against the bytes, small
# enough that a node holds a few in memory per request while verifying and relaying.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


def hash_bytes(data: bytes) -> ChunkHash:
    return ChunkHash(hashlib.sha256(data).hexdigest())


def iter_chunks(stream: BinaryIO, chunk_size: int) -> Iterator[tuple[ChunkRef, bytes]]:
    """Yield (reference, bytes) for each chunk of ``stream``; an empty stream yields nothing."""
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be in 1..{MAX_CHUNK_SIZE}")
    while True:
        data = stream.read(chunk_size)
        if not data:
            return
        yield ChunkRef(hash_bytes(data), len(data)), data
