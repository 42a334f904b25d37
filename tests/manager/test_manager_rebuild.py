"""A lost catalog rebuilt from the manifests on the nodes: a fresh manager over a new, empty
data dir, pointed at the same real storage nodes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cofre.errors import Conflict
from cofre.manager.catalog import WHY_REBUILD
from cofre.models import ChunkHash
from cofre.protocol.manager_api import GcResult, RebuildReport


async def _contents(cluster: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """(name, version) -> the version's fields and its chunks with their holders; not when it
    was created (the catalog keeps the commit's time, a rebuild the manifest's)."""
    out = {}
    for f in await cluster.api.list_files(versions=True):
        got = await cluster.api.get_manifest(f.name, version=f.version)
        chunks = [
            (c.hash, c.length, sorted(cluster.node_id_of(u) for u in c.nodes)) for c in got.chunks
        ]
        out[(f.name, f.version)] = {**f.model_dump(exclude={"created"}), "chunk_list": chunks}
    return out


async def test_a_fresh_manager_rebuilds_the_catalog_from_the_nodes(
    make_cluster: Any, tmp_path: Any
) -> None:
    first = await make_cluster(3)
    created = {}
    for i in range(3):
        _, m, _ = await first.send("docs/a", os.urandom(2500 + i))
        created[("docs/a", i + 1)] = m.created
    for i in range(2):
        _, m, _ = await first.send("b", os.urandom(1000 * (i + 1)))
        created[("b", i + 1)] = m.created
    _, m, _ = await first.send("empty", b"")
    created[("empty", 1)] = m.created
    before = await _contents(first)
    with pytest.raises(Conflict, match="already holds 6 versions"):
        await first.api.rebuild_catalog()

    second = await make_cluster(3, data_dir=tmp_path / "manager-new", node_servers=first.nodes)
    assert await second.api.list_files(versions=True) == []
    # An empty catalog may be a lost one: GC leaves every chunk for the rebuild.
    assert await second.api.gc(grace_s=0) == GcResult(deleted_chunks=0, freed_bytes=0)
    # ... and no new backup is taken over it, whose commit would make the old ones garbage.
    with pytest.raises(Conflict, match="run `cofre catalog rebuild` before new backups"):
        await second.api.create_upload(name="new", size=3, mode=0o644, mtime=0.0)

    result = await second.api.rebuild_catalog()

    assert result == RebuildReport(
        versions=6,
        names=3,
        skipped_incomplete=0,
        skipped_unreadable=0,
        nodes_scanned=3,
    )
    after = await _contents(second)
    assert after == before
    assert [v for n, v in sorted(after) if n == "docs/a"] == [1, 2, 3]
    listed = await second.api.list_files(versions=True)
    assert {(f.name, f.version): f.created for f in listed} == created
    report = await second.api.fsck()
    assert report.healthy is True and report.summary.versions == 6
    where = await second.api.where("docs/a")
    whys = {c.why for e in [*where.chunks, where.manifest] for c in e.copies}
    assert whys == {WHY_REBUILD}

    with pytest.raises(Conflict, match="only fills an empty catalog"):
        await second.api.rebuild_catalog()
    assert await _contents(second) == before
    # Every chunk is referenced again: nothing to collect, and still healthy.
    assert (await second.api.gc(grace_s=0)).deleted_chunks == 0
    assert (await second.api.fsck()).healthy is True


async def test_rebuild_skips_versions_with_lost_chunks_and_revives_deleted_ones(
    make_cluster: Any, tmp_path: Any
) -> None:
    first = await make_cluster(3)
    _, lost, _ = await first.send("f", os.urandom(1500))
    _, kept, _ = await first.send("f", os.urandom(1500))
    await first.send("gone-but-not-collected", os.urandom(700))
    await first.api.delete("gone-but-not-collected")
    # Every copy of one data chunk of the first "f" is lost.
    for node_id in first.nodes:
        await first.node(node_id).delete_chunks([ChunkHash(lost.chunks[1].hash)])

    second = await make_cluster(3, data_dir=tmp_path / "manager-new", node_servers=first.nodes)
    result = await second.api.rebuild_catalog()

    assert result.skipped_incomplete == 1
    assert result.versions == 2 and result.names == 2
    files = {(f.name, f.version) for f in await second.api.list_files(versions=True)}
    # The deleted version's manifest was still on the nodes: it is back.
    assert files == {("f", 1), ("gone-but-not-collected", 1)}
    got = await second.api.get_manifest("f")
    assert [c.hash for c in got.chunks] == [c.hash for c in kept.chunks]
