"""Both services served as in production (AppRunner on 127.0.0.1, no handler cancellation, as
web.run_app serves them) for the transport, fuzz and contract tests of their HTTP APIs."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from cofre.chunks import iter_chunks
from cofre.config import (
    DiscoveryConfig,
    GCConfig,
    ManagerConfig,
    NodeConfig,
    PlacementConfig,
    ProbeConfig,
    RepairConfig,
    UploadConfig,
)
from cofre.manager import create_app as create_manager_app
from cofre.models import ChunkRef, Manifest, NodeId, UploadId
from cofre.storage_node import create_app as create_node_app
from cofre.tickets import Ticket, ticket_key

from ..helpers import eventually

TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNK_SIZE = 1024
T = TypeVar("T")


def node_config(root: Path, node_id: str) -> NodeConfig:
    return NodeConfig(token=TOKEN, node_id=node_id, data_dir=root / node_id, reserve_bytes=0)


def manager_config(root: Path, nodes: dict[str, str]) -> ManagerConfig:
    return ManagerConfig(
        token=TOKEN,
        data_dir=root / "manager",
        placement=PlacementConfig(replication_factor=2, min_free_bytes=0),
        probe=ProbeConfig(interval_s=0.05, timeout_s=5.0),
        discovery=DiscoveryConfig(static_nodes=tuple(f"{n}={u}" for n, u in nodes.items())),
        upload=UploadConfig(chunk_size=CHUNK_SIZE),
        gc=GCConfig(interval_s=3600.0),
        repair=RepairConfig(interval_s=3600.0),
    )


def ticket(*nodes: str, upload_id: str = "up-1") -> str:
    return Ticket(
        upload_id=UploadId(upload_id),
        nodes=tuple(NodeId(n) for n in nodes),
        expires=time.time() + 600,
    ).sign(ticket_key(TOKEN))


def chunked(data: bytes) -> tuple[list[ChunkRef], dict[str, bytes]]:
    refs: list[ChunkRef] = []
    blobs: dict[str, bytes] = {}
    for ref, blob in iter_chunks(io.BytesIO(data), CHUNK_SIZE):
        refs.append(ref)
        blobs[ref.hash] = blob
    return refs, blobs


def manifest_of(name: str, data: bytes, refs: list[ChunkRef]) -> Manifest:
    return Manifest(
        name=name, size=len(data), mode=0o640, mtime=1.5, created=time.time(), chunks=tuple(refs)
    )


async def send_chunks(
    http: aiohttp.ClientSession, up: dict[str, Any], blobs: dict[str, bytes]
) -> None:
    """The client's part of an upload: every chunk to the primary node, through its relay."""
    uid, headers = up["upload_id"], {**AUTH, "X-Cofre-Ticket": up["ticket"]}
    for h, blob in blobs.items():
        url = f"{up['primary_url']}/v1/sessions/{uid}/chunks/{h}"
        async with http.put(url, data=blob, headers=headers) as resp:
            assert resp.status == 201, await resp.text()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) as web.run_app does; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Services:
    """A manager over storage nodes, every one served on loopback."""

    manager: str
    nodes: dict[str, str] = field(default_factory=dict)


async def wait_ready(manager: str, count: int) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def ready() -> int:
            async with http.get(manager + "/v1/nodes") as resp:
                listed = await resp.json()
            return sum(1 for n in listed["nodes"] if n["ready"])

        await eventually(ready, what=f"{count} ready nodes", until=lambda n: n >= count)


@asynccontextmanager
async def cluster(root: Path, *, nodes: int = 3) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        urls = {}
        for i in range(nodes):
            node_id = f"node-{i}"
            app = create_node_app(node_config(root, node_id))
            urls[node_id] = await stack.enter_async_context(serving(app))
        app = create_manager_app(manager_config(root, urls))
        manager = await stack.enter_async_context(serving(app))
        await wait_ready(manager, nodes)
        yield Services(manager=manager, nodes=urls)


class LoopThread:
    """An event loop in a thread of its own: the services run there so that a blocking client
    (schemathesis calls through requests) can talk to them from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="services", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)
        self.loop.close()


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


class Troubles(logging.Handler):
    """Collects, from every thread, records a healthy service never writes: ERROR and above,
    and any record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info is not None:
            self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.records]
        self.records.clear()
        return found


@pytest.fixture(scope="module")
def troubles() -> Iterator[Troubles]:
    handler = Troubles()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def troubling(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]
