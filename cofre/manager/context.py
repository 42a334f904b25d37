"""What every manager operation works with: config, catalog, node registry, HTTP session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from cofre.config import ManagerConfig
from cofre.errors import Unavailable
from cofre.manager.catalog import Catalog
from cofre.manager.clientkeys import KeyStore
from cofre.manager.exposure import Exposure
from cofre.manager.metrics import ManagerMetrics
from cofre.manager.placement import Weights
from cofre.manager.registry import Registry
from cofre.models import NodeId
from cofre.pacing import Pacer, Slots
from cofre.protocol.client import NodeClient
from cofre.protocol.manager_api import FsckRun, RepairRun
from cofre.tickets import ticket_key

_T = TypeVar("_T")


@dataclass
class Manager:
    config: ManagerConfig
    catalog: Catalog
    registry: Registry
    http: aiohttp.ClientSession
    # Commit's check+insert and GC's decide+delete must not interleave: GC could otherwise
    # delete a chunk a commit just confirmed.
    catalog_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Counts GC's delete batches, bumped under ``catalog_lock`` before a node deletes anything:
    # a presence check made without the lock still holds under it while this has not moved.
    chunk_deletions: int = 0
    # Set to wake the drain worker (a drain was requested).
    drain_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Seconds a node holding chunks may be unready or gone before its chunks are copied
    # elsewhere: config.repair.after_s, an attribute so that tests can shorten it.
    repair_after_s: float = field(init=False)
    # Once the catalog holds a version it never becomes empty again (deletes only mark rows),
    # so the lost-catalog check before new uploads stops asking the nodes.
    catalog_seen_versions: bool = False
    metrics: ManagerMetrics = field(default_factory=ManagerMetrics)
    # The latest whole-catalog fsck and repair pass, for the status page (since start only).
    last_fsck: FsckRun | None = None
    last_repair: RepairRun | None = None

    # The window with fewer than F copies (kept by the refill pass).
    exposure: Exposure = field(default_factory=Exposure)
    # Drain's and repair's shared limits: bytes per second copied, copies in flight per node.
    copy_pacer: Pacer = field(init=False)
    copy_slots: Slots = field(init=False)
    # Client keys, loaded from the catalog at start.
    keys: KeyStore = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.catalog)
        self.repair_after_s = self.config.repair.after_s
        self.copy_pacer = Pacer(self.config.repair.bytes_per_s)
        self.copy_slots = Slots(self.config.repair.per_node_copies)

    @property
    def weights(self) -> Weights:
        p = self.config.placement
        return Weights(latency=p.latency_weight, stored_bytes=p.stored_bytes_weight)

    @property
    def factor(self) -> int:
        return self.config.placement.replication_factor

    @property
    def ticket_key(self) -> bytes:
        return ticket_key(self.config.token)

    def client(self, url: str) -> NodeClient:
        return NodeClient(self.http, url, self.config.token)

    def node_client(self, node_id: NodeId) -> NodeClient:
        url = self.registry.url_of(node_id)
        if not url:
            raise Unavailable(f"storage node {node_id} is not known to discovery", node=node_id)
        return self.client(url)

    @contextlib.asynccontextmanager
    async def checked_under_lock(self, check: Callable[[], Awaitable[_T]]) -> AsyncIterator[_T]:
        """Run ``check`` (a presence check on nodes) without the commit lock, so that commits
        check in parallel, then hold the lock for the body with its result. If GC deleted
        anything meanwhile, ``check`` runs again under the lock: what the body records was
        present at a moment no deletion has followed."""
        seen = self.chunk_deletions
        result = await check()
        async with self.catalog_lock:
            if self.chunk_deletions != seen:
                result = await check()
            yield result
