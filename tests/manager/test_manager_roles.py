"""Keys and roles on a real manager over real nodes: every route, with each role, is allowed or
refused as its declaration says (the list of routes is read from the declarations, so a route
added later is covered without being named here), and a key reads and writes through the
nodes with the tickets the manager signs, never with the cluster token."""

from __future__ import annotations

import io
import re
import time

import pytest

from cofre.chunks import iter_chunks
from cofre.cli.http import Clients
from cofre.config import ClientConfig
from cofre.errors import Conflict, Forbidden, NotFound, RoleRefused, Unauthorized
from cofre.manager.routes import api
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, UploadId
from cofre.protocol.access import Role
from cofre.protocol.api import Operation
from cofre.protocol.client import ManagerClient, NodeClient
from cofre.tickets import Scope, Ticket, ticket_key

from ..metrics_text import Scraped
from .conftest import TOKEN, ClusterFactory

# What must stay admin whatever else changes: every way to delete or to run the cluster.
ADMIN_ONLY = {
    ("DELETE", "/v1/files"),
    ("POST", "/v1/gc"),
    ("POST", "/v1/repair"),
    ("POST", "/v1/catalog/rebuild"),
    ("POST", "/v1/drain"),
    ("PUT", "/v1/drain"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{name}"),
}
GUARDED = [op for op in api.operations if not op.public]


def _url(op: Operation) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", op.path)


def test_every_route_declares_a_role_and_the_destructive_ones_are_admin() -> None:
    declared = {(op.method, op.path): op.role for op in GUARDED}
    assert all(role is not None for role in declared.values()), declared
    for route in ADMIN_ONLY:
        assert declared[route] is Role.ADMIN, route
    # A backup key adds and never deletes: the only DELETE it may send aborts its own upload.
    backup_deletes = [r for r, role in declared.items() if r[0] == "DELETE" and role != Role.ADMIN]
    assert backup_deletes == [("DELETE", "/v1/uploads/{upload_id}")]


def test_openapi_shows_each_role_and_the_403_of_the_guarded_routes() -> None:
    doc = api.openapi(title="t", version="1", description="d")
    for op in GUARDED:
        entry = doc["paths"][op.path][op.method.lower()]
        assert op.role is not None
        assert entry["x-cofre-role"] == op.role.value
        assert ("403" in entry["responses"]) == (op.role is not Role.READ), op.path


def test_a_route_without_a_role_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="declare the role"):
        api.get("/v1/forgotten", summary="x", replies={200: None})


@pytest.mark.parametrize("role", [Role.READ, Role.BACKUP, Role.ADMIN])
async def test_each_role_is_allowed_or_refused_on_every_route_as_declared(
    make_cluster: ClusterFactory, role: Role
) -> None:
    cluster = await make_cluster(3, factor=2)
    made = await cluster.api.create_key(f"k-{role.value}", role)
    headers = {"Authorization": f"Bearer {made.key}"}
    refused: list[str] = []
    for op in GUARDED:
        # Bodies and parameters are left out: a refusal comes before any parsing, and a
        # request let through is answered by its handler (200, 400, 404, ...), never 401/403.
        resp = await cluster.manager.request(op.method, _url(op), headers=headers)
        assert op.role is not None
        if role.allows(op.role):
            assert resp.status not in (401, 403), (op.method, op.path, resp.status)
            continue
        problem = await resp.json()
        assert resp.status == 403 and problem["code"] == "role_refused", (op.path, problem)
        assert problem["detail"] == (
            f"key 'k-{role.value}' has role {role.value}; {op.method} {op.path} needs role "
            f"{op.role.value}"
        )
        assert (problem["key"], problem["role"], problem["needed"]) == (
            f"k-{role.value}",
            role.value,
            op.role.value,
        )
        refused.append(op.operation_id)
    expected = [op.operation_id for op in GUARDED if op.role and not role.allows(op.role)]
    assert refused == expected
    assert (role is Role.ADMIN) == (not refused)
    # Each refusal is counted by the key's role and the operation.
    scraped = Scraped(await (await cluster.manager.get("/metrics", headers=headers)).text())
    counted = scraped.series("cofre_manager_auth_refused_total")
    assert counted == {(("operation", o), ("role", role.value)): 1.0 for o in expected}


async def test_keys_are_made_listed_checked_and_revoked(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(3, factor=2)
    made = await cluster.api.create_key("laptop", Role.BACKUP)
    assert made.key.startswith("cofre_") and made.role is Role.BACKUP
    with pytest.raises(Conflict, match="exists already"):
        await cluster.api.create_key("laptop", Role.READ)
    listed = await cluster.api.list_keys()
    assert [(k.name, k.role, k.last_used) for k in listed] == [("laptop", Role.BACKUP, None)]

    laptop = ManagerClient(cluster.http, cluster.api.base_url, made.key)
    assert await laptop.list_files() == []
    (used,) = await cluster.api.list_keys()
    assert used.last_used is not None and used.last_used >= used.created
    with pytest.raises(RoleRefused, match="needs role admin"):
        await laptop.list_keys()

    # The catalog keeps a hash of the secret, never the key; a wrong secret for a real id fails.
    db = (cluster.config.data_dir / "catalog.sqlite3").read_bytes()
    secret = made.key[len("cofre_") + 17 :]  # cofre_<16 hex>_<secret>
    assert len(secret) == 43 and secret.encode() not in db
    forged = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    with pytest.raises(Unauthorized):
        await ManagerClient(cluster.http, cluster.api.base_url, forged).list_files()

    await cluster.api.delete_key("laptop")
    with pytest.raises(Unauthorized):
        await laptop.list_files()
    with pytest.raises(NotFound):
        await cluster.api.delete_key("laptop")
    assert await cluster.api.list_keys() == []


async def test_keys_outlive_a_manager_restart(make_cluster: ClusterFactory) -> None:
    first = await make_cluster(3, factor=2)
    made = await first.api.create_key("cron", Role.READ)
    await first.manager.close()
    again = await make_cluster(
        3, factor=2, data_dir=first.config.data_dir, node_servers=first.nodes
    )
    reader = ManagerClient(again.http, again.api.base_url, made.key)
    assert await reader.list_files() == []
    assert [k.name for k in await again.api.list_keys()] == ["cron"]


async def test_a_backup_key_puts_and_gets_through_the_nodes_without_the_token(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(3, factor=2)
    key = (await cluster.api.create_key("agent", Role.BACKUP)).key
    agent = ManagerClient(cluster.http, cluster.api.base_url, key)
    data = b"backed up by a key " * 200
    up = await agent.create_upload(name="k.txt", size=len(data), mode=0o640, mtime=1.0)
    # No Authorization header at all to the node: the upload's ticket is enough.
    primary = NodeClient(cluster.http, up.primary_url, None)
    uid = UploadId(up.upload_id)
    refs: list[ChunkRef] = []
    for ref, blob in iter_chunks(io.BytesIO(data), up.chunk_size):
        refs.append(ref)
        assert await primary.missing(uid, [ref.hash], ticket=up.ticket) == [ref.hash]
        await primary.upload_chunk(uid, ref.hash, blob, ticket=up.ticket)
    manifest = Manifest(
        name="k.txt", size=len(data), mode=0o640, mtime=1.0, created=time.time(), chunks=tuple(refs)
    )
    await primary.upload_chunk(uid, manifest.hash, manifest.encode(), ticket=up.ticket)
    assert (await agent.commit_upload(uid, manifest)).version == 1

    view = await agent.get_manifest("k.txt")
    assert view.ticket is not None
    got = b""
    for chunk in view.chunks:
        node = NodeClient(cluster.http, chunk.nodes[0], None)
        with pytest.raises(Unauthorized):
            await node.get_chunk(chunk.hash)  # no ticket, no token: nothing
        with pytest.raises(Forbidden, match="allows writes only"):
            await node.get_chunk(chunk.hash, ticket=up.ticket)
        got += await node.get_chunk(chunk.hash, ticket=view.ticket)
        framed = await node.read_chunks([chunk.hash], ticket=view.ticket)
        assert [h for h, _ in framed] == [chunk.hash]
    assert got == data
    # A read ticket writes nothing, and a node's other routes still need the token.
    node = NodeClient(cluster.http, view.chunks[0].nodes[0], None)
    with pytest.raises(Forbidden, match="allows reads only"):
        await node.upload_chunk(uid, ChunkHash("0" * 64), b"", ticket=view.ticket)
    with pytest.raises(Unauthorized):
        await node.put_chunk(ChunkHash("0" * 64), b"", ticket=view.ticket)
    with pytest.raises(Unauthorized):
        await node.delete_chunks([view.chunks[0].hash])
    with pytest.raises(Unauthorized):
        await node.inventory()
    with pytest.raises(RoleRefused):
        await agent.delete("k.txt")
    assert [f.name for f in await agent.list_files()] == ["k.txt"]


async def test_the_cli_renews_a_read_ticket_that_expired_during_a_restore(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(3, factor=2)
    data = b"a restore that outlasts its ticket " * 100
    await cluster.send("long.bin", data)
    key = (await cluster.api.create_key("restorer", Role.READ)).key
    # The app-level cluster serves plain HTTP on loopback.
    ctx = ClientConfig(manager_url=cluster.api.base_url, token=key, insecure=True)
    clients = Clients(cluster.http, ctx)
    view = await clients.manifest("long.bin")
    url = view.chunks[0].nodes[0]
    # What an hour later looks like: the ticket the manifest came with has expired.
    expired = Ticket(
        UploadId(""), tuple(NodeId(n) for n in cluster.nodes), time.time() - 1, scope=Scope.READ
    ).sign(ticket_key(TOKEN))
    clients._read_tickets[url] = expired
    got = await clients.get_chunk(url, view.chunks[0].hash)
    assert got == data[: view.chunks[0].length]
    assert clients.read_ticket(url) not in (None, expired)
