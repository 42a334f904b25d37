"""Framed chunk bodies: round trip, and every malformed body refused."""

from __future__ import annotations

import hashlib

import pytest

from cofre.errors import BadRequest
from cofre.limits import MAX_FRAMED_CHUNKS
from cofre.models import ChunkHash
from cofre.protocol.framing import decode_frames, encode_frames, framed_size


def chunk(data: bytes) -> tuple[ChunkHash, bytes]:
    return ChunkHash(hashlib.sha256(data).hexdigest()), data


def test_frames_round_trip_in_order_with_empty_and_repeated_chunks() -> None:
    items = [chunk(b"one"), chunk(b""), chunk(b"x" * 70_000), chunk(b"one")]
    body = encode_frames(items)
    decoded = [(h, bytes(d)) for h, d in decode_frames(body)]
    assert decoded == items
    assert framed_size(items) >= len(body)
    assert decode_frames(encode_frames([])) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no newline at all",
        b"not json\n",
        b"[]\n",
        b'{"chunks": "nope"}\n',
        b'{"chunks": [["' + b"a" * 64 + b'"]]}\n',
        b'{"chunks": [["' + b"g" * 64 + b'", 1]]}\nx',
        b'{"chunks": [["' + b"a" * 64 + b'", -1]]}\n',
        b'{"chunks": [["' + b"a" * 64 + b'", true]]}\nx',
        b'{"chunks": [["' + b"a" * 64 + b'", 5]]}\nabc',
        b'{"chunks": [["' + b"a" * 64 + b'", 1]]}\nabc',
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_frames(body)


def test_too_many_chunks_are_refused() -> None:
    items = [chunk(b"")] * (MAX_FRAMED_CHUNKS + 1)
    with pytest.raises(BadRequest):
        decode_frames(encode_frames(items))


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 60_000,
        b'{"chunks":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"chunks": [["' + b"a" * 64 + b'", 1e999]]}',
        b'{"chunks": [["' + b"a" * 64 + b'", ' + str(2**64).encode() + b"]]}",
        b'{"chunks": [], "more": 1}',
    ],
)
def test_hostile_headers_are_bad_requests(header: bytes) -> None:
    with pytest.raises(BadRequest, match="framed body header"):
        decode_frames(header + b"\n")
