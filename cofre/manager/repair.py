"""Repair: every live chunk back to F good copies, from the copies the nodes confirm now.

The drain loop already re-copies chunks whose nodes are draining or gone for too long. Repair
covers what only asking the nodes shows: a copy its ready node lost (deleted, or quarantined as
corrupt when read or verified). Such a copy's location is forgotten, and each chunk with at least
one good copy is copied (pulled and verified on the target, as a drain does) until F good copies
live on ready, non-draining nodes. A chunk without any good copy cannot be repaired: it is
counted, and fsck keeps reporting it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from cofre.aio import Periodic
from cofre.manager.catalog import LiveChunk
from cofre.manager.context import Manager
from cofre.manager.drain import fill_copies
from cofre.manager.health import check_copies
from cofre.models import ChunkHash, NodeId
from cofre.protocol.manager_api import RepairReport, RepairRun

log = logging.getLogger(__name__)


def plan_repair(
    chunks: Iterable[LiveChunk],
    good: dict[ChunkHash, set[NodeId]],
    *,
    answered: set[NodeId],
    draining: set[NodeId],
    factor: int,
) -> tuple[list[LiveChunk], dict[NodeId, list[ChunkHash]], int]:
    """-> (chunks to copy, with their good holders; per node the copies it lost; how many
    chunks have no good copy left)."""
    todo: list[LiveChunk] = []
    lost: dict[NodeId, list[ChunkHash]] = {}
    unrecoverable = 0
    for chunk in chunks:
        holding = good.get(chunk.hash, set())
        # Only a node's own answer makes a copy lost: one that did not answer (unready, or a
        # failed request) may still hold it.
        for node in sorted(chunk.holders & answered - holding):
            lost.setdefault(node, []).append(chunk.hash)
        if len(holding - draining) >= factor:
            continue
        if not holding:
            unrecoverable += 1
            continue
        todo.append(LiveChunk(chunk.hash, chunk.length, frozenset(holding)))
    return todo, lost, unrecoverable


async def repair(m: Manager, *, verify: bool) -> RepairReport:
    """One pass over every live chunk; -> what it found and did."""
    chunks = await m.catalog.live_chunks()
    checked = await check_copies(m, [c.hash for c in chunks], verify=verify)
    draining = set(m.registry.draining)
    todo, lost, unrecoverable = plan_repair(
        chunks,
        {h: good for h, (good, _) in checked.copies.items()},
        answered=checked.answered,
        draining=draining,
        factor=m.factor,
    )
    for node, hashes in lost.items():
        await m.catalog.remove_locations(node, hashes)
        log.warning("copies lost node=%s chunks=%d", node, len(hashes))

    def why(chunk: LiveChunk) -> str:
        gone = sorted({n for n, hashes in lost.items() if chunk.hash in hashes})
        where = f"lost on {','.join(gone)}" if gone else "on draining or unready nodes"
        return f"repair: copies {where}; copied from {','.join(sorted(chunk.holders))}"

    copied, stuck = await fill_copies(m, todo, excluded=draining, why_of=why)
    m.metrics.repair_passes.labels("full").inc()
    m.metrics.copied("repair", made=copied, stuck=stuck)
    result = RepairReport(
        chunks=len(chunks),
        lost_copies=sum(len(h) for h in lost.values()),
        under_replicated=len(todo),
        copies_made=copied,
        stuck=stuck,
        unrecoverable=unrecoverable,
        healthy=stuck == 0 and unrecoverable == 0,
    )
    log.log(
        logging.INFO if result.healthy else logging.WARNING,  # stuck or unrecoverable chunks
        "repair pass verify=%s %s",
        verify,
        " ".join(f"{k}={v}" for k, v in result.model_dump().items()),
    )
    m.last_repair = RepairRun(at=time.time(), verify=verify, report=result)
    return result


def repair_loop(m: Manager) -> Periodic | None:
    """A presence-only repair pass every ``repair.interval_s``, or None when that is 0
    (re-hashing is left to ``cofre repair --verify``: it reads every byte)."""
    interval = m.config.repair.interval_s
    if interval <= 0:
        return None
    return Periodic("repair", lambda: repair(m, verify=False), interval_s=interval)
