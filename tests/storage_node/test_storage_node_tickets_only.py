"""A client holds no cluster token: a node serves it a chunk under a manager-signed read
ticket naming this node, and takes its upload's chunks under the write ticket, and nothing
else. Every ticket that is forged, expired, for another node or of the other scope is refused."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from cofre.models import NodeId, UploadId
from cofre.tickets import Scope, Ticket, ticket_key

from .conftest import TOKEN, Kit

Start = Callable[..., Awaitable[tuple[TestServer, web.Application]]]


def _read(*nodes: str, expires: float | None = None, token: str = TOKEN) -> str:
    at = time.time() + 600 if expires is None else expires
    ticket = Ticket(UploadId(""), tuple(NodeId(n) for n in nodes), at, scope=Scope.READ)
    return ticket.sign(ticket_key(token))


async def test_reads_need_a_read_ticket_for_this_node_when_no_token_is_sent(
    start_node: Start, kit: Kit, aiohttp_client: Any
) -> None:
    server, _ = await start_node("node-0")
    client = await aiohttp_client(server)
    chunk_hash, data = kit.chunk("read me")
    put = await client.put(
        f"/v1/chunks/{chunk_hash}", data=data, headers=kit.write_headers("node-0")
    )
    assert put.status == 201

    async def read(ticket: str | None) -> tuple[int, bytes, str]:
        headers = {} if ticket is None else {"X-Cofre-Ticket": ticket}
        resp = await client.get(f"/v1/chunks/{chunk_hash}", headers=headers)
        body = await resp.read()
        code = (await resp.json())["code"] if resp.status >= 400 else ""
        return resp.status, body, code

    status, body, _ = await read(_read("node-0", "node-1"))
    assert (status, body) == (200, data)
    framed = await client.post(
        "/v1/chunks/read",
        json={"hashes": [chunk_hash]},
        headers={"X-Cofre-Ticket": _read("node-0")},
    )
    assert framed.status == 200 and data in await framed.read()

    assert (await read(None))[0] == 401
    for refused in (
        _read("node-1"),  # another node's
        _read("node-0", expires=time.time() - 1),
        _read("node-0", token="another-cluster"),  # forged: not our key
        kit.ticket("node-0"),  # a write ticket
        "not.a-ticket",
    ):
        status, _, code = await read(refused)
        assert (status, code) == (403, "forbidden"), refused

    # A read ticket opens nothing else without the token.
    ticket = {"X-Cofre-Ticket": _read("node-0")}
    for method, path, body in (
        ("PUT", f"/v1/chunks/{chunk_hash}", data),
        ("POST", "/v1/chunks/delete", f'{{"hashes": ["{chunk_hash}"]}}'.encode()),
        ("GET", "/v1/chunks", None),
        ("POST", "/v1/chunks/check", f'{{"hashes": ["{chunk_hash}"]}}'.encode()),
        ("GET", "/v1/stats", None),
        ("GET", "/metrics", None),
    ):
        resp = await client.request(method, path, data=body, headers=ticket)
        assert resp.status == 401, (method, path, resp.status)
    assert (await read(_read("node-0")))[1] == data  # still there
