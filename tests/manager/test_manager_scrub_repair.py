"""Scrub findings, emptied nodes and repair order through the manager app over real nodes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from cofre.config import NodeConfig, ScrubConfig
from cofre.manager.keys import MANAGER
from cofre.models import ChunkHash
from cofre.protocol.manager_api import ChunkWhere, CopyWhere
from cofre.storage_node import create_app as create_node_app
from cofre.storage_node.app import SCRUB_LOOP

from ..metrics_text import Scraped
from .conftest import TOKEN, Cluster

# Every chunk due at once, and a byte budget no test waits for.
FAST_SCRUB = ScrubConfig(cycle_s=0.001, bytes_per_s=1 << 40)


async def _nodes(aiohttp_server: Any, root: Path, count: int) -> dict[str, TestServer]:
    servers = {}
    for i in range(count):
        node_id = f"node-{i}"
        config = NodeConfig(
            token=TOKEN, node_id=node_id, data_dir=root / node_id, reserve_bytes=0, scrub=FAST_SCRUB
        )
        servers[node_id] = await aiohttp_server(create_node_app(config), host="127.0.0.1")
    return servers


def _copies(entry: ChunkWhere) -> dict[str, CopyWhere]:
    return {c.node_id: c for c in entry.copies}


async def _scrape(cluster: Cluster) -> Scraped:
    resp = await cluster.manager.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    return Scraped(await resp.text())


async def test_a_flipped_byte_is_found_by_the_scrub_and_replaced_from_a_good_copy(
    make_cluster: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    servers = await _nodes(aiohttp_server, tmp_path, 3)
    cluster = await make_cluster(3, node_servers=servers)
    _, manifest, _ = await cluster.send("rot", os.urandom(2048))
    chunk = manifest.chunks[0].hash
    rot_on = sorted(_copies((await cluster.api.where("rot")).chunks[0]))[0]
    cluster.rot(rot_on, chunk, at=100)

    # Nobody reads or checks the chunk: the node's own scrub pass finds the rot...
    await servers[rot_on].app[SCRUB_LOOP].run_once()
    # ...the manager learns of it at its next probe and repairs at once.
    await cluster.probe()
    await cluster.loops.refill.run_once()

    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert listed[rot_on].scrub_findings == 1 and listed[rot_on].scrub_enabled is True
    assert listed[rot_on].scrub_last_full_pass_at is not None
    assert listed[rot_on].scrub_cycle_chunks > 0 and listed[rot_on].scrub_cycle_bytes > 0
    # The cycle finished (every chunk read): the node's own share, and its cycle length.
    assert listed[rot_on].scrub_cycle_progress == 1.0
    assert listed[rot_on].scrub_cycle_s == FAST_SCRUB.cycle_s
    copies = _copies((await cluster.api.where("rot")).chunks[0])
    good = [n for n, c in copies.items() if c.state == "ok"]
    assert len(good) == 2, copies
    repaired = [c for c in copies.values() if c.why.startswith("repair: ")]
    assert len(repaired) == 1, copies
    assert repaired[0].why.startswith(
        f"repair: copies lost on {rot_on} (found corrupt by the scrub); copied from "
    )
    fsck = await cluster.api.fsck(name="rot", verify=True)
    assert fsck.healthy is True, fsck
    overview = await cluster.api.overview()
    assert overview.last_repair is not None and overview.last_repair.reason == "scrub"
    # A second probe does not take the same finding up again.
    await cluster.probe()
    assert not any(
        s.scrub_findings for s in cluster.manager.server.app[MANAGER].registry.nodes.values()
    )


async def test_a_wiped_node_is_refilled_at_its_next_probe(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await cluster.send("w", os.urandom(4096))
    await cluster.probe()  # the probe before: the node holds its chunks
    where = await cluster.api.where("w")
    counts: dict[str, int] = {}
    for entry in where.chunks:
        for node in _copies(entry):
            counts[node] = counts.get(node, 0) + 1
    wiped = max(counts, key=lambda n: counts[n])
    held = [e.hash for e in await cluster.node(wiped).inventory()]
    assert held
    await cluster.node(wiped).delete_chunks([ChunkHash(h) for h in held])

    await cluster.probe()
    await cluster.loops.refill.run_once()

    after = await cluster.api.where("w")
    for entry in after.chunks:
        copies = _copies(entry)
        assert sum(1 for c in copies.values() if c.state == "ok") == 2, copies
    refilled = [c for e in after.chunks for c in e.copies if "(refill)" in c.why]
    assert len(refilled) == counts[wiped]
    assert (await cluster.api.fsck(name="w")).healthy is True
    # The window with fewer than F copies opened at the probe and closed after the refill.
    overview = await cluster.api.overview()
    run = overview.last_repair
    assert run is not None and run.reason == "refill" and run.window is not None
    assert run.window.episodes == 1 and run.window.open_since is None
    assert run.window.last_s is not None and run.window.last_s > 0
    assert run.window.longest_s == run.window.last_s
    scraped = await _scrape(cluster)
    assert scraped.value("cofre_manager_under_replicated_last_window_seconds") > 0
    assert scraped.value("cofre_manager_under_replicated_since_timestamp_seconds") == 0
    assert scraped.value("cofre_manager_repair_passes_total", kind="refill") == 1


async def test_a_chunk_with_one_good_copy_is_repaired_before_one_with_f_minus_one(
    make_cluster: Any,
) -> None:
    # One copy at a time, so the order shows in when each copy was recorded.
    cluster = await make_cluster(6, factor=3, repair={"parallel_copies": 1})
    _, manifest, _ = await cluster.send("p", os.urandom(2048))
    where = {e.hash: e for e in (await cluster.api.where("p")).chunks}
    # The catalog lists chunks by hash: the one left with a single copy comes last there.
    first, last = sorted(c.hash for c in manifest.chunks)
    for chunk, drop in ((last, 2), (first, 1)):
        for node in sorted(_copies(where[chunk]))[:drop]:
            await cluster.node(node).delete_chunks([ChunkHash(chunk)])

    report = await cluster.api.repair()
    assert (report.lost_copies, report.copies_made, report.healthy) == (3, 3, True)

    after = {e.hash: e for e in (await cluster.api.where("p")).chunks}

    def repaired_at(chunk: str) -> list[float]:
        return sorted(
            c.since for c in after[chunk].copies if c.why.startswith("repair: ") and c.since
        )

    one_left, f_minus_one = repaired_at(last), repaired_at(first)
    assert len(one_left) == 2 and len(f_minus_one) == 1
    assert one_left[-1] <= f_minus_one[0], (one_left, f_minus_one)
