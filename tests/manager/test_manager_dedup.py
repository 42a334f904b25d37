"""Dedup across placement: a re-put placed on other nodes sends and stores no chunk again."""

from __future__ import annotations

import io
import os
import time
from typing import Any

import pytest

from cofre.chunks import iter_chunks
from cofre.errors import BadRequest, Conflict, IncompleteUpload, NotFound
from cofre.manager.keys import MANAGER
from cofre.models import ChunkHash, Manifest, UploadId
from cofre.protocol.client import NodeClient
from cofre.protocol.manager_api import Committed

from .conftest import CHUNK_SIZE, TOKEN, Cluster


async def _holders(cluster: Cluster, name: str) -> dict[str, set[str]]:
    got = await cluster.api.get_manifest(name)
    return {c.hash: {cluster.node_id_of(u) for u in c.nodes} for c in got.chunks}


async def _probe_seen_storing(cluster: Cluster, node_ids: set[str]) -> None:
    """A probe pass, after which the manager knows every one of ``node_ids`` stores bytes."""
    await cluster.probe()
    listed = {n.node_id: n for n in (await cluster.api.nodes()).nodes}
    assert all(listed[n].stored_bytes > 0 for n in node_ids), listed


class Upload:
    """An upload of ``data`` as ``name`` whose chunks are sent only when asked to."""

    def __init__(self, cluster: Cluster, name: str, data: bytes) -> None:
        self.cluster = cluster
        self.name = name
        self.data = data
        self.blobs: dict[ChunkHash, bytes] = {}

    async def open(self) -> None:
        api = self.cluster.api
        self.up = await api.create_upload(name=self.name, size=len(self.data), mode=0o600, mtime=2)
        self.uid = UploadId(self.up.upload_id)
        refs = []
        for ref, blob in iter_chunks(io.BytesIO(self.data), CHUNK_SIZE):
            refs.append(ref)
            self.blobs[ref.hash] = blob
        self.manifest = Manifest(
            name=self.name,
            size=len(self.data),
            mode=0o600,
            mtime=2.0,
            created=time.time(),
            chunks=tuple(refs),
        )
        self.primary = NodeClient(self.cluster.http, self.up.primary_url, TOKEN)
        session = await self.cluster.manager.server.app[MANAGER].catalog.session(self.uid)
        assert session is not None
        self.copy_holders = set(session.copy_holders)

    async def known(self) -> set[ChunkHash]:
        return await self.cluster.api.known(self.uid, list(self.blobs))

    async def send(self, hashes: set[ChunkHash]) -> None:
        ticket = self.up.ticket
        for h in hashes:
            await self.primary.upload_chunk(self.uid, h, self.blobs[h], ticket=ticket)

    async def commit(self) -> Committed:
        ticket = self.up.ticket
        encoded = self.manifest.encode()
        await self.primary.upload_chunk(self.uid, self.manifest.hash, encoded, ticket=ticket)
        return await self.cluster.api.commit_upload(self.uid, self.manifest)


async def _stored_then_reopened(
    make_cluster: Any,
) -> tuple[Cluster, set[str], Upload, ChunkHash]:
    """``a`` stored on two nodes, then an upload of the same bytes placed on three others."""
    # Placement by stored bytes alone, so the second upload surely goes to the empty nodes.
    cluster = await make_cluster(5, latency_weight=0.0)
    data = os.urandom(3 * CHUNK_SIZE)
    _, stored, _ = await cluster.send("a", data)
    first = await _holders(cluster, "a")
    holders = set().union(*first.values())
    assert len(holders) == 2
    await _probe_seen_storing(cluster, holders)
    again = Upload(cluster, "b", data)
    await again.open()
    assert again.copy_holders.isdisjoint(holders)  # placed elsewhere, as a re-put usually is
    return cluster, holders, again, stored.hash


async def test_a_re_put_placed_elsewhere_sends_and_stores_no_chunk_again(
    make_cluster: Any,
) -> None:
    cluster, holders, again, _ = await _stored_then_reopened(make_cluster)
    assert await again.known() == set(again.blobs)

    answer = await again.commit()  # only the manifest was sent
    assert answer.version == 1 and answer.chunks == 3

    located = await _holders(cluster, "b")
    for chunk_hash in again.blobs:
        assert located[chunk_hash] == holders  # recorded where the copies already were
    catalog = cluster.manager.server.app[MANAGER].catalog
    manifest_at = await catalog.locations([again.manifest.hash])
    assert manifest_at[again.manifest.hash] == again.copy_holders
    for node_id in again.copy_holders:
        check = await cluster.node(node_id).check(list(again.blobs))
        assert check.present == []  # no third or fourth copy
    report = await cluster.api.fsck(verify=True)
    assert report.healthy is True, report
    assert report.summary.versions == 2


async def test_a_chunk_short_of_copies_is_not_known_and_its_commit_waits_for_it(
    make_cluster: Any,
) -> None:
    cluster, holders, again, _ = await _stored_then_reopened(make_cluster)
    lost = next(iter(again.blobs))
    await cluster.node(sorted(holders)[0]).delete_chunks([lost])

    known = await again.known()
    assert known == set(again.blobs) - {lost}
    with pytest.raises(IncompleteUpload, match="1 of 4 chunks"):
        await again.commit()
    await again.send({lost})
    assert (await again.commit()).version == 1
    located = await _holders(cluster, "b")
    assert again.copy_holders <= located[lost]  # sent again: stored on the upload's nodes
    assert (await cluster.api.fsck(name="b")).healthy is True


async def test_copies_on_a_draining_node_do_not_count(make_cluster: Any) -> None:
    cluster, holders, again, _ = await _stored_then_reopened(make_cluster)
    await cluster.api.set_draining([sorted(holders)[0]])
    assert await again.known() == set()


async def test_gc_spares_the_known_chunks_of_an_open_upload(make_cluster: Any) -> None:
    cluster, holders, again, a_manifest = await _stored_then_reopened(make_cluster)
    await cluster.api.delete("a")
    # Long written: only a touch can keep these chunks from this GC pass.
    old = time.time() - 7200
    for node_id in holders:
        for chunk_hash in [*again.blobs, a_manifest]:
            cluster.age(node_id, chunk_hash, old)

    assert await again.known() == set(again.blobs)
    result = await cluster.api.gc(grace_s=0)
    assert result.deleted_chunks == 2  # a's manifest, on both its nodes, and nothing else
    assert (await again.commit()).version == 1
    report = await cluster.api.fsck(name="b", verify=True)
    assert report.healthy is True, report


async def test_known_refuses_bad_requests(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    with pytest.raises(NotFound):
        await cluster.api.known(UploadId("no-such-upload"), [])
    up, manifest, _ = await cluster.send("f", os.urandom(100))
    with pytest.raises(Conflict, match="committed"):
        await cluster.api.known(UploadId(up.upload_id), [manifest.hash])
    fresh = Upload(cluster, "g", b"x")
    await fresh.open()
    # Sent raw: the typed client refuses to build these queries.
    path = f"/v1/uploads/{fresh.uid}/known"
    detail = await cluster.refused("POST", path, json={"hashes": [manifest.hash, "../etc/passwd"]})
    assert detail.startswith("body.hashes.1: String should match pattern"), detail
    detail = await cluster.refused("POST", path, json={"hashes": [manifest.hash] * 4097})
    assert detail.startswith("body.hashes: ") and "at most 4096" in detail, detail
    with pytest.raises(BadRequest, match=r"^hashes\.0: "):
        await cluster.api.known(fresh.uid, [ChunkHash("../etc/passwd")])
