"""The CLI's HTTP session: pooled, with every request logged at DEBUG.

The DEBUG lines (``COFRE_LOG_LEVEL=DEBUG``) show exactly which hosts the CLI talked to, which is
how one checks that a backup only ever reaches the manager and its primary node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from cofre.cli.context import Context
from cofre.errors import Forbidden, Unavailable
from cofre.models import ChunkHash
from cofre.protocol.client import ManagerClient, NodeClient, open_session
from cofre.protocol.manager_api import ChunkLocation, ManifestView

log = logging.getLogger(__name__)


async def _on_request_start(
    _session: aiohttp.ClientSession,
    _ctx: SimpleNamespace,
    params: aiohttp.TraceRequestStartParams,
) -> None:
    log.debug("request method=%s url=%s", params.method, params.url)


@asynccontextmanager
async def open_cli_session(
    ctx: Context, *, limit: int = 64
) -> AsyncIterator[aiohttp.ClientSession]:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_request_start)
    async with open_session(
        timeout_s=ctx.timeout_s,
        connect_timeout_s=ctx.connect_timeout_s,
        limit=limit,
        ca_file=Path(ctx.ca) if ctx.ca else None,
        trace_configs=[trace],
    ) as session:
        yield session


class Clients:
    """The manager client and a way to reach nodes, sharing one session.

    Only the manager sees the token or key. Nodes see tickets the manager signed: an upload's
    for writes, a manifest's for reads (kept here by node URL as manifests arrive), so a client
    holding a backup or read key reads and writes through the nodes with no cluster token.
    """

    def __init__(self, session: aiohttp.ClientSession, ctx: Context) -> None:
        self.session = session
        self.ctx = ctx
        self.manager = ManagerClient(session, ctx.manager_url, ctx.token)
        self._read_tickets: dict[str, str] = {}
        # node URL -> (name, version) of the manifest its ticket came with, to ask it again
        self._ticket_sources: dict[str, tuple[str, int]] = {}
        self._renewing = asyncio.Lock()

    def node(self, url: str) -> NodeClient:
        if url.startswith("http://") and not self.ctx.insecure:
            # The manager hands out node URLs: plain ones are refused like a plain manager.
            raise Unavailable(
                f"storage node {url} is plain HTTP, which would send the token and the data "
                "unencrypted; pass --insecure (COFRE_INSECURE=1) to allow it"
            )
        return NodeClient(self.session, url, None)

    def read_ticket(self, url: str) -> str | None:
        """The read ticket of the latest manifest that listed the node at ``url``."""
        return self._read_tickets.get(url.rstrip("/"))

    async def locate(self, hashes: list[ChunkHash]) -> list[ChunkLocation]:
        """Where to read ``hashes`` (a snapshot restore's), keeping the read ticket for those
        nodes."""
        located = await self.manager.locate_chunks(hashes)
        if located.ticket is not None:
            for chunk in located.chunks:
                for url in chunk.nodes:
                    self._read_tickets[url] = located.ticket
        return located.chunks

    def _keep_tickets(self, view: ManifestView) -> None:
        if view.ticket is None:
            return
        for chunk in view.chunks:
            for url in chunk.nodes:
                self._read_tickets[url] = view.ticket
                self._ticket_sources[url] = (view.name, view.version)

    async def get_chunk(self, url: str, chunk_hash: ChunkHash) -> bytes:
        """One chunk from the node at ``url`` under its read ticket; a ticket that expired
        during a long restore is renewed once (its manifest asked again) and the read retried."""
        ticket = self.read_ticket(url)
        try:
            return await self.node(url).get_chunk(chunk_hash, ticket=ticket)
        except Forbidden:
            if ticket is None or not await self._renew(url, ticket):
                raise
        return await self.node(url).get_chunk(chunk_hash, ticket=self.read_ticket(url))

    async def _renew(self, url: str, stale: str) -> bool:
        async with self._renewing:  # chunks in flight that all found it expired ask once
            if self.read_ticket(url) != stale:
                return True
            source = self._ticket_sources.get(url.rstrip("/"))
            if source is None:
                return False
            log.debug("read ticket refused, asking for it again url=%s name=%s", url, source[0])
            await self.manifest(source[0], version=source[1])
            return self.read_ticket(url) != stale

    async def manifest(self, name: str, *, version: int | None = None) -> ManifestView:
        view = await self.manager.get_manifest(name, version=version)
        self._keep_tickets(view)
        return view

    async def manifests(self, names: list[str]) -> list[ManifestView]:
        views = await self.manager.get_manifests(names)
        for view in views:
            self._keep_tickets(view)
        return views


@asynccontextmanager
async def connect(ctx: Context) -> AsyncIterator[Clients]:
    async with open_cli_session(ctx) as session:
        yield Clients(session, ctx)
