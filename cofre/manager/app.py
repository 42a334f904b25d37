"""The manager's aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from cofre.aio import Periodic, cancel_all
from cofre.config import ManagerConfig
from cofre.limits import MAX_MANAGER_JSON_BYTES
from cofre.manager import drain, gc, repair, uploads
from cofre.manager.catalog import Catalog
from cofre.manager.context import Manager
from cofre.manager.discovery import NodeDiscovery, make_discovery
from cofre.manager.keys import CONFIG, MANAGER
from cofre.manager.metrics import METRICS, ManagerMetrics, scrape
from cofre.manager.probing import probe_loop
from cofre.manager.registry import Registry
from cofre.manager.routes import api, routes
from cofre.protocol.client import open_session
from cofre.protocol.server import service_app

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite3"
DISCOVERY = web.AppKey("discovery", NodeDiscovery)
# Seconds before a discovery watch that failed or ended is started again.
DISCOVERY_RESTART_S = 5.0
# Seconds shutdown waits for the background loops; a cancelled loop stops at once.
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class ManagerLoops:
    """The manager's periodic loops, set up at start. Tests run a pass of one and wait for it
    with ``await app[LOOPS].probe.run_once()`` rather than for the clock."""

    probe: Periodic
    gc: Periodic
    sessions: Periodic
    drain: Periodic
    # None when background repair is off (repair.interval_s = 0).
    repair: Periodic | None
    # Scrub findings and emptied nodes, as the probes flag them.
    refill: Periodic

    def all(self) -> list[Periodic]:
        loops = [self.probe, self.gc, self.sessions, self.drain, self.repair, self.refill]
        return [loop for loop in loops if loop is not None]


LOOPS = web.AppKey("loops", ManagerLoops)
api.serve_metrics(scrape)


def create_app(config: ManagerConfig) -> web.Application:
    metrics = ManagerMetrics()
    app = service_app(
        token=config.token,
        declared_public=api.public_paths,
        metrics_public=config.metrics.public,
        metrics_middleware=metrics.middleware,
        client_max_size=MAX_MANAGER_JSON_BYTES,
    )
    app[CONFIG] = config
    app[METRICS] = metrics
    # Built here so a bad node list fails at start, not in a background task.
    app[DISCOVERY] = make_discovery(config.discovery)
    app.cleanup_ctx.extend([_manager_ctx, _background_ctx])
    app.add_routes(routes)
    return app


async def _manager_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    catalog = Catalog(config.data_dir / CATALOG_FILE)
    await catalog.open()
    try:
        async with open_session(timeout_s=60.0, ca_file=config.tls.ca_path) as http:
            m = Manager(
                config=config, catalog=catalog, registry=Registry(), http=http, metrics=app[METRICS]
            )
            app[METRICS].manager = m
            m.registry.draining.update(await catalog.draining())
            open_uploads = await uploads.restore_reservations(m)
            app[MANAGER] = m
            log.info(
                "catalog open path=%s open_uploads=%d draining=%s",
                catalog.path,
                open_uploads,
                ",".join(sorted(m.registry.draining)) or "-",
            )
            yield
    finally:
        await catalog.close()


async def _discovery_loop(m: Manager, discovery: NodeDiscovery) -> None:
    async for endpoints in discovery.watch():
        m.registry.update_endpoints(endpoints)
    log.warning("discovery watch ended backend=%s; restarting it", discovery.name)


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    m = app[MANAGER]
    config = app[CONFIG]
    discovery = app[DISCOVERY]
    loops = ManagerLoops(
        probe=probe_loop(
            m.registry, session=m.http, token=config.token, config=config.probe, metrics=m.metrics
        ),
        gc=gc.gc_loop(m),
        sessions=uploads.sweeper_loop(m),
        drain=drain.drain_loop(m),
        repair=repair.repair_loop(m),
        refill=repair.refill_loop(m),
    )
    app[LOOPS] = loops
    m.metrics.loops = loops.all()
    # The watch runs for good; one that fails or ends is started again after a pause.
    watch = Periodic(
        "discovery",
        lambda: _discovery_loop(m, discovery),
        interval_s=DISCOVERY_RESTART_S,
        pass_at_start=True,
    )
    tasks = [watch.start(), *(loop.start() for loop in loops.all())]
    yield
    stuck = await cancel_all(tasks, STOP_TIMEOUT_S)
    if stuck:
        log.error("background loops did not stop loops=%s", ",".join(sorted(stuck)))
