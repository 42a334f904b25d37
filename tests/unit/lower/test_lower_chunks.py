import hashlib
import io

import pytest

from cofre.chunks import iter_chunks


def test_chunks_cover_the_stream_in_order() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    chunks = list(iter_chunks(io.BytesIO(data), 4096))
    assert [ref.length for ref, _ in chunks] == [4096, 4096, 2048]
    assert b"".join(body for _, body in chunks) == data
    for ref, body in chunks:
        assert ref.hash == hashlib.sha256(body).hexdigest()


def test_empty_stream_has_no_chunks() -> None:
    assert list(iter_chunks(io.BytesIO(b""), 4096)) == []


def test_identical_content_has_identical_addresses() -> None:
    a = [ref for ref, _ in iter_chunks(io.BytesIO(b"x" * 8192), 4096)]
    assert a[0].hash == a[1].hash


@pytest.mark.parametrize("size", [0, -1, 65 * 1024 * 1024])
def test_chunk_size_bounds(size: int) -> None:
    with pytest.raises(ValueError):
        list(iter_chunks(io.BytesIO(b"x"), size))
