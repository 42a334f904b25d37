"""Repair: every live chunk back to F good copies, from the copies the nodes confirm now.

The drain loop already re-copies chunks whose nodes are draining or gone for too long. Repair
covers what only asking the nodes shows: a copy its ready node lost (deleted, or quarantined as
corrupt when read or verified). Such a copy's location is forgotten, and each chunk with at least
one good copy is copied (pulled and verified on the target, as a drain does) until F good copies
live on ready, non-draining nodes. A chunk without any good copy cannot be repaired: it is
counted, and fsck keeps reporting it.

The refill pass acts at once on what the probes flag: copies a node's scrub found corrupt (the
node reports them in ``GET /v1/stats``) and nodes that came back with far fewer chunks than the
catalog records there; both go through the same repair, limited to those chunks. It also keeps
the window with fewer than F copies (``cofre.manager.exposure``).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Literal

from cofre.aio import Periodic
from cofre.manager.catalog import LiveChunk
from cofre.manager.context import Manager
from cofre.manager.drain import fill_copies
from cofre.manager.health import check_copies
from cofre.models import ChunkHash, NodeId
from cofre.protocol.manager_api import RepairReport, RepairRun

log = logging.getLogger(__name__)

Reason = Literal["full", "scrub", "refill"]
# A node reporting fewer than this share of the live chunks the catalog records on it lost its
# store (a wiped or replaced volume): far below, not a few chunks short, which GC or an upload
# in flight can explain.
WIPED_FRACTION = 0.5


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


async def repair(
    m: Manager,
    *,
    verify: bool,
    reason: Reason = "full",
    only: Mapping[NodeId, Collection[ChunkHash] | None] | None = None,
) -> RepairReport:
    """One pass over every live chunk, or only over those ``only`` names per node (None: all
    the catalog places on that node); -> what it found and did."""
    if only is None:
        chunks = await m.catalog.live_chunks()
    else:
        wanted = {n: set(h) if h is not None else None for n, h in only.items()}
        chunks = [
            c
            for c in await m.catalog.live_chunks(on_nodes=wanted)
            if any(
                n in c.holders and (hashes is None or c.hash in hashes)
                for n, hashes in wanted.items()
            )
        ]
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
        log.warning("copies lost node=%s chunks=%d reason=%s", node, len(hashes), reason)

    def why(chunk: LiveChunk) -> str:
        gone = sorted({n for n, hashes in lost.items() if chunk.hash in hashes})
        where = f"lost on {','.join(gone)}" if gone else "on draining or unready nodes"
        found = {"full": "", "scrub": " (found corrupt by the scrub)", "refill": " (refill)"}
        return (
            f"repair: copies {where}{found[reason]}; copied from {','.join(sorted(chunk.holders))}"
        )

    copied, stuck = await fill_copies(m, todo, excluded=draining, why_of=why)
    m.metrics.repair_passes.labels(reason).inc()
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
        "repair pass reason=%s verify=%s %s",
        reason,
        verify,
        " ".join(f"{k}={v}" for k, v in result.model_dump().items()),
    )
    if copied or lost:
        # The refill pass looks again at once: it closes the window with fewer than F copies.
        m.registry.refill_wakeup.set()
    m.last_repair = RepairRun(
        at=time.time(),
        verify=verify,
        report=result,
        reason=reason,
        window=m.exposure.report(time.time()),
    )
    return result


def repair_loop(m: Manager) -> Periodic | None:
    """A presence-only repair pass every ``repair.interval_s``, or None when that is 0
    (re-hashing is left to the nodes' scrub and ``cofre repair --verify``)."""
    interval = m.config.repair.interval_s
    if interval <= 0:
        return None
    return Periodic("repair", lambda: repair(m, verify=False), interval_s=interval)


def wiped(reported: int, recorded: int) -> bool:
    """A node reporting ``reported`` chunks where the catalog records ``recorded`` live ones
    lost (most of) its store: none left, or fewer than half."""
    return recorded > 0 and reported < recorded * WIPED_FRACTION


def short_chunks(
    chunks: Iterable[LiveChunk], *, ready: set[NodeId], factor: int
) -> list[LiveChunk]:
    """Live chunks with fewer than ``factor`` copies on ready nodes, by the catalog."""
    return [c for c in chunks if len(c.holders & ready) < factor]


async def refill_pass(m: Manager) -> None:
    """What the probes flagged, at once: copies a node's scrub found corrupt are replaced, and
    a ready node holding far fewer chunks than the catalog records there (wiped, or back on
    an empty volume) is refilled; then the window with fewer than F copies is measured."""
    findings: dict[NodeId, set[ChunkHash]] = {}
    found_at: list[float] = []
    whole: dict[NodeId, None] = {}
    suspects = [s for s in m.registry.nodes.values() if s.refill_check]
    recorded: collections.Counter[NodeId] = collections.Counter()
    if suspects:
        recorded.update(n for c in await m.catalog.live_chunks() for n in c.holders)
    for state in m.registry.nodes.values():
        if state.scrub_findings:
            findings[state.node_id] = set(state.scrub_findings)
            found_at.extend(state.scrub_findings.values())
            state.scrub_findings.clear()
        if state.refill_all:
            whole[state.node_id] = None
            state.refill_all = False
    detected = time.time()
    for state in suspects:
        # Only nodes a probe just flagged (an older count may predate the latest upload);
        # an unready one stays flagged until it answers again.
        if not state.ready:
            continue
        state.refill_check = False
        reported = state.stats.chunk_count if state.stats else 0
        if wiped(reported, recorded[state.node_id]):
            log.warning(
                "node lost its chunks, refilling node=%s reported=%d recorded=%d",
                state.node_id,
                reported,
                recorded[state.node_id],
            )
            whole[state.node_id] = None
            found_at.append(detected)
    for node in whole:
        findings.pop(node, None)
    lost = 0
    if findings:
        lost += (await repair(m, verify=False, reason="scrub", only=dict(findings))).lost_copies
    if whole:
        lost += (await repair(m, verify=False, reason="refill", only=dict(whole))).lost_copies
    if lost:
        # Short of F copies from when the rot or the loss was seen until now, repaired: a
        # node whose count only looked low (a probe older than an upload) lost nothing.
        m.exposure.observe(lost, now=time.time(), since=min(found_at, default=None))
    await measure_window(m)


async def measure_window(m: Manager, *, since: float | None = None) -> int:
    """Count live chunks short of F copies on ready nodes and fold it into ``m.exposure``;
    the window is backdated to ``since`` or when the first unready holder went."""
    chunks = await m.catalog.live_chunks()
    ready = {s.node_id for s in m.registry.ready_nodes()}
    short = short_chunks(chunks, ready=ready, factor=m.factor)
    causes = [] if since is None else [since]
    down = {n for c in short for n in c.holders - ready}
    for node in down:
        state = m.registry.nodes.get(node)
        if state is not None and state.unready_since is not None:
            causes.append(state.unready_since)
    now = time.time()
    m.exposure.observe(len(short), now=now, since=min(causes) if causes else None)
    window = m.exposure.report(now)
    m.metrics.window(window)
    if m.last_repair is not None:
        m.last_repair = m.last_repair.model_copy(update={"window": window})
    return len(short)


def refill_loop(m: Manager) -> Periodic:
    """The refill pass whenever a probe flags something (``registry.refill_wakeup``), and every
    ``repair.lost_scan_s`` to keep measuring the window."""
    return Periodic(
        "refill",
        lambda: refill_pass(m),
        interval_s=m.config.repair.lost_scan_s,
        wakeup=m.registry.refill_wakeup,
    )
