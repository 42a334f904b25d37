"""The manager's /metrics over real storage node apps on loopback: an upload of known size, a
read, fsck, repair, a drain and GC move its counters by exactly what they did, and the nodes'
own metrics agree with the manager's view of them."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from cofre.config import MetricsConfig
from cofre.manager.app import create_app
from cofre.models import UploadId

from ..helpers import eventually
from ..metrics_text import Scraped, check_against_doc
from .conftest import CHUNK_SIZE, TOKEN, Cluster

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SIZE = 5 * CHUNK_SIZE - 100  # five data chunks, the last one short


async def scrape(cluster: Cluster) -> Scraped:
    resp = await cluster.manager.get("/metrics", headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == CONTENT_TYPE
    return Scraped(await resp.text())


async def scrape_node(server: TestServer, cluster: Cluster) -> Scraped:
    async with cluster.http.get(server.make_url("/metrics"), headers=AUTH) as resp:
        assert resp.status == 200
        return Scraped(await resp.text())


def data(seed: int, size: int = SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def per_node(scraped: Scraped, name: str, **labels: str) -> dict[str, float]:
    out = {}
    for key, value in scraped.series(name).items():
        got = dict(key)
        if all(got.get(k) == v for k, v in labels.items()):
            out[got["node"]] = value
    return out


async def node_totals(cluster: Cluster, name: str) -> dict[str, float]:
    return {n: (await scrape_node(s, cluster)).value(name) for n, s in cluster.nodes.items()}


async def test_an_upload_a_read_fsck_and_gc_move_the_counters_by_what_they_did(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(3, factor=2)
    nodes = sorted(cluster.nodes)
    before = await scrape(cluster)
    assert per_node(before, "cofre_manager_node_ready") == dict.fromkeys(nodes, 1.0)
    assert per_node(before, "cofre_manager_node_draining") == dict.fromkeys(nodes, 0.0)
    # Every candidate's score is its two terms.
    scores = per_node(before, "cofre_manager_node_placement_score")
    latency = per_node(before, "cofre_manager_node_placement_latency_term")
    stored = per_node(before, "cofre_manager_node_placement_stored_term")
    assert set(scores) == set(nodes)
    for n in nodes:
        assert scores[n] == pytest.approx(latency[n] + stored[n])
        assert 0.0 < scores[n] <= 1.0
    # One probe pass: one latency sample per node, one pass of the probe loop.
    await cluster.probe()
    probed = await scrape(cluster)
    for n in nodes:
        count = "cofre_manager_probe_latency_seconds_count"
        assert probed.value(count, node=n) == before.value(count, node=n) + 1
    loop_passes = "cofre_manager_loop_passes_total"
    assert probed.value(loop_passes, loop="probe") == before.value(loop_passes, loop="probe") + 1
    assert probed.value("cofre_manager_loop_failures_total", loop="probe") == 0
    assert probed.value("cofre_manager_open_uploads") == 0
    assert probed.value("cofre_manager_catalog_versions") == 0
    assert probed.value("cofre_manager_last_commit_timestamp_seconds") == 0

    # An upload left open shows as one; aborting it closes it.
    opened = await cluster.api.create_upload(name="open", size=10, mode=0o600, mtime=1.0)
    assert (await scrape(cluster)).value("cofre_manager_open_uploads") == 1
    await cluster.api.abort_upload(UploadId(opened.upload_id))

    up, manifest, committed = await cluster.send("file", data(1))
    assert committed is not None
    primary = cluster.node_id_of(up.primary_url)
    replicas = [n for n in nodes if n != primary]
    manifest_bytes = len(manifest.encode())
    after = await scrape(cluster)
    placements = "cofre_manager_placements_total"
    placed = "cofre_manager_placed_bytes_total"
    # Two uploads placed: the open one (10 bytes, maybe elsewhere) and this one.
    assert sum(per_node(after, placements, role="primary").values()) == 2
    assert sum(per_node(after, placements, role="replica").values()) == 4
    assert sum(per_node(after, placed, role="primary").values()) == 10 + SIZE
    assert after.value(placements, node=primary, role="primary") >= 1
    assert after.value("cofre_manager_catalog_files") == 1
    assert after.value("cofre_manager_catalog_versions") == 1
    committed_at = after.value("cofre_manager_last_commit_timestamp_seconds")
    assert manifest.created <= committed_at <= time.time()
    assert after.value("cofre_manager_catalog_live_chunks") == 6  # five chunks and the manifest
    assert after.value("cofre_manager_open_uploads") == 0
    route = "/v1/uploads/{upload_id}/commit"
    labels = {"method": "POST", "route": route, "status": "201"}
    assert after.value("cofre_manager_request_duration_seconds_count", **labels) == 1

    # The nodes stored exactly the upload's bytes on each replica, none on the primary; the
    # manager's view of them (after a probe) agrees.
    received = await node_totals(cluster, "cofre_node_received_bytes_total")
    assert received == {primary: 0, **dict.fromkeys(replicas, SIZE + manifest_bytes)}
    relayed = await node_totals(cluster, "cofre_node_relayed_bytes_total")
    assert relayed == {primary: 2 * (SIZE + manifest_bytes), **dict.fromkeys(replicas, 0)}
    await cluster.probe()
    view = per_node(await scrape(cluster), "cofre_manager_node_stored_bytes")
    assert view == await node_totals(cluster, "cofre_node_stored_bytes")

    # A read: the bytes served, from the nodes the manifest lists.
    got = await cluster.api.get_manifest("file")
    for chunk in got.chunks:
        assert len(await cluster.node(cluster.node_id_of(chunk.nodes[0])).get_chunk(chunk.hash))
    served = await node_totals(cluster, "cofre_node_served_bytes_total")
    assert sum(served.values()) == SIZE

    # The cluster stats and a full fsck count every live chunk ok.
    await cluster.api.stats()
    await cluster.api.fsck()
    counted = await scrape(cluster)
    for source in ("catalog", "fsck"):
        assert counted.value("cofre_manager_chunks", state="ok", source=source) == 6
        assert counted.value("cofre_manager_chunks", state="missing", source=source) == 0
        stamp = "cofre_manager_chunks_counted_timestamp_seconds"
        assert counted.value(stamp, source=source) > 0
    assert counted.value("cofre_manager_chunks", state="corrupt", source="fsck") == 0

    # GC frees exactly what the nodes held.
    held_bytes = await node_totals(cluster, "cofre_node_stored_bytes")
    held_chunks = await node_totals(cluster, "cofre_node_stored_chunks")
    await cluster.api.delete("file")
    result = await cluster.api.gc(grace_s=0)
    collected = await scrape(cluster)
    assert result.freed_bytes == sum(held_bytes.values()) == 2 * (SIZE + manifest_bytes)
    assert collected.value("cofre_manager_gc_runs_total") == 1
    assert collected.value("cofre_manager_gc_freed_bytes_total") == result.freed_bytes
    assert collected.value("cofre_manager_gc_deleted_chunks_total") == sum(held_chunks.values())
    assert await node_totals(cluster, "cofre_node_deleted_bytes_total") == held_bytes
    assert collected.value("cofre_manager_catalog_versions") == 0
    assert collected.value("cofre_manager_catalog_live_chunks") == 0
    check_against_doc(collected, "Manager")


async def test_fsck_counts_a_corrupt_copy_and_repair_and_drain_count_their_copies(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(3, factor=2)
    up, manifest, _ = await cluster.send("file", data(2))
    primary = cluster.node_id_of(up.primary_url)
    first = manifest.chunks[0].hash
    holders = sorted(n for n in cluster.nodes if n != primary)
    cluster.rot(holders[0], first)

    await cluster.api.fsck(verify=True)
    checked = await scrape(cluster)
    expected = {"ok": 5, "under_replicated": 0, "missing": 0, "corrupt": 1}
    for state, count in expected.items():
        assert checked.value("cofre_manager_chunks", state=state, source="fsck") == count

    report = await cluster.api.repair()
    assert report.copies_made == 1
    repaired = await scrape(cluster)
    assert repaired.value("cofre_manager_repair_passes_total", kind="full") == 1
    assert repaired.value("cofre_manager_copies_made_total", reason="repair") == 1
    assert repaired.value("cofre_manager_copies_stuck_total", reason="repair") == 0
    await cluster.api.fsck()
    healthy = await scrape(cluster)
    assert healthy.value("cofre_manager_chunks", state="ok", source="fsck") == 6
    assert healthy.value("cofre_manager_chunks", state="corrupt", source="fsck") == 0

    # Drain the other replica: each chunk it holds needs one new copy elsewhere.
    victim = holders[1]
    on_victim = len(await cluster.node(victim).inventory())
    await cluster.api.set_draining([victim])
    await eventually(cluster.api.drain_status, until=lambda s: s.done, what="the drain")
    drained = await scrape(cluster)
    assert drained.value("cofre_manager_node_draining", node=victim) == 1
    assert drained.value("cofre_manager_copies_made_total", reason="drain") == on_victim
    assert drained.value("cofre_manager_drain_left_chunks") == 0
    assert drained.value("cofre_manager_drain_left_bytes") == 0
    # A draining node is no placement candidate: it has no score.
    assert victim not in per_node(drained, "cofre_manager_node_placement_score")


async def test_drain_left_shows_what_a_drain_still_has_to_copy(make_cluster: Any) -> None:
    cluster = await make_cluster(3, factor=2)
    up, manifest, _ = await cluster.send("file", data(3))
    primary = cluster.node_id_of(up.primary_url)
    victim = next(n for n in sorted(cluster.nodes) if n != primary)
    # The primary, which holds no copy, is the only node a drain could copy to: without it the
    # drain stays where it began.
    await cluster.nodes[primary].close()
    await cluster.probe_out_dead_nodes()
    status = await cluster.api.set_draining([victim])
    assert status.chunks_left == len(manifest.chunks) + 1
    await cluster.loops.drain.run_once()
    left = await scrape(cluster)
    assert left.value("cofre_manager_drain_left_chunks") == status.chunks_left
    assert left.value("cofre_manager_drain_left_bytes") == status.bytes_left
    assert left.value("cofre_manager_copies_stuck_total", reason="drain") >= status.chunks_left
    assert left.value("cofre_manager_node_ready", node=primary) == 0
    await cluster.api.set_draining([])
    ended = await scrape(cluster)
    assert ended.value("cofre_manager_drain_left_chunks") == 0
    assert ended.value("cofre_manager_drain_left_bytes") == 0


async def test_metrics_need_the_token_unless_metrics_public(
    make_cluster: Any, aiohttp_client: Any
) -> None:
    cluster = await make_cluster(3)
    assert (await cluster.manager.get("/metrics")).status == 401
    assert (await cluster.manager.get("/metrics", headers=AUTH)).status == 200
    assert (await cluster.manager.get("/v1/no/such/route", headers=AUTH)).status == 404
    scraped = await scrape(cluster)
    count = "cofre_manager_request_duration_seconds_count"
    assert scraped.value(count, method="GET", route="/metrics", status="401") == 1
    assert scraped.value(count, method="GET", route="unmatched", status="404") == 1

    config = cluster.config
    opened = await aiohttp_client(
        create_app(
            type(config)(
                token=TOKEN,
                data_dir=config.data_dir.parent / "public-manager",
                discovery=config.discovery,
                metrics=MetricsConfig(public=True),
            )
        ),
        server_kwargs={"host": "127.0.0.1"},
    )
    resp = await opened.get("/metrics")
    assert resp.status == 200 and "cofre_manager_catalog_files" in await resp.text()
    # Only /metrics opens.
    assert (await opened.get("/v1/stats")).status == 401
    assert (await opened.get("/v1/stats", headers=AUTH)).status == 200
