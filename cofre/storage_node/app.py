"""The storage node's aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from cofre.aio import Periodic, cancel_all
from cofre.config import NodeConfig
from cofre.limits import MAX_CHUNK_SIZE
from cofre.protocol.server import service_app
from cofre.storage_node import chunk_api, keys, relay
from cofre.storage_node.metrics import METRICS, NodeMetrics, Watched, scrape
from cofre.storage_node.operations import api
from cofre.storage_node.relay_sessions import SessionRegistry
from cofre.storage_node.scrub import Scrubber, scrub_loop
from cofre.storage_node.store import ChunkStore

log = logging.getLogger(__name__)

# chunk_api and relay declare their operations when imported; the document lists them all.
_ROUTE_MODULES = (chunk_api, relay)
api.serve_document(
    title="cofre storage node",
    version="1",
    description="Content-addressed, verified chunks, and the primary's relay to its replicas. "
    "Chunk writes need a manager-signed ticket naming this node.",
)
api.serve_metrics(scrape)

# The scrub's loop (None when the scrub is off); tests run a pass with ``run_once()``.
SCRUB_LOOP = web.AppKey("scrub_loop", Periodic)
# The packs' compaction loop; tests run a pass with ``run_once()``.
COMPACT_LOOP = web.AppKey("compact_loop", Periodic)
# Seconds shutdown waits for the scrub's pass (a cancel stops it between two chunks).
STOP_TIMEOUT_S = 10.0

# aiohttp's own backstop; handlers enforce tighter, per-endpoint limits while reading.
CLIENT_MAX_SIZE = MAX_CHUNK_SIZE + 1024 * 1024


def create_app(config: NodeConfig) -> web.Application:
    metrics = NodeMetrics()
    app = service_app(
        token=config.token,
        declared_public=api.public_paths,
        metrics_public=config.metrics.public,
        metrics_middleware=metrics.middleware,
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[keys.CONFIG] = config
    app[METRICS] = metrics
    app[keys.STORE] = ChunkStore(
        config.data_dir, reserve_bytes=config.reserve_bytes, packs=config.pack
    )
    app[keys.SESSIONS] = SessionRegistry()
    app[relay.SWEEPER] = relay.sweeper_loop(
        app[keys.SESSIONS], interval_s=config.relay_sweep_interval_s
    )
    app[keys.SCRUBBER] = Scrubber(app[keys.STORE], config.scrub)
    scrub = scrub_loop(app[keys.SCRUBBER])
    if scrub is not None:
        app[SCRUB_LOOP] = scrub
    app[COMPACT_LOOP] = compact_loop(app[keys.STORE], interval_s=config.pack.compact_interval_s)
    metrics.watch(
        Watched(
            store=app[keys.STORE],
            sessions=app[keys.SESSIONS],
            sweeper=app[relay.SWEEPER],
            scrub=scrub,
            compact=app[COMPACT_LOOP],
            scrubber=app[keys.SCRUBBER],
        )
    )
    app.cleanup_ctx.extend(
        [_store_ctx, relay.http_session, relay.sweeper, _scrub_ctx, _compact_ctx]
    )
    app.add_routes(api.routes)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    await store.open()
    config = app[keys.CONFIG]
    log.info(
        "storage node starting node_id=%s address=%s:%d data_dir=%s stored_bytes=%d chunks=%d",
        config.node_id,
        config.host,
        config.port,
        store.root,
        store.stored_bytes,
        store.chunk_count,
    )
    yield
    store.close()


def compact_loop(store: ChunkStore, *, interval_s: float) -> Periodic:
    async def compact_pass() -> None:
        if store.is_open:
            await store.compact()

    return Periodic("compact", compact_pass, interval_s=interval_s)


async def _compact_ctx(app: web.Application) -> AsyncIterator[None]:
    task = app[COMPACT_LOOP].start()
    yield
    if await cancel_all([task], STOP_TIMEOUT_S):
        log.error("compaction loop did not stop")


async def _scrub_ctx(app: web.Application) -> AsyncIterator[None]:
    loop = app.get(SCRUB_LOOP)
    task = loop.start() if loop is not None else None
    yield
    if task is not None and await cancel_all([task], STOP_TIMEOUT_S):
        log.error("scrub loop did not stop")
