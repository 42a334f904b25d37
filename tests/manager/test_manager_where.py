"""Where every copy is and why: placed by an upload, copied by a drain, its state now."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from cofre.errors import NotFound
from cofre.protocol.manager_api import ChunkWhere, CopyWhere

from ..helpers import eventually
from .conftest import Cluster


def _copies(entry: ChunkWhere) -> dict[str, CopyWhere]:
    return {c.node_id: c for c in entry.copies}


async def test_each_copy_says_which_upload_placed_it_and_how_it_scored(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(4)
    up, manifest, _ = await cluster.send("w", os.urandom(2500))
    session_nodes = [cluster.node_id_of(up.primary_url)]
    before = time.time()

    report = await cluster.api.where("w")
    assert report.name == "w" and report.version == 1
    assert report.replication_factor == 2
    assert [c.hash for c in report.chunks] == [c.hash for c in manifest.chunks]
    assert report.manifest.hash == manifest.hash
    for entry in [*report.chunks, report.manifest]:
        assert entry.status == "ok"
        copies = _copies(entry)
        assert len(copies) == 2 and session_nodes[0] not in copies  # the primary kept none
        for copy in copies.values():
            assert copy.state == "ok"
            assert copy.why.startswith("placed by the upload of 'w' at ")
            assert "the 2 best-scored of 4 candidate nodes" in copy.why
            assert f"the primary {session_nodes[0]} relayed it and kept none, chosen" in copy.why
            assert "for latency and bytes relayed" in copy.why
            assert copy.since is not None and 0 < copy.since <= before
    with pytest.raises(NotFound):
        await cluster.api.where("w", version=2)
    with pytest.raises(NotFound):
        await cluster.api.where("nothing")


async def test_a_drained_copy_says_so_and_a_lost_copy_shows_missing(make_cluster: Any) -> None:
    cluster = await make_cluster(4)
    _, manifest, _ = await cluster.send("d", os.urandom(1000))
    chunk = manifest.chunks[0].hash
    holders = sorted(_copies((await cluster.api.where("d")).chunks[0]))
    victim, other = holders

    await cluster.api.drain([victim])
    await eventually(lambda: _drained(cluster), what=f"the drain of {victim}")
    copies = _copies((await cluster.api.where("d")).chunks[0])
    added = set(copies) - set(holders)
    assert len(added) == 1
    new = copies[added.pop()]
    assert new.why.startswith(f"copied off {victim} while it drained; ")
    assert "the best-scored ready node without a copy (score " in new.why
    assert new.state == "ok"

    await cluster.node(other).delete_chunks([chunk])
    report = await cluster.api.where("d")
    assert _copies(report.chunks[0])[other].state == "missing"
    assert report.chunks[0].status == "ok"  # still two good copies: victim's and the new

    await cluster.nodes[victim].close()
    await cluster.probe_out_dead_nodes()
    assert await _unready(cluster, victim)
    report = await cluster.api.where("d")
    assert _copies(report.chunks[0])[victim].state == "unreachable"
    assert report.chunks[0].status == "under_replicated"


async def _unready(cluster: Cluster, node_id: str) -> bool:
    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    return not listed[node_id].ready


async def _drained(cluster: Cluster) -> bool:
    return bool((await cluster.api.drain_status()).done)
