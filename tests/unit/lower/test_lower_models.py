import json

import pytest

from cofre.errors import BadRequest
from cofre.limits import MAX_PATH_BYTES
from cofre.models import (
    MANIFEST_FORMAT,
    ChunkHash,
    ChunkRef,
    Manifest,
    parse_chunk_hash,
    parse_node_id,
    sha256_hex,
    tree_path_problem,
    validate_name,
)
from cofre.protocol.manager_api import decode_manifest

EMPTY = sha256_hex(b"")


def _manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "name": "docs/a.txt",
        "size": 3,
        "mode": 0o644,
        "mtime": 1.5,
        "created": 2.5,
        "chunks": (ChunkRef(sha256_hex(b"abc"), 3),),
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_manifest_round_trips_through_canonical_bytes() -> None:
    manifest = _manifest()
    decoded = decode_manifest(manifest.encode())
    assert decoded == manifest
    assert decoded.hash == manifest.hash
    assert manifest.to_json()["format"] == MANIFEST_FORMAT


def test_manifest_hash_is_independent_of_key_order() -> None:
    manifest = _manifest()
    data = manifest.to_json()
    reordered = dict(reversed(list(data.items())))
    assert decode_manifest(json.dumps(reordered).encode()).hash == manifest.hash


def test_empty_file_manifest_has_no_chunks() -> None:
    manifest = _manifest(size=0, chunks=())
    assert decode_manifest(manifest.encode()).chunks == ()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(size=4),
        lambda d: d.update(size=-1),
        lambda d: d.update(chunks=[["zz", 3]]),
        lambda d: d.update(name=""),
        lambda d: d.pop("mtime"),
    ],
)
def test_malformed_manifests_are_rejected(mutate: object) -> None:
    data = _manifest().to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(BadRequest, match="not a cofre manifest"):
        decode_manifest(json.dumps(data).encode())


def test_names_are_data() -> None:
    for name in ["../../etc/passwd", "a\nb", "üñí/cødé", "/abs/path", " "]:
        assert validate_name(name) == name
    for bad in ["", "a\x00b", "x" * 5000, 3, "a\ud800"]:
        with pytest.raises(BadRequest):
            validate_name(bad)


def test_hash_and_node_id_parsing() -> None:
    assert parse_chunk_hash(EMPTY) == ChunkHash(EMPTY)
    for bad in ["../etc", EMPTY.upper(), EMPTY[:-1], None]:
        with pytest.raises(BadRequest):
            parse_chunk_hash(bad)
    assert parse_node_id("demo-storage-3") == "demo-storage-3"
    for bad in ["", "../x", "a/b", "-x"]:
        with pytest.raises(BadRequest):
            parse_node_id(bad)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "relative"),
        ("a/../../etc", "'..'"),
        ("..", "'..'"),
        ("a/./b", "'.'"),
        (".", "'.'"),
        ("a//b", "empty component"),
        ("a/b/", "trailing"),
        ("a\x00b", "NUL"),
        ("a\udcffb", "Unicode"),
        ("é" * (MAX_PATH_BYTES // 2 + 1), "bytes of UTF-8"),
    ],
)
def test_tree_paths_must_be_relative_and_normalised(path: str, problem: str) -> None:
    found = tree_path_problem(path)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    "path", ["a", "home/ana/notes.txt", "..a/b..", ".hidden/x", "a b/c\\d", "x" * MAX_PATH_BYTES]
)
def test_ordinary_tree_paths_pass(path: str) -> None:
    assert tree_path_problem(path) is None
