"""A manager over real storage node apps on loopback, and a client that backs files up."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cofre.chunks import iter_chunks
from cofre.config import (
    DiscoveryConfig,
    GCConfig,
    ManagerConfig,
    NodeConfig,
    PackConfig,
    PlacementConfig,
    ProbeConfig,
    RepairConfig,
    UploadConfig,
)
from cofre.manager import create_app as create_manager_app
from cofre.manager.app import LOOPS, ManagerLoops
from cofre.models import ChunkHash, ChunkRef, Manifest, UploadId
from cofre.protocol.client import ManagerClient, NodeClient
from cofre.protocol.manager_api import Committed, NodeList, UploadCreated
from cofre.storage_node import create_app as create_node_app
from cofre.storage_node import keys
from cofre.storage_node.store import stored_chunks

from ..helpers import eventually

TOKEN = "manager-test-token"
CHUNK_SIZE = 1024


class Cluster:
    def __init__(
        self,
        *,
        nodes: dict[str, TestServer],
        manager: TestClient[Any, Any],
        config: ManagerConfig,
        root: Path,
    ) -> None:
        self.root = root
        self.nodes = nodes
        self.manager = manager
        self.config = config
        self.http: aiohttp.ClientSession = manager.session
        self.api = ManagerClient(self.http, str(manager.make_url("")), TOKEN)

    def url(self, node_id: str) -> str:
        return str(self.nodes[node_id].make_url("")).rstrip("/")

    def node_id_of(self, url: str) -> str:
        return next(n for n in self.nodes if self.url(n) == url.rstrip("/"))

    def chunk_file(self, node_id: str, chunk_hash: str) -> Path:
        """The file of a chunk on a node that keeps chunks as files (``files_only`` nodes)."""
        found = list((self.root / node_id).rglob(chunk_hash))
        assert len(found) == 1, found
        return found[0]

    def holds(self, node_id: str, chunk_hash: str) -> bool:
        return ChunkHash(chunk_hash) in stored_chunks(self.root / node_id)

    def rot(self, node_id: str, chunk_hash: str, *, at: int = 0) -> None:
        """One byte of a node's stored copy flipped in place (packed or a file)."""
        where = stored_chunks(self.root / node_id)[ChunkHash(chunk_hash)]
        with open(where.path, "r+b") as fh:
            fh.seek(where.offset + at)
            byte = fh.read(1)
            fh.seek(where.offset + at)
            fh.write(bytes([byte[0] ^ 0x40]))

    async def lose(self, node_id: str, chunk_hash: str) -> None:
        """A node's copy gone, as its store removes it (packed or a file)."""
        assert await self.nodes[node_id].app[keys.STORE].delete(ChunkHash(chunk_hash)) > 0

    def age(self, node_id: str, chunk_hash: str, at: float) -> None:
        """A copy's last use set back to ``at`` (what GC's grace compares)."""
        store = self.nodes[node_id].app[keys.STORE]
        if not store.packs.touch([ChunkHash(chunk_hash)], at=at):
            os.utime(store.path_of(ChunkHash(chunk_hash)), (at, at))

    def node(self, node_id: str) -> NodeClient:
        return NodeClient(self.http, self.url(node_id), TOKEN)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """A raw request to the manager with the token (for what the typed client cannot send
        or does not show); -> (status, the JSON answer)."""
        resp = await self.manager.request(
            method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kw
        )
        return resp.status, await resp.json(content_type=None)

    async def refused(self, method: str, path: str, **kw: Any) -> str:
        """The detail of the 400 problem the manager answers this raw request with."""
        status, problem = await self.call(method, path, **kw)
        assert status == 400 and problem["code"] == "bad_request", (status, problem)
        assert problem["errors"] and problem["detail"].startswith(problem["errors"][0]["loc"])
        return str(problem["detail"])

    @property
    def loops(self) -> ManagerLoops:
        return self.manager.server.app[LOOPS]

    async def probe(self, *, passes: int = 1) -> None:
        """Probe passes of every node, now: background probes here run only at start and
        when discovery changes, so a test that needs fresh node state asks for it."""
        for _ in range(passes):
            await self.loops.probe.run_once()

    async def probe_out_dead_nodes(self) -> None:
        """As many probe passes as it takes a node that stopped answering to become unready."""
        await self.probe(passes=self.config.probe.failures_before_unready)

    async def wait_ready(self, count: int | None = None, timeout_s: float = 15.0) -> None:
        want = len(self.nodes) if count is None else count

        async def probed() -> NodeList:
            await self.probe()
            return await self.api.nodes()

        await eventually(
            probed,
            until=lambda listed: sum(1 for n in listed.nodes if n.ready) >= want,
            what=f"{want} ready nodes",
            timeout_s=timeout_s,
        )

    async def send(
        self, name: str, data: bytes, *, skip: int = 0, commit: bool = True
    ) -> tuple[UploadCreated, Manifest, Committed | None]:
        """The CLI's backup flow (chunks stored already anywhere are not sent, as the CLI
        asks ``known``); ``skip`` leaves out that many of the data chunks to send."""
        up = await self.api.create_upload(name=name, size=len(data), mode=0o640, mtime=1.5)
        uid = UploadId(up.upload_id)
        primary = NodeClient(self.http, up.primary_url, TOKEN)
        refs: list[ChunkRef] = []
        blobs: dict[ChunkHash, bytes] = {}
        for ref, blob in iter_chunks(io.BytesIO(data), up.chunk_size):
            refs.append(ref)
            blobs[ref.hash] = blob
        manifest = Manifest(
            name=name,
            size=len(data),
            mode=0o640,
            mtime=1.5,
            created=time.time(),
            chunks=tuple(refs),
        )
        known = await self.api.known(uid, list(blobs))
        lacking = await primary.missing(uid, list(blobs), ticket=up.ticket)
        missing = [h for h in lacking if h not in known]
        for h in missing[skip:]:
            await primary.upload_chunk(uid, h, blobs[h], ticket=up.ticket)
        await primary.upload_chunk(uid, manifest.hash, manifest.encode(), ticket=up.ticket)
        result = await self.api.commit_upload(uid, manifest) if commit else None
        return up, manifest, result


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture
def make_cluster(tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> ClusterFactory:
    async def make(
        nodes: int = 3,
        *,
        factor: int = 2,
        keep_copy: bool = False,
        ready: bool = True,
        data_dir: Path | None = None,
        node_servers: dict[str, TestServer] | None = None,
        latency_weight: float = 0.5,
        repair_interval_s: float = 3600.0,
        min_free_bytes: int = 0,
        repair: dict[str, Any] | None = None,
        files_only: bool = False,
    ) -> Cluster:
        servers = dict(node_servers or {})
        # files_only: every chunk a file, as stores written before packs (and chunks above the
        # pack limit) are.
        pack = PackConfig(max_chunk_bytes=0) if files_only else PackConfig()
        for i in range(len(servers), nodes):
            node_id = f"node-{i}"
            node_config = NodeConfig(
                token=TOKEN,
                node_id=node_id,
                data_dir=tmp_path / node_id,
                reserve_bytes=0,
                pack=pack,
            )
            servers[node_id] = await aiohttp_server(create_node_app(node_config), host="127.0.0.1")
        config = ManagerConfig(
            token=TOKEN,
            data_dir=data_dir or tmp_path / "manager",
            placement=PlacementConfig(
                replication_factor=factor,
                primary_keeps_copy=keep_copy,
                min_free_bytes=min_free_bytes,
                latency_weight=latency_weight,
                stored_bytes_weight=1.0 - latency_weight,
            ),
            probe=ProbeConfig(interval_s=3600.0, timeout_s=5.0),
            discovery=DiscoveryConfig(
                static_nodes=tuple(
                    f"{n}={str(s.make_url('')).rstrip('/')}" for n, s in servers.items()
                )
            ),
            upload=UploadConfig(chunk_size=CHUNK_SIZE),
            gc=GCConfig(interval_s=3600.0),
            repair=RepairConfig(interval_s=repair_interval_s, **(repair or {})),
        )
        client = await aiohttp_client(
            create_manager_app(config), server_kwargs={"host": "127.0.0.1"}
        )
        cluster = Cluster(nodes=servers, manager=client, config=config, root=tmp_path)
        if ready:
            await cluster.wait_ready()
        return cluster

    return make
