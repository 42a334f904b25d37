"""What an adversary's bytes do to both services on a real socket: over-long request lines and
headers, JSON nested 100,000 deep, a client hanging up mid-body. Each gets a 4xx (or, for the
hang-up, nothing: the peer is gone) and at most an INFO line in the log, never an ERROR or a
traceback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from cofre.manager import create_app as create_manager_app
from cofre.protocol.server import error_middleware
from cofre.storage_node import create_app as create_node_app

from ..helpers import eventually
from .conftest import TOKEN, manager_config, node_config, serving, ticket, troubling

SERVICES = ["manager", "node"]
# A JSON route of each service that parses its body.
JSON_ROUTE = {"manager": "/v1/uploads", "node": "/v1/chunks/check"}
DEEP = 100_000


@asynccontextmanager
async def service(kind: str, root: Path) -> AsyncIterator[str]:
    if kind == "node":
        app = create_node_app(node_config(root, "node-0"))
    else:
        app = create_manager_app(manager_config(root, {}))
    async with serving(app) as url:
        yield url


async def exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    u = URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: cofre",
        f"Authorization: Bearer {TOKEN}",
        "Connection: close",
        *headers,
    ]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("kind", SERVICES)
async def test_overlong_request_line_is_a_400_and_one_info_line(
    kind: str, tmp_path: Path, quiet: pytest.LogCaptureFixture
) -> None:
    async with service(kind, tmp_path) as url:
        answer = await exchange(url, request("GET", "/v1/" + "a" * 100_000))
    assert status_of(answer) == 400
    assert troubling(quiet.records) == []
    refused = [r for r in quiet.records if "malformed request refused" in r.getMessage()]
    assert len(refused) == 1, refused
    assert refused[0].levelno == logging.INFO
    assert len(refused[0].getMessage()) < 300


@pytest.mark.parametrize("kind", SERVICES)
async def test_overlong_header_is_a_400_and_one_info_line(
    kind: str, tmp_path: Path, quiet: pytest.LogCaptureFixture
) -> None:
    async with service(kind, tmp_path) as url:
        answer = await exchange(url, request("GET", "/v1/stats", "X-Big: " + "b" * 100_000))
    assert status_of(answer) == 400
    assert troubling(quiet.records) == []
    assert any("malformed request refused" in r.getMessage() for r in quiet.records)


@pytest.mark.parametrize("kind", SERVICES)
async def test_bytes_that_are_not_http_are_a_400_and_no_error(
    kind: str, tmp_path: Path, quiet: pytest.LogCaptureFixture
) -> None:
    """A TLS hello on the plain port first, then a bad method on a connection that already
    made a good request (aiohttp logs the first at DEBUG, the second as an ERROR)."""
    async with service(kind, tmp_path) as url:
        answer = await exchange(url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64))
        assert status_of(answer) == 400
        u = URL(url)
        reader, writer = await asyncio.open_connection(u.host, u.port)
        try:
            writer.write(request("GET", "/healthz").replace(b"close", b"keep-alive"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            assert status_of(head) == 200
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            writer.write(b"G\x00T / HTTP/1.1\r\nHost: cofre\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10.0)
        finally:
            writer.close()
    assert status_of(answer) == 400
    assert troubling(quiet.records) == []
    refused = [r.levelno for r in quiet.records if "malformed request" in r.getMessage()]
    assert refused == [logging.DEBUG, logging.INFO]


@pytest.mark.parametrize("kind", SERVICES)
async def test_json_nested_100000_deep_is_a_400_problem(
    kind: str, tmp_path: Path, quiet: pytest.LogCaptureFixture
) -> None:
    for body in (b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP):
        async with service(kind, tmp_path) as url:
            answer = await exchange(
                url,
                request("POST", JSON_ROUTE[kind], "Content-Type: application/json", body=body),
            )
        assert status_of(answer) == 400, answer[:300]
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert b"application/problem+json" in head
        assert json.loads(payload)["code"] == "bad_request"
    assert troubling(quiet.records) == []


_CHUNK = hashlib.sha256(b"x" * 100_000).hexdigest()
HANG_UP_CASES = [
    pytest.param("node", "PUT", f"/v1/chunks/{_CHUNK}", id="node-put-chunk"),
    pytest.param("node", "PUT", "/v1/chunks", id="node-put-batch"),
    pytest.param("node", "POST", "/v1/chunks/check", id="node-check"),
    pytest.param("manager", "POST", "/v1/uploads", id="manager-create-upload"),
    pytest.param("manager", "POST", "/v1/files/manifests", id="manager-manifests"),
]


@pytest.mark.parametrize(("kind", "method", "path"), HANG_UP_CASES)
async def test_client_hanging_up_mid_body_is_one_info_line(
    kind: str, method: str, path: str, tmp_path: Path, quiet: pytest.LogCaptureFixture
) -> None:
    head = request(
        method,
        path,
        f"X-Cofre-Ticket: {ticket('node-0')}",
        "Expect: 100-continue",
        "Content-Length: 100000",
    )
    async with service(kind, tmp_path) as url:
        u = URL(url)
        reader, writer = await asyncio.open_connection(u.host, u.port)
        writer.write(head)
        await writer.drain()
        # 100 Continue: the handler runs and is about to read the body.
        assert await asyncio.wait_for(reader.readline(), 10.0) == b"HTTP/1.1 100 Continue\r\n"
        writer.write(b"x" * 50_000)
        await writer.drain()
        writer.close()
        await eventually(
            lambda: [r for r in quiet.records if "client hung up" in r.getMessage()],
            what="the service to log the hang-up",
        )
    gone = [r for r in quiet.records if "client hung up" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO]
    assert path in gone[0].getMessage()
    assert troubling(quiet.records) == []


async def test_a_connection_error_of_the_server_itself_stays_an_error(
    quiet: pytest.LogCaptureFixture,
) -> None:
    """A ConnectionError while the client is still there (a node the handler called reset its
    connection, say) is the server's failure: a 500 and an ERROR with its traceback."""

    async def handler(_: web.Request) -> web.Response:
        raise ConnectionResetError("peer node reset the connection")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom", handler)
    async with serving(app) as url:
        answer = await exchange(url, request("GET", "/boom"))
    assert status_of(answer) == 500
    errors = [r for r in quiet.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
