"""GC, fsck, stats and drain through the manager app, over real storage nodes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cofre.errors import NotFound
from cofre.models import ChunkHash
from cofre.protocol.manager_api import DrainStatus

from ..helpers import eventually


async def _holders(cluster: Any, name: str) -> dict[str, list[str]]:
    got = await cluster.api.get_manifest(name)
    return {c.hash: [cluster.node_id_of(u) for u in c.nodes] for c in got.chunks}


async def test_gc_deletes_only_unreferenced_chunks(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    shared = os.urandom(1024)
    _, kept, _ = await cluster.send("keep", shared + os.urandom(1024))
    _, dropped, _ = await cluster.send("drop", shared + os.urandom(1024))
    await cluster.api.delete("drop")

    result = await cluster.api.gc(grace_s=0)
    # The unshared chunk and the manifest of "drop", two copies each.
    assert result.deleted_chunks == 4
    assert result.freed_bytes == 2 * (1024 + len(dropped.encode()))
    assert (await cluster.api.gc(grace_s=0)).deleted_chunks == 0

    report = await cluster.api.fsck()
    assert report.healthy is True
    assert report.summary.ok == 2 and report.summary.versions == 1
    for node_id in cluster.nodes:
        present = await cluster.node(node_id).check([dropped.chunks[1].hash, dropped.hash])
        assert present.present == []
    holders = await _holders(cluster, "keep")
    assert set(holders) == {c.hash for c in kept.chunks}


async def test_gc_keeps_recent_chunks_within_the_grace_period(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await cluster.send("gone", os.urandom(1500))
    await cluster.api.delete("gone")
    assert (await cluster.api.gc(grace_s=3600)).deleted_chunks == 0


async def test_fsck_reports_missing_and_corrupt_copies(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    _, manifest, _ = await cluster.send("f", os.urandom(2048))
    first, second = (c.hash for c in manifest.chunks)
    holders = await _holders(cluster, "f")
    await cluster.node(holders[first][0]).delete_chunks([ChunkHash(first)])
    for node_id in holders[second]:
        cluster.rot(node_id, second)

    report = await cluster.api.fsck(name="f", verify=True)
    assert report.healthy is False
    chunks = {c.hash: c for c in report.files[0].chunks}
    assert chunks[first].status == "under_replicated"
    assert chunks[first].nodes == [holders[first][1]]
    assert chunks[second].status == "corrupt"
    assert sorted(chunks[second].corrupt_on) == sorted(holders[second])
    assert report.summary.under_replicated == 1 and report.summary.corrupt == 1
    assert report.files[0].manifest.status == "ok"
    with pytest.raises(NotFound):
        await cluster.api.fsck(name="nothing")

    # Stats come from the probes: after one the stored bytes show.
    await cluster.probe()
    stats = await cluster.api.stats()
    assert stats.nodes_ready == 3 and stats.nodes_total == 3
    assert stats.files == 1 and stats.versions == 1
    assert stats.capacity_bytes >= stats.used_bytes > 0


async def test_drain_copies_chunks_off_a_node_and_reports_done(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    _, manifest, _ = await cluster.send("d", os.urandom(4000))
    holders = await _holders(cluster, "d")
    victim = holders[manifest.chunks[0].hash][0]

    with pytest.raises(NotFound, match="no-such-node"):
        await cluster.api.drain([victim, "no-such-node"])
    assert (await cluster.api.drain_status()).nodes == {}  # refused whole: nothing started
    status, answer = await cluster.call("POST", "/v1/drain", json={"nodes": [victim]})
    assert status == 202, answer
    assert set(answer) == {"done", "chunks_left", "bytes_left", "nodes"}
    started = DrainStatus.model_validate(answer)
    assert victim in started.nodes
    # The request woke the drain loop: it finishes by itself.
    drained = await eventually(
        cluster.api.drain_status, until=lambda s: s.done, what=f"the drain of {victim}"
    )
    assert drained.chunks_left == 0 and drained.nodes[victim].done is True

    after = await _holders(cluster, "d")
    for chunk in [*manifest.chunks]:
        elsewhere = [n for n in after[chunk.hash] if n != victim]
        assert len(elsewhere) >= 2
        for node_id in elsewhere:
            check = await cluster.node(node_id).check([chunk.hash], verify=True)
            assert check.present == [chunk.hash]

    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert listed[victim].draining is True and listed[victim].score is None
    up = await cluster.api.create_upload(name="new", size=10, mode=0o644, mtime=0.0)
    assert cluster.node_id_of(up.primary_url) != victim


async def test_set_draining_is_exact_and_an_empty_list_ends_every_drain(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    ids = sorted(n.node_id for n in (await cluster.api.nodes()).nodes)

    await cluster.api.set_draining(ids[2:])
    assert set((await cluster.api.drain_status()).nodes) == set(ids[2:])
    # Exact, not additive: a shrunk list ends the drain of the nodes left out.
    await cluster.api.set_draining(ids[3:])
    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert [listed[i].draining for i in ids] == [False, False, False, True]

    await cluster.api.set_draining([])
    assert (await cluster.api.drain_status()).nodes == {}
    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert not any(n.draining for n in listed.values())


async def test_background_loops_run_a_pass_on_demand_and_repair_can_be_off(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(3, repair_interval_s=0.0)
    loops = cluster.loops
    assert loops.repair is None
    assert [loop.name for loop in loops.all()] == ["probe", "gc", "sessions", "drain", "refill"]
    before = loops.gc.passes
    await loops.gc.run_once()
    assert (loops.gc.passes, loops.gc.failures) == (before + 1, 0)
