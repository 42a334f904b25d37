"""Framed batches on real nodes: the batched relay, the batched replica write, batched reads."""

from __future__ import annotations

import json
import socket
import time

import aiohttp
import pytest

from cofre.errors import IntegrityError
from cofre.protocol.framing import CONTENT_TYPE, decode_frames, encode_frames
from cofre.storage_node import keys
from cofre.storage_node.store import TEMP_PREFIX, ChunkStore

PRIMARY, R1, R2 = "node-p", "node-r1", "node-r2"
FRAMED = {"Content-Type": CONTENT_TYPE}


async def call(method, server, path, kit, *, ticket_nodes=(), upload="up-1", headers=None, **kw):
    sent = {**kit.auth, **(headers or {})}
    if ticket_nodes:
        sent["X-Cofre-Ticket"] = kit.ticket(*ticket_nodes, upload_id=upload)
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.make_url(path), headers=sent, **kw) as resp,
    ):
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw and resp.content_type.endswith("json") else raw


async def cluster(start_node, kit, *, replicas=None, keep_copy=False):
    primary, _ = await start_node(PRIMARY)
    if replicas is None:
        r1, _ = await start_node(R1)
        r2, _ = await start_node(R2)
        replicas = [(R1, str(r1.make_url(""))), (R2, str(r2.make_url("")))]
    body = {
        "upload_id": "up-1",
        "replicas": [{"node_id": n, "url": u} for n, u in replicas],
        "replica_ticket": kit.ticket(*(n for n, _ in replicas)),
        "keep_copy": keep_copy,
        "expires": time.time() + 600,
    }
    assert (await call("POST", primary, "/v1/sessions", kit, json=body))[0] == 201
    return primary


async def holds(server, kit, h) -> bool:
    return (await call("GET", server, f"/v1/chunks/{h}", kit))[0] == 200


async def test_batched_relay_lands_every_chunk_on_every_replica(start_node, kit) -> None:
    primary, _ = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    r2, _ = await start_node(R2)
    replicas = [(R1, str(r1.make_url(""))), (R2, str(r2.make_url("")))]
    body = {
        "upload_id": "up-1",
        "replicas": [{"node_id": n, "url": u} for n, u in replicas],
        "replica_ticket": kit.ticket(R1, R2),
        "keep_copy": False,
        "expires": time.time() + 600,
    }
    assert (await call("POST", primary, "/v1/sessions", kit, json=body))[0] == 201
    items = [kit.chunk(f"small {i}", 4096) for i in range(50)]
    # A chunk twice in one batch (two equal files) is stored once.
    framed = encode_frames([*items, items[0]])
    status, answer = await call(
        "PUT",
        primary,
        "/v1/sessions/up-1/chunks",
        kit,
        ticket_nodes=(PRIMARY,),
        headers=FRAMED,
        data=framed,
    )
    assert status == 201 and answer == {"stored": 51}
    for h, _ in items:
        assert await holds(r1, kit, h) and await holds(r2, kit, h)
        assert not await holds(primary, kit, h)
    _, stats = await call("GET", r1, "/v1/stats", kit)
    assert stats["chunk_count"] == 50 and stats["stored_bytes"] == 50 * 4096


async def test_batched_relay_with_keep_copy_stores_on_the_primary(start_node, kit) -> None:
    primary = await cluster(start_node, kit, keep_copy=True)
    items = [kit.chunk(f"kept {i}", 700) for i in range(5)]
    status, _ = await call(
        "PUT",
        primary,
        "/v1/sessions/up-1/chunks",
        kit,
        ticket_nodes=(PRIMARY,),
        headers=FRAMED,
        data=encode_frames(items),
    )
    assert status == 201
    assert all([await holds(primary, kit, h) for h, _ in items])


async def test_batched_relay_refuses_a_batch_with_one_bad_chunk(start_node, kit) -> None:
    r1, _ = await start_node(R1)
    primary = await cluster(start_node, kit, replicas=[(R1, str(r1.make_url("")))])
    good = kit.chunk("good", 500)
    bad_hash, _ = kit.chunk("claimed", 500)
    framed = encode_frames([good, (bad_hash, b"x" * 500)])
    status, body = await call(
        "PUT",
        primary,
        "/v1/sessions/up-1/chunks",
        kit,
        ticket_nodes=(PRIMARY,),
        headers=FRAMED,
        data=framed,
    )
    assert status == 422 and body["code"] == "integrity"
    assert not await holds(r1, kit, good[0])


async def test_batched_relay_with_a_replica_down_fails_without_naming_it(start_node, kit) -> None:
    r1, _ = await start_node(R1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = ("node-dead", f"http://127.0.0.1:{dead_port}")
    primary = await cluster(start_node, kit, replicas=[(R1, str(r1.make_url(""))), dead])
    items = [kit.chunk(f"doomed {i}", 300) for i in range(3)]
    status, body = await call(
        "PUT",
        primary,
        "/v1/sessions/up-1/chunks",
        kit,
        ticket_nodes=(PRIMARY,),
        headers=FRAMED,
        data=encode_frames(items),
    )
    assert status == 502 and body["code"] == "replica_failed"
    assert "node-dead" not in json.dumps(body) and str(dead_port) not in json.dumps(body)


async def test_batched_relay_checks_ticket_and_framing(start_node, kit) -> None:
    primary = await cluster(start_node, kit)
    items = [kit.chunk("t", 10)]
    status, _ = await call(
        "PUT", primary, "/v1/sessions/up-1/chunks", kit, headers=FRAMED, data=encode_frames(items)
    )
    assert status == 403
    for broken in (b"no header line", b'{"chunks": [["zz", 1]]}\nx', encode_frames(items) + b"!"):
        status, body = await call(
            "PUT",
            primary,
            "/v1/sessions/up-1/chunks",
            kit,
            ticket_nodes=(PRIMARY,),
            headers=FRAMED,
            data=broken,
        )
        assert status == 400, body


async def test_batched_put_stores_and_reports_what_was_new(start_node, kit) -> None:
    node, _ = await start_node(R1)
    first = [kit.chunk(f"a{i}", 100) for i in range(3)]
    status, body = await call(
        "PUT",
        node,
        "/v1/chunks",
        kit,
        ticket_nodes=(R1,),
        headers=FRAMED,
        data=encode_frames(first),
    )
    assert status == 201 and body == {"stored": 3, "created": [h for h, _ in first]}
    second = [first[0], kit.chunk("b", 100)]
    status, body = await call(
        "PUT",
        node,
        "/v1/chunks",
        kit,
        ticket_nodes=(R1,),
        headers=FRAMED,
        data=encode_frames(second),
    )
    assert status == 201 and body["created"] == [second[1][0]]
    status, _ = await call(
        "PUT",
        node,
        "/v1/chunks",
        kit,
        ticket_nodes=(R2,),
        headers=FRAMED,
        data=encode_frames(second),
    )
    assert status == 403


async def test_batched_read_answers_the_held_chunks_verified(start_node, kit) -> None:
    node, app = await start_node(R1)
    items = [kit.chunk(f"r{i}", 2000) for i in range(4)]
    await call(
        "PUT",
        node,
        "/v1/chunks",
        kit,
        ticket_nodes=(R1,),
        headers=FRAMED,
        data=encode_frames(items),
    )
    absent, _ = kit.chunk("absent")
    # Rot one chunk on disk: it is left out (and quarantined), not sent.
    kit.flip_byte(app[keys.STORE].root, items[1][0])
    wanted = [items[0][0], absent, items[1][0], items[2][0], items[3][0]]
    status, raw = await call("POST", node, "/v1/chunks/read", kit, json={"hashes": wanted})
    assert status == 200
    got = [(h, bytes(d)) for h, d in decode_frames(raw)]
    assert got == [items[0], items[2], items[3]]
    status, problem = await call("POST", node, "/v1/chunks/read", kit, json={"hashes": ["nope"]})
    assert status == 400 and problem["detail"].startswith("body.hashes.0: "), problem


async def test_store_put_many_is_durable_and_all_or_nothing(tmp_path, kit) -> None:
    store = ChunkStore(tmp_path)
    await store.open()
    items = [kit.chunk(f"m{i}", 1000) for i in range(10)]
    assert await store.put_many([*items, items[3]]) == [True] * 10 + [False]
    assert store.chunk_count == 10 and store.stored_bytes == 10_000
    leftovers = [p for p in (tmp_path / "chunks").rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    for h, data in items:
        assert await store.get(h) == data
    assert await store.put_many(items[:2]) == [False, False]
    fresh = kit.chunk("fresh", 10)
    with pytest.raises(IntegrityError):
        await store.put_many([fresh, (kit.chunk("other", 10)[0], b"0123456789")])
    assert not await store.has(fresh[0])
    assert not [p for p in (tmp_path / "chunks").rglob("*") if p.name.startswith(TEMP_PREFIX)]
