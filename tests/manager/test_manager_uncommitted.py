"""Uploads that stored their manifest and never committed: they block nothing, never come back
as versions, and GC deletes what they left, on a catalog that holds no version yet."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from cofre.config import NodeConfig
from cofre.errors import Conflict
from cofre.models import ChunkHash, UploadId
from cofre.storage_node import create_app as create_node_app

from ..helpers import eventually
from .conftest import TOKEN


async def _aborted_after_manifest(cluster: Any, name: str, data: bytes) -> ChunkHash:
    """An upload whose chunks and manifest reached the nodes, then aborted; -> the manifest."""
    up, manifest, _ = await cluster.send(name, data, commit=False)
    await cluster.api.abort_upload(UploadId(up.upload_id))
    return ChunkHash(manifest.hash)


async def _holders(cluster: Any, chunk_hash: ChunkHash) -> set[str]:
    found = set()
    for node_id in cluster.nodes:
        if (await cluster.node(node_id).check([chunk_hash])).present:
            found.add(node_id)
    return found


async def test_an_aborted_first_upload_does_not_block_the_next(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    manifest = await _aborted_after_manifest(cluster, "first", os.urandom(3000))
    assert await _holders(cluster, manifest)
    assert await cluster.api.list_files(versions=True) == []
    assert (await cluster.api.fsck()).healthy

    _, _, committed = await cluster.send("second", os.urandom(2000))

    assert committed is not None and committed.version == 1
    assert [f.name for f in await cluster.api.list_files(versions=True)] == ["second"]


async def test_gc_deletes_what_an_aborted_upload_left_before_any_version(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(3)
    manifest = await _aborted_after_manifest(cluster, "first", os.urandom(3000))

    result = await cluster.api.gc(grace_s=0)

    assert result.deleted_chunks >= 4  # 3 data chunks and the manifest, on 2 nodes each
    assert await _holders(cluster, manifest) == set()
    # Nothing left to explain: a new upload goes on.
    _, _, committed = await cluster.send("next", os.urandom(100))
    assert committed is not None


async def test_a_rebuild_does_not_bring_back_an_aborted_upload(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await _aborted_after_manifest(cluster, "first", os.urandom(3000))

    report = await cluster.api.rebuild_catalog()

    assert (report.versions, report.skipped_uncommitted) == (0, 1)
    assert await cluster.api.list_files(versions=True) == []


async def test_a_foreign_manifest_still_means_a_lost_catalog(
    make_cluster: Any, tmp_path: Any
) -> None:
    """Only manifests of uploads this catalog recorded are excused: a lost catalog's versions
    still refuse new uploads and keep GC away."""
    first = await make_cluster(3)
    _, _, committed = await first.send("old", os.urandom(1500))
    assert committed is not None
    second = await make_cluster(3, data_dir=tmp_path / "manager-new", node_servers=first.nodes)
    with pytest.raises(Conflict, match="hold 1 backup manifests"):
        await second.api.create_upload(name="new", size=3, mode=0o644, mtime=0.0)
    gc = await second.api.gc(grace_s=0)
    assert gc.deleted_chunks == 0


class HeldListings:
    """Holds each node's answer to the manifest listing (``GET /v1/manifests``), made
    already, until released: a commit can then land between the listing and the catalog's
    look at its uncommitted uploads, every time."""

    def __init__(self) -> None:
        self.armed = False
        self.listed: list[set[str]] = []
        self.release = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if self.armed and request.method == "GET" and request.path == "/v1/manifests":
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            self.listed.append({m["hash"] for m in json.loads(response.body)["manifests"]})
            await self.release.wait()
        return response


async def test_a_commit_landing_while_the_nodes_are_asked_is_no_lost_catalog(
    make_cluster: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    held = HeldListings()
    servers = {}
    for i in range(3):
        node_id = f"node-{i}"
        app = create_node_app(
            NodeConfig(token=TOKEN, node_id=node_id, data_dir=tmp_path / node_id, reserve_bytes=0)
        )
        app.middlewares.append(held.middleware)
        servers[node_id] = await aiohttp_server(app, host="127.0.0.1")
    cluster = await make_cluster(3, node_servers=servers)
    # The first upload of the cluster: chunks and manifest on the nodes, not committed yet.
    up, manifest, _ = await cluster.send("first", os.urandom(3000), commit=False)

    held.armed = True
    second = asyncio.create_task(
        cluster.api.create_upload(name="second", size=3, mode=0o644, mtime=0.0)
    )
    # Every node listed what it holds (the first upload's manifest among it) before the
    # commit below, and waits to answer.
    await eventually(lambda: len(held.listed), until=lambda n: n == 3, what="3 listings")
    assert any(manifest.hash in listed for listed in held.listed)
    assert await cluster.api.list_files(versions=True) == []
    committed = await cluster.api.commit_upload(UploadId(up.upload_id), manifest)
    assert committed.version == 1
    held.release.set()

    # The manifest is a version's now, not a sign of a lost catalog: no refusal.
    created = await second
    assert created.upload_id != up.upload_id
    assert [f.name for f in await cluster.api.list_files(versions=True)] == ["first"]
