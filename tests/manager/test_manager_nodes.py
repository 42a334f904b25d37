"""Probing, node listing and repair after a node is lost, over real storage nodes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cofre.errors import NotEnoughNodes
from cofre.manager.keys import MANAGER
from cofre.protocol.manager_api import NodeStatus


async def test_nodes_report_probes_and_scores(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    listed = await cluster.api.nodes()
    assert listed.replication_factor == 2 and listed.primary_keeps_copy is False
    nodes = {n.node_id: n for n in listed.nodes}
    assert set(nodes) == set(cluster.nodes)
    for node_id, n in nodes.items():
        assert n.url == cluster.url(node_id)
        assert n.ready is True and n.draining is False
        assert n.latency_ms is not None and n.latency_ms >= 0
        assert n.score is not None and 0 <= n.score <= 1
        assert n.free_bytes > 0


async def test_a_dead_node_becomes_unready_and_is_not_chosen(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await cluster.nodes["node-1"].close()

    async def node1() -> NodeStatus:
        listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
        return listed["node-1"]

    # One failed probe is ridden out; failures_before_unready (2) in a row are not.
    await cluster.probe()
    assert (await node1()).ready is True
    await cluster.probe_out_dead_nodes()
    down = await node1()
    assert down.ready is False and down.score is None, down
    with pytest.raises(NotEnoughNodes, match="have 2"):
        await cluster.api.create_upload(name="x", size=1, mode=0o644, mtime=0.0)
    stats = await cluster.api.stats()
    assert (stats.nodes_ready, stats.nodes_total) == (2, 3)


async def test_chunks_of_a_lost_node_are_copied_elsewhere(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    _, manifest, _ = await cluster.send("r", os.urandom(3000))
    got = await cluster.api.get_manifest("r")
    victim_url = got.chunks[0].nodes[0]
    victim = cluster.node_id_of(victim_url)
    await cluster.nodes[victim].close()
    cluster.manager.server.app[MANAGER].repair_after_s = 0.0
    assert (await cluster.api.fsck()).healthy is False  # its copies cannot be reached

    await cluster.probe_out_dead_nodes()
    stats = await cluster.api.stats()
    # One copy of each of its chunks is left: short of copies, none missing.
    assert stats.under_replicated_chunks > 0 and stats.missing_chunks == 0
    await cluster.loops.drain.run_once()  # a repair pass comes with it once repair_after_s is up
    report = await cluster.api.fsck()
    assert report.healthy is True, report
    stats = await cluster.api.stats()
    assert stats.under_replicated_chunks == 0
    got = await cluster.api.get_manifest("r")
    for chunk in got.chunks:
        assert len(chunk.nodes) == 2 and victim_url not in chunk.nodes
    assert [c.hash for c in got.chunks] == [c.hash for c in manifest.chunks]
    # The new copies say why they were made.
    report = await cluster.api.where("r")
    for entry in report.chunks:
        repaired_copies = [c for c in entry.copies if c.why.startswith("repair: ")]
        assert [c.why.split(";")[0] for c in repaired_copies] == [
            f"repair: the copies on {victim} were lost"
        ] * len(repaired_copies)
    assert any(c.why.startswith("repair: ") for e in report.chunks for c in e.copies)
