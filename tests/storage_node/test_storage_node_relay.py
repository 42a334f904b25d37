"""The relay with three real nodes on loopback: a primary and two replicas."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp

from cofre.config import PackConfig
from cofre.models import UploadId
from cofre.storage_node import keys, relay

PRIMARY, R1, R2 = "node-p", "node-r1", "node-r2"


async def register(primary, kit, replicas, *, keep_copy=False, expires=None, upload="up-1"):
    body = {
        "upload_id": upload,
        "replicas": [{"node_id": n, "url": u} for n, u in replicas],
        "replica_ticket": kit.ticket(*(n for n, _ in replicas), upload_id=upload),
        "keep_copy": keep_copy,
        "expires": time.time() + 600 if expires is None else expires,
    }
    return await call("POST", primary, "/v1/sessions", kit, ticket_nodes=(), json=body)


async def cluster(start_node, kit, **kw):
    """Start a primary and two replicas, and register upload 'up-1' at the primary."""
    primary, _ = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    r2, _ = await start_node(R2)
    replicas = [(R1, str(r1.make_url(""))), (R2, str(r2.make_url("")))]
    status, _ = await register(primary, kit, replicas, **kw)
    assert status == 201
    return primary, r1, r2


async def call(method, server, path, kit, *, ticket_nodes=(PRIMARY,), upload="up-1", **kw):
    headers = {**kit.auth}
    if ticket_nodes:
        headers["X-Cofre-Ticket"] = kit.ticket(*ticket_nodes, upload_id=upload)
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.make_url(path), headers=headers, **kw) as resp,
    ):
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw and resp.content_type.endswith("json") else raw


async def missing(primary, kit, hashes, **kw):
    return await call(
        "POST", primary, "/v1/sessions/up-1/missing", kit, json={"hashes": hashes}, **kw
    )


async def send(primary, kit, h, data, **kw):
    return await call("PUT", primary, f"/v1/sessions/up-1/chunks/{h}", kit, data=data, **kw)


async def holds(server, kit, h) -> bool:
    status, _ = await call("GET", server, f"/v1/chunks/{h}", kit, ticket_nodes=())
    return status == 200


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_relayed_chunk_lands_on_every_replica_and_not_on_the_primary(
    start_node, kit, tmp_path
) -> None:
    primary, r1, r2 = await cluster(start_node, kit)
    h, data = kit.chunk("relay me", 100_000)
    assert await missing(primary, kit, [h]) == (200, {"missing": [h]})
    status, _ = await send(primary, kit, h, data)
    assert status == 201
    assert await holds(r1, kit, h) and await holds(r2, kit, h)
    assert not await holds(primary, kit, h)
    _, stats = await call("GET", primary, "/v1/stats", kit, ticket_nodes=())
    assert stats["chunk_count"] == 0 and stats["stored_bytes"] == 0
    assert kit.files_under(tmp_path / PRIMARY / "chunks") == []
    assert await missing(primary, kit, [h]) == (200, {"missing": []})


async def test_keep_copy_stores_on_the_primary_too(start_node, kit) -> None:
    primary, r1, r2 = await cluster(start_node, kit, keep_copy=True)
    h, data = kit.chunk("keep me")
    status, _ = await send(primary, kit, h, data)
    assert status == 201
    assert await holds(primary, kit, h)
    assert await holds(r1, kit, h) and await holds(r2, kit, h)


async def test_missing_lists_only_what_some_copy_lacks(start_node, kit) -> None:
    primary, r1, r2 = await cluster(start_node, kit)
    on_both, d_both = kit.chunk("both")
    on_r1, d_r1 = kit.chunk("only r1")
    nowhere, _ = kit.chunk("nowhere")
    for server, node, h, d in ((r1, R1, on_both, d_both), (r2, R2, on_both, d_both)):
        status, _ = await call("PUT", server, f"/v1/chunks/{h}", kit, ticket_nodes=(node,), data=d)
        assert status == 201
    status, _ = await call("PUT", r1, f"/v1/chunks/{on_r1}", kit, ticket_nodes=(R1,), data=d_r1)
    assert status == 201
    status, body = await missing(primary, kit, [on_both, on_r1, nowhere])
    assert status == 200 and body == {"missing": [on_r1, nowhere]}


async def test_a_short_copy_on_a_replica_counts_as_lacking_when_lengths_are_given(
    start_node, kit, tmp_path
) -> None:
    """A re-put placed where a copy was cut short (not empty): with the lengths the client
    knows, the primary reports it lacking, so it is sent again."""
    primary, _, _ = await cluster(start_node, kit)
    # Above the pack limit, so a file: only a file can be cut short (a packed record's length
    # is in its header).
    h, data = kit.chunk("cut short", PackConfig().max_chunk_bytes + 10_000)
    assert (await send(primary, kit, h, data))[0] == 201
    (copy,) = [p for p in kit.files_under(tmp_path / R1) if p.name == h]
    copy.write_bytes(data[:4000])
    body = {"hashes": [h], "lengths": [len(data)]}
    status, answer = await call("POST", primary, "/v1/sessions/up-1/missing", kit, json=body)
    assert status == 200 and answer == {"missing": [h]}
    assert (await send(primary, kit, h, data))[0] == 201
    status, answer = await call("POST", primary, "/v1/sessions/up-1/missing", kit, json=body)
    assert status == 200 and answer == {"missing": []}
    bad = {"hashes": [h], "lengths": [1, 2]}
    status, problem = await call("POST", primary, "/v1/sessions/up-1/missing", kit, json=bad)
    assert status == 400 and problem["detail"].startswith("body")


async def test_replica_down_is_502_without_revealing_the_replica(start_node, kit, caplog) -> None:
    primary, _ = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    dead_port = closed_port()
    dead_url = f"http://127.0.0.1:{dead_port}"
    replicas = [(R1, str(r1.make_url(""))), ("node-dead", dead_url)]
    assert (await register(primary, kit, replicas))[0] == 201
    h, data = kit.chunk("doomed")
    status, body = await send(primary, kit, h, data)
    assert status == 502
    assert body["code"] == "replica_failed"
    text = json.dumps(body)
    for secret in (str(dead_port), "node-dead", R1, str(r1.port), "127.0.0.1"):
        assert secret not in text
    # The operator, unlike the client, learns which replica failed.
    assert any("node-dead" in r.getMessage() and dead_url in r.getMessage() for r in caplog.records)
    status, body = await missing(primary, kit, [h])
    assert status == 502
    assert "node-dead" not in json.dumps(body) and str(dead_port) not in json.dumps(body)


async def test_replica_refusing_the_ticket_fails_the_relay(start_node, kit) -> None:
    primary, _ = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    # The replica ticket names another node than the replica: it must refuse the write.
    replicas = [("node-elsewhere", str(r1.make_url("")))]
    assert (await register(primary, kit, replicas))[0] == 201
    h, data = kit.chunk("refused")
    status, body = await send(primary, kit, h, data)
    assert status == 502 and "node-elsewhere" not in json.dumps(body)
    assert not await holds(r1, kit, h)


async def test_session_endpoints_check_ticket_session_and_bytes(start_node, kit) -> None:
    primary, r1, _ = await cluster(start_node, kit)
    h, data = kit.chunk("checked")
    # A ticket for the replica, or for another upload, does not open the primary's session.
    assert (await send(primary, kit, h, data, ticket_nodes=(R1,)))[0] == 403
    assert (await send(primary, kit, h, data, upload="up-2"))[0] == 403
    assert (await send(primary, kit, h, data, ticket_nodes=()))[0] == 403
    assert (await missing(primary, kit, [h], ticket_nodes=()))[0] == 403
    # Bytes that do not match the hash are stored on no node, and the client learns why.
    status, body = await send(primary, kit, h, b"tampered")
    assert status == 422 and body["code"] == "integrity"
    assert not await holds(r1, kit, h)
    # Unknown session.
    status, _ = await call(
        "PUT", primary, f"/v1/sessions/up-9/chunks/{h}", kit, upload="up-9", data=data
    )
    assert status == 404
    # Closed session.
    assert (await call("DELETE", primary, "/v1/sessions/up-1", kit, ticket_nodes=()))[0] == 204
    assert (await send(primary, kit, h, data))[0] == 404


async def test_expired_session_is_gone(start_node, kit) -> None:
    primary, app = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    replicas = [(R1, str(r1.make_url("")))]
    assert (await register(primary, kit, replicas, expires=time.time() - 1))[0] == 201
    h, data = kit.chunk("late")
    assert (await send(primary, kit, h, data))[0] == 404
    # The sweeper drops its entry; an open session stays.
    assert (await register(primary, kit, replicas, upload="up-2"))[0] == 201
    assert len(app[keys.SESSIONS]) == 2
    await app[relay.SWEEPER].run_once()
    assert len(app[keys.SESSIONS]) == 1
    assert app[keys.SESSIONS].get(UploadId("up-2")).upload_id == "up-2"


async def test_session_registration_is_validated(start_node, kit) -> None:
    primary, _ = await start_node(PRIMARY)
    good = {
        "upload_id": "u",
        "replicas": [{"node_id": "n", "url": "http://127.0.0.1:1"}],
        "replica_ticket": kit.ticket("n", upload_id="u"),
        "keep_copy": False,
        "expires": time.time() + 600,
    }
    # Each differs from a good body in one field, and the refusal names that field.
    bad_bodies = [
        ({}, "body.upload_id"),
        ({**good, "upload_id": "../x"}, "body.upload_id"),
        ({**good, "replicas": []}, "body"),  # no replica and no copy kept: nowhere to store
        (
            {**good, "replicas": [{"node_id": "n", "url": "file:///etc/passwd"}]},
            "body.replicas.0.url",
        ),
        ({**good, "replica_ticket": "t"}, "body.replica_ticket"),
        ({**good, "expires": "later"}, "body.expires"),
        ({**good, "keep_copy": True, "extra": 1}, "body.extra"),
    ]
    for body, field in bad_bodies:
        status, problem = await call(
            "POST", primary, "/v1/sessions", kit, ticket_nodes=(), json=body
        )
        assert status == 400 and problem["code"] == "bad_request", (body, problem)
        assert problem["detail"].startswith(f"{field}: "), (body, problem)
    status, _ = await call("POST", primary, "/v1/sessions", kit, ticket_nodes=(), json=good)
    assert status == 201


async def test_pull_fetches_from_the_first_source_that_has_it(start_node, kit) -> None:
    source, _ = await start_node("node-a")
    empty, _ = await start_node("node-b")
    target, _ = await start_node("node-c")
    h, data = kit.chunk("pull me", 50_000)
    status, _ = await call(
        "PUT", source, f"/v1/chunks/{h}", kit, ticket_nodes=("node-a",), data=data
    )
    assert status == 201
    sources = [
        f"http://127.0.0.1:{closed_port()}",
        str(empty.make_url("")),
        str(source.make_url("")),
    ]
    status, body = await call(
        "POST",
        target,
        "/v1/chunks/pull",
        kit,
        ticket_nodes=("node-c",),
        json={"hash": h, "sources": sources},
    )
    assert status == 201 and body == {"created": True}
    assert await holds(target, kit, h)
    status, body = await call(
        "POST",
        target,
        "/v1/chunks/pull",
        kit,
        ticket_nodes=("node-c",),
        json={"hash": h, "sources": sources},
    )
    assert status == 200 and body == {"created": False}


async def test_pull_fails_when_no_source_has_it(start_node, kit) -> None:
    empty, _ = await start_node("node-a")
    target, _ = await start_node("node-c")
    h, _ = kit.chunk("nowhere to be found")
    status, body = await call(
        "POST",
        target,
        "/v1/chunks/pull",
        kit,
        ticket_nodes=("node-c",),
        json={"hash": h, "sources": [str(empty.make_url(""))]},
    )
    assert status == 503 and body["code"] == "unavailable"
    assert not await holds(target, kit, h)


async def test_pull_skips_a_source_whose_copy_is_corrupt(start_node, kit, tmp_path) -> None:
    rotten, _ = await start_node("node-a")
    good, _ = await start_node("node-b")
    target, _ = await start_node("node-c")
    h, data = kit.chunk("half rotten", 20_000)
    for server, node in ((rotten, "node-a"), (good, "node-b")):
        status, _ = await call(
            "PUT", server, f"/v1/chunks/{h}", kit, ticket_nodes=(node,), data=data
        )
        assert status == 201
    kit.flip_byte(tmp_path / "node-a", h)
    body = {"hash": h, "sources": [str(rotten.make_url("")), str(good.make_url(""))]}
    status, _ = await call(
        "POST", target, "/v1/chunks/pull", kit, ticket_nodes=("node-c",), json=body
    )
    assert status == 201
    status, raw = await call("GET", target, f"/v1/chunks/{h}", kit, ticket_nodes=())
    assert status == 200 and raw == data


async def corrupting_proxy(target_port: int) -> tuple[asyncio.Server, int]:
    """A TCP proxy on loopback that flips one bit of the first request body it forwards: bytes
    damaged between the primary and a replica."""
    flipped = False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)

        async def upstream() -> None:
            nonlocal flipped
            seen = 0
            head = b""
            while data := await reader.read(65536):
                if not flipped:
                    head += data
                    end = head.find(b"\r\n\r\n")
                    at = end + 4 - seen
                    if end >= 0 and 0 <= at < len(data):
                        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
                        flipped = True
                seen += len(data)
                up_w.write(data)
                await up_w.drain()
            up_w.close()

        async def downstream() -> None:
            while data := await up_r.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_good_bytes_a_replica_refuses_are_a_replica_failure_not_the_clients(
    start_node, kit
) -> None:
    # The primary does not hash what it relays; when a copy refuses the bytes it checks them
    # itself: damaged on the way to a replica is a 502 the client retries, not its 422.
    primary, _ = await start_node(PRIMARY)
    r1, _ = await start_node(R1)
    proxy, port = await corrupting_proxy(r1.port)
    async with proxy:
        status, _ = await register(primary, kit, [(R1, f"http://127.0.0.1:{port}")])
        assert status == 201
        h, data = kit.chunk("damaged on the way", 100_000)
        status, body = await send(primary, kit, h, data)
        assert status == 502 and body["code"] != "integrity"
        assert not await holds(r1, kit, h)
        # The same bytes again (the proxy flips only once): stored.
        status, _ = await send(primary, kit, h, data)
        assert status == 201
        assert await holds(r1, kit, h)


async def test_tampered_bytes_are_stored_on_no_copy_even_the_primarys(start_node, kit) -> None:
    primary, r1, r2 = await cluster(start_node, kit, keep_copy=True)
    h, _ = kit.chunk("claimed", 1000)
    status, body = await send(primary, kit, h, b"y" * 1000)
    assert status == 422 and body["code"] == "integrity"
    for server in (primary, r1, r2):
        assert not await holds(server, kit, h)
