"""Shared helpers for storage node service tests: config, tickets, headers, running nodes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cofre.config import NodeConfig
from cofre.models import ChunkHash, NodeId, UploadId
from cofre.storage_node import create_app
from cofre.storage_node.store import ChunkStore, stored_chunks
from cofre.tickets import Ticket, ticket_key

TOKEN = "test-cluster-token"


class Kit:
    def __init__(self) -> None:
        self.token = TOKEN
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    @staticmethod
    def config(data_dir: Path, node_id: str = "node-0", **kw: Any) -> NodeConfig:
        kw.setdefault("reserve_bytes", 0)
        return NodeConfig(token=TOKEN, node_id=node_id, data_dir=data_dir, **kw)

    @staticmethod
    def ticket(
        *nodes: str, upload_id: str = "up-1", expires: float | None = None, token: str = TOKEN
    ) -> str:
        return Ticket(
            upload_id=UploadId(upload_id),
            nodes=tuple(NodeId(n) for n in nodes),
            expires=time.time() + 600 if expires is None else expires,
        ).sign(ticket_key(token))

    def write_headers(self, *nodes: str, **kw: Any) -> dict[str, str]:
        return {**self.auth, "X-Cofre-Ticket": self.ticket(*nodes, **kw)}

    @staticmethod
    def chunk(seed: str, size: int = 1000) -> tuple[ChunkHash, bytes]:
        data = (seed.encode() * (size // max(1, len(seed)) + 1))[:size]
        return ChunkHash(hashlib.sha256(data).hexdigest()), data

    @staticmethod
    def files_under(root: Path) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    @staticmethod
    def stored(data_dir: Path, chunk_hash: str) -> bytes | None:
        """The bytes a node's data dir holds for a chunk (packed or a file), or None."""
        where = stored_chunks(data_dir).get(ChunkHash(chunk_hash))
        if where is None:
            return None
        with open(where.path, "rb") as fh:
            fh.seek(where.offset)
            return fh.read(where.length)

    @staticmethod
    def flip_byte(data_dir: Path, chunk_hash: str, at: int = 10) -> None:
        """Rot: one bit of one stored byte of the chunk flipped in place, wherever it lives."""
        where = stored_chunks(data_dir)[ChunkHash(chunk_hash)]
        with open(where.path, "r+b") as fh:
            fh.seek(where.offset + at)
            byte = fh.read(1)
            fh.seek(where.offset + at)
            fh.write(bytes([byte[0] ^ 0x01]))

    @staticmethod
    def age(store: ChunkStore, chunk_hash: str, at: float) -> None:
        """Set a chunk's last use (what GC's ``before`` compares), packed or a file."""
        h = ChunkHash(chunk_hash)
        if not store.packs.touch([h], at=at):
            os.utime(store.path_of(h), (at, at))

    @staticmethod
    def last_used(store: ChunkStore, chunk_hash: str) -> float:
        [entry] = [e for e in store.iter_inventory() if e.hash == chunk_hash]
        return entry.mtime


@pytest.fixture
def kit() -> Kit:
    return Kit()


@pytest.fixture
async def start_node(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> Callable[..., Awaitable[tuple[TestServer, web.Application]]]:
    """Start a real node app on 127.0.0.1 (port 0); returns (server, app)."""

    async def start(node_id: str, **kw: Any) -> tuple[TestServer, web.Application]:
        app = create_app(Kit.config(tmp_path / node_id, node_id, **kw))
        server = await aiohttp_server(app, host="127.0.0.1", port=0)
        return server, app

    return start


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node-data"
