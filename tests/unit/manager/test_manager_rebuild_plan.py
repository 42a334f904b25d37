"""Planning a catalog rebuild: manifests found on the nodes + chunk presence -> versions.
Also the catalog's restore of such a plan, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cofre.errors import Conflict
from cofre.manager.catalog import Catalog
from cofre.manager.rebuild import FoundManifest, plan
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, sha256_hex

A = NodeId("node-a")
B = NodeId("node-b")
C = NodeId("node-c")


def h(seed: str) -> ChunkHash:
    return sha256_hex(seed.encode())


def found(name: str, *seeds: str, created: float) -> FoundManifest:
    chunks = tuple(ChunkRef(h(s), 10) for s in seeds)
    m = Manifest(
        name=name, size=10 * len(seeds), mode=0o600, mtime=1.0, created=created, chunks=chunks
    )
    return FoundManifest(hash=m.hash, length=len(m.encode()), manifest=m)


def test_versions_are_numbered_per_name_in_order_of_creation() -> None:
    late = found("a", "x", created=30.0)
    early = found("a", "y", created=10.0)
    middle = found("a", "z", created=20.0)
    other = found("b", "x", created=5.0)
    presence = {h("x"): {A}, h("y"): {B}, h("z"): {A, C}}
    for f in (late, early, middle, other):
        presence[f.hash] = {A}

    result = plan([late, other, early, middle], presence)

    assert result.skipped_incomplete == 0
    got = [(v.manifest.name, v.number, v.manifest_hash) for v in result.versions]
    assert got == [
        ("a", 1, early.hash),
        ("a", 2, middle.hash),
        ("a", 3, late.hash),
        ("b", 1, other.hash),
    ]
    assert result.versions[1].locations == {h("z"): {A, C}, middle.hash: {A}}
    assert result.versions[0].manifest_length == early.length


def test_ties_in_creation_are_broken_by_manifest_hash() -> None:
    one = found("a", "p", created=7.0)
    two = found("a", "q", created=7.0)
    presence = {h("p"): {A}, h("q"): {A}}
    result = plan([one, two], presence)
    expected = sorted([one.hash, two.hash])
    assert [v.manifest_hash for v in result.versions] == expected
    assert [v.number for v in result.versions] == [1, 2]
    assert [v.manifest_hash for v in plan([two, one], presence).versions] == expected


def test_a_manifest_with_a_chunk_on_no_node_is_skipped_and_counted() -> None:
    whole = found("a", "x", created=1.0)
    broken = found("a", "x", "gone", created=2.0)
    later = found("a", "y", created=3.0)
    presence = {h("x"): {A}, h("y"): {B}, h("gone"): set[NodeId]()}

    result = plan([whole, broken, later], presence)

    assert result.skipped_incomplete == 1
    assert [(v.number, v.manifest_hash) for v in result.versions] == [
        (1, whole.hash),
        (2, later.hash),
    ]


def test_the_same_manifest_from_several_nodes_counts_once() -> None:
    f = found("a", "x", created=1.0)
    broken = found("b", "missing", created=1.0)
    presence = {h("x"): {A, B, C}, f.hash: {A, B}}

    result = plan([f, f, broken, f, broken], presence)

    assert len(result.versions) == 1
    assert result.skipped_incomplete == 1
    assert result.versions[0].locations[f.hash] == {A, B}
    assert result.versions[0].locations[h("x")] == {A, B, C}


def test_an_empty_chunk_list_is_complete() -> None:
    empty = found("empty", created=1.0)
    result = plan([empty], {empty.hash: {C}})
    assert [v.manifest.size for v in result.versions] == [0]
    assert result.skipped_incomplete == 0


async def test_restore_fills_an_empty_catalog_once(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    await catalog.open()
    try:
        one = found("a", "x", "y", created=1.0)
        two = found("a", "y", created=2.0)
        presence = {h("x"): {A}, h("y"): {A, B}, one.hash: {B}, two.hash: {A, C}}
        result = plan([two, one], presence)

        await catalog.restore(result.versions)

        rows = await catalog.versions(name="a")
        assert [(r.version, r.created, r.manifest_hash) for r in rows] == [
            (1, 1.0, one.hash),
            (2, 2.0, two.hash),
        ]
        got = await catalog.version("a", 1)
        assert got is not None and [c.hash for c in got[1]] == [h("x"), h("y")]
        locations = await catalog.locations([h("x"), h("y"), one.hash, two.hash])
        assert locations == {h("x"): {A}, h("y"): {A, B}, one.hash: {B}, two.hash: {A, C}}
        assert await catalog.lengths([one.hash]) == {one.hash: one.length}
        assert await catalog.live_hashes() == {h("x"), h("y"), one.hash, two.hash}

        with pytest.raises(Conflict, match="already holds 2 versions"):
            await catalog.restore(result.versions)
        assert await catalog.version_rows() == 2
    finally:
        await catalog.close()
