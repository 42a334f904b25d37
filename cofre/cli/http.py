"""The CLI's HTTP session: pooled, with every request logged at DEBUG.

The DEBUG lines (``COFRE_LOG_LEVEL=DEBUG``) show exactly which hosts the CLI talked to, which is
how one checks that a backup only ever reaches the manager and its primary node.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from cofre.cli.context import Context
from cofre.errors import Unavailable
from cofre.protocol.client import ManagerClient, NodeClient, open_session

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
    """The manager client and a way to reach nodes, sharing one session and the token."""

    def __init__(self, session: aiohttp.ClientSession, ctx: Context) -> None:
        self.session = session
        self.ctx = ctx
        self.manager = ManagerClient(session, ctx.manager_url, ctx.token)

    def node(self, url: str) -> NodeClient:
        if url.startswith("http://") and not self.ctx.insecure:
            # The manager hands out node URLs: plain ones are refused like a plain manager.
            raise Unavailable(
                f"storage node {url} is plain HTTP, which would send the token and the data "
                "unencrypted; pass --insecure (COFRE_INSECURE=1) to allow it"
            )
        return NodeClient(self.session, url, self.ctx.token)


@asynccontextmanager
async def connect(ctx: Context) -> AsyncIterator[Clients]:
    async with open_cli_session(ctx) as session:
        yield Clients(session, ctx)
