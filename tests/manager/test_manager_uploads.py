"""Upload create/commit/abort, listing, manifests and deletes through the manager app."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cofre.errors import BadRequest, IncompleteUpload, NotEnoughNodes, NotFound, Unauthorized
from cofre.models import NodeId, UploadId
from cofre.protocol.client import ManagerClient
from cofre.protocol.manager_api import Committed, UploadCreated
from cofre.tickets import Ticket, ticket_key

TOKEN = "manager-test-token"


async def test_upload_is_placed_on_primary_only_and_commits_when_complete(
    make_cluster: Any,
) -> None:
    cluster = await make_cluster(3)
    data = os.urandom(3000)
    declared = {"name": "docs/a.txt", "size": len(data), "mode": 0o600, "mtime": 2.0}
    status, answer = await cluster.call("POST", "/v1/uploads", json=declared)
    assert status == 201, answer
    assert set(answer) == {"upload_id", "primary_url", "ticket", "chunk_size", "expires"}
    up = UploadCreated.model_validate(answer)
    primary = cluster.node_id_of(up.primary_url)
    ticket = Ticket.verify(up.ticket, ticket_key(TOKEN), node_id=NodeId(primary))
    assert ticket.nodes == (primary,)

    # Only the manifest sent: the commit is refused and says how much is missing.
    partial, manifest, _ = await cluster.send("docs/b.txt", data, commit=False, skip=3)
    with pytest.raises(IncompleteUpload) as info:
        await cluster.api.commit_upload(UploadId(partial.upload_id), manifest)
    assert info.value.extra["missing"] == 3

    up2, manifest, result = await cluster.send("docs/c.txt", data)
    assert result == Committed(name="docs/c.txt", version=1, size=3000, chunks=3)
    _, _, again = await cluster.send("docs/c.txt", data + b"x")
    assert again is not None and again.version == 2

    got = await cluster.api.get_manifest("docs/c.txt", version=1)
    assert [c.hash for c in got.chunks] == [c.hash for c in manifest.chunks]
    primary2 = up2.primary_url.rstrip("/")
    for chunk in got.chunks:
        # Two copies, neither on the relaying primary (it keeps none by default).
        assert len(chunk.nodes) == 2
        assert primary2 not in chunk.nodes
        node = cluster.node(cluster.node_id_of(chunk.nodes[0]))
        blob = await node.get_chunk(chunk.hash)
        assert (
            blob
            == data[sum(c.length for c in got.chunks[: got.chunks.index(chunk)]) :][: chunk.length]
        )
    assert got.mode == 0o640 and got.size == 3000


async def test_commit_is_idempotent_and_abort_releases(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    up, manifest, result = await cluster.send("f", b"abc" * 500)
    assert result is not None
    assert await cluster.api.commit_upload(UploadId(up.upload_id), manifest) == result

    up = await cluster.api.create_upload(name="g", size=10_000, mode=0o644, mtime=0.0)
    listed = await cluster.api.nodes()
    # Reserved on the two nodes that will hold copies; the primary relays and keeps none.
    assert sum(n.in_flight_bytes for n in listed.nodes) == 2 * 10_000
    await cluster.api.abort_upload(UploadId(up.upload_id))
    listed = await cluster.api.nodes()
    assert sum(n.in_flight_bytes for n in listed.nodes) == 0
    with pytest.raises(NotFound):
        await cluster.api.abort_upload(UploadId("no-such-upload"))


async def test_listing_and_deleting_versions(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    await cluster.send("a", b"1" * 100)
    await cluster.send("a", b"2" * 200)
    await cluster.send("b", b"")
    latest = await cluster.api.list_files()
    assert [(f.name, f.version, f.size) for f in latest] == [("a", 2, 200), ("b", 1, 0)]
    every = await cluster.api.list_files(versions=True)
    assert [(f.name, f.version) for f in every] == [("a", 1), ("a", 2), ("b", 1)]

    assert await cluster.api.delete("a", version=2) == [2]
    assert (await cluster.api.get_manifest("a")).version == 1
    with pytest.raises(NotFound):
        await cluster.api.get_manifest("a", version=2)
    with pytest.raises(NotFound):
        await cluster.api.delete("a", version=2)
    assert await cluster.api.delete("a") == [1]
    with pytest.raises(NotFound):
        await cluster.api.get_manifest("a")
    with pytest.raises(NotFound):
        await cluster.api.delete("nothing")
    _, _, result = await cluster.send("a", b"3")
    assert result is not None and result.version == 3  # numbers are never reused
    with pytest.raises(
        BadRequest, match=r"^query\.version: Input should be greater than or equal to 1"
    ):
        await cluster.api.get_manifest("a", version=0)
    detail = await cluster.refused(
        "GET", "/v1/files/manifest", params={"name": "a", "version": "x"}
    )
    assert detail.startswith("query.version: "), detail


async def test_wrong_token_is_refused(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    wrong = ManagerClient(cluster.http, str(cluster.manager.make_url("")), "not-the-token")
    with pytest.raises(Unauthorized):
        await wrong.list_files()
    resp = await cluster.manager.get("/healthz")
    assert resp.status == 200
    resp = await cluster.manager.get("/readyz")
    assert resp.status == 200
    resp = await cluster.manager.get(
        "/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status == 200
    doc = await resp.json()
    # Every route and body: test_manager_openapi.py.
    assert "/v1/uploads/{upload_id}/commit" in doc["paths"] and "/v1/drain" in doc["paths"]


async def test_not_enough_nodes_is_503_with_a_clear_detail(make_cluster: Any) -> None:
    cluster = await make_cluster(2)
    with pytest.raises(NotEnoughNodes) as info:
        await cluster.api.create_upload(name="x", size=1, mode=0o644, mtime=0.0)
    assert info.value.detail == (
        "need 3 ready storage nodes with room for replication factor 2, have 2"
    )


async def test_primary_keeps_copy_uses_f_nodes(make_cluster: Any) -> None:
    cluster = await make_cluster(2, keep_copy=True)
    _, _, result = await cluster.send("k", os.urandom(2500))
    assert result is not None
    got = await cluster.api.get_manifest("k")
    for chunk in got.chunks:
        assert sorted(chunk.nodes) == sorted(cluster.url(n) for n in cluster.nodes)


async def test_open_upload_survives_a_manager_restart(make_cluster: Any) -> None:
    cluster = await make_cluster(3)
    data = os.urandom(1500)
    up, manifest, _ = await cluster.send("r", data, commit=False)
    await cluster.manager.close()

    again = await make_cluster(3, data_dir=cluster.config.data_dir, node_servers=cluster.nodes)
    listed = await again.api.nodes()
    assert sum(n.in_flight_bytes for n in listed.nodes) == 2 * len(data)  # the copy holders
    result = await again.api.commit_upload(UploadId(up.upload_id), manifest)
    assert result.version == 1
    listed = await again.api.nodes()
    assert sum(n.in_flight_bytes for n in listed.nodes) == 0


async def test_expired_uploads_are_swept_and_cannot_commit(make_cluster: Any) -> None:
    from cofre.errors import Conflict
    from cofre.manager import uploads
    from cofre.manager.keys import MANAGER

    cluster = await make_cluster(3)
    up, manifest, _ = await cluster.send("late", b"z" * 100, commit=False)
    manager = cluster.manager.server.app[MANAGER]
    assert await uploads.sweep_expired(manager, now=up.expires + 1) == 1
    listed = await cluster.api.nodes()
    assert sum(n.in_flight_bytes for n in listed.nodes) == 0
    with pytest.raises(Conflict, match="expired"):
        await cluster.api.commit_upload(UploadId(up.upload_id), manifest)
