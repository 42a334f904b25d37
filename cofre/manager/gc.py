"""Garbage collection: delete from nodes the chunks no live version references.

Only chunks last written or touched before the cutoff go: the grace period covers clock skew and
slow clients, and the oldest open upload bounds it because that upload's chunks (new or deduped,
which /missing touches) are not in the catalog until it commits. Chunks an open upload was told
are stored already (dedup.py) are pinned to it in the catalog and kept whatever their age.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from cofre.aio import Periodic
from cofre.errors import CofreError
from cofre.limits import CHECK_BATCH
from cofre.manager import snapshot_store, uncommitted
from cofre.manager.context import Manager
from cofre.manager.registry import NodeState
from cofre.models import ChunkHash
from cofre.protocol.manager_api import GcResult
from cofre.protocol.node_api import InventoryEntry

log = logging.getLogger(__name__)

# seconds: node mtimes come from the nodes' clocks, upload times from the manager's; this
# margin keeps a chunk of an open upload safe from modest clock skew and coarse file times.
CLOCK_MARGIN_S = 60.0


def gc_cutoff(*, now: float, grace_s: float, oldest_open_upload: float | None) -> float:
    """Chunks last written or touched before this moment may be collected."""
    cutoff = now - grace_s
    if oldest_open_upload is not None:
        cutoff = min(cutoff, oldest_open_upload - CLOCK_MARGIN_S)
    return cutoff


def garbage(inventory: Iterable[InventoryEntry], live: set[ChunkHash]) -> list[ChunkHash]:
    """Hashes in a node's inventory that no live version references."""
    return [c.hash for c in inventory if c.hash not in live]


async def delete_batch(m: Manager, state: NodeState, batch: Sequence[ChunkHash]) -> tuple[int, int]:
    """Delete those of ``batch`` the catalog keeps no more from the node; -> chunks deleted,
    bytes freed. Call with ``m.catalog_lock`` held."""
    kept = await m.catalog.kept_among(batch)
    doomed = [h for h in batch if h not in kept]
    if not doomed:
        return 0, 0
    # Before deleting: presence checks made without the lock until now are made again.
    m.chunk_deletions += 1
    result = await m.client(state.url).delete_chunks(doomed)
    await m.catalog.remove_locations(state.node_id, doomed)
    return result.deleted, result.freed_bytes


async def _collect_node(
    m: Manager, state: NodeState, *, cutoff: float, live: set[ChunkHash]
) -> tuple[int, int]:
    """Delete a node's garbage a batch at a time. ``live`` was read before the pass; each
    batch is checked again and deleted under the commit lock, so a commit, a `known` pin or a
    snapshot that made a chunk live meanwhile keeps it, and no commit waits longer than one
    batch."""
    candidates = garbage(await m.client(state.url).inventory(before=cutoff), live)
    deleted = freed = 0
    for start in range(0, len(candidates), CHECK_BATCH):
        async with m.catalog_lock:
            n, b = await delete_batch(m, state, candidates[start : start + CHECK_BATCH])
        deleted += n
        freed += b
    if deleted:
        log.info("gc node=%s deleted=%d freed_bytes=%d", state.node_id, deleted, freed)
    return deleted, freed


async def _only_uncommitted(m: Manager) -> bool:
    """With no version in the catalog: whether every known node answers and every manifest
    they hold is an uncommitted upload's (uncommitted.py), so that nothing on them is a lost
    catalog's and all of it (but open uploads', by the cutoff) is garbage."""
    known = list(m.registry.nodes.values())
    if not known or not all(s.ready for s in known):
        return False
    try:
        found = await uncommitted.survey(m, known, strict=True)
    except CofreError:
        return False
    return not found.unexplained


async def collect(m: Manager, *, grace_s: float | None = None) -> GcResult:
    """One pass over every ready node; -> what it deleted and freed. The commit lock is held
    only to decide and for each batch of deletes (``_collect_node``), never for the pass:
    backups commit while it runs."""
    grace = m.config.gc.grace_s if grace_s is None else grace_s
    # Roots of removed snapshots a node could not delete before: before GC's own deletes, so
    # that a rebuild never brings those snapshots back.
    await snapshot_store.forget_roots_soon(m)
    async with m.catalog_lock:
        if not await m.catalog.version_rows() and not await _only_uncommitted(m):
            # No version was ever recorded here and the nodes may hold a lost catalog's
            # manifests, whose chunks `cofre catalog rebuild` still needs. Collect nothing.
            log.info("gc pass skipped: the catalog holds no version")
            m.metrics.gc_done(deleted=0, freed=0)
            return GcResult(deleted_chunks=0, freed_bytes=0)
        sessions = await m.catalog.open_sessions()
        # An upload opened later writes its chunks after this moment, so none is listed.
        cutoff = gc_cutoff(
            now=time.time(),
            grace_s=grace,
            oldest_open_upload=min((s.created for s in sessions), default=None),
        )
    live = await m.catalog.kept_hashes()
    nodes = m.registry.ready_nodes()
    results = await asyncio.gather(
        *(_collect_node(m, n, cutoff=cutoff, live=live) for n in nodes),
        return_exceptions=True,
    )
    async with m.catalog_lock:
        dropped = await m.catalog.drop_unreferenced()
    deleted = freed = 0
    for node, result in zip(nodes, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, CofreError):
                raise result
            log.warning("gc failed node=%s error=%s", node.node_id, result.detail)
            continue
        deleted += result[0]
        freed += result[1]
    log.info(
        "gc pass nodes=%d deleted=%d freed_bytes=%d dropped_locations=%d cutoff=%.0f",
        len(nodes),
        deleted,
        freed,
        dropped,
        cutoff,
    )
    m.metrics.gc_done(deleted=deleted, freed=freed)
    return GcResult(deleted_chunks=deleted, freed_bytes=freed)


def gc_loop(m: Manager) -> Periodic:
    """A collection every ``gc.interval_s``, the first one interval after start."""
    return Periodic("gc", lambda: collect(m), interval_s=m.config.gc.interval_s)
