"""Draining nodes: copy every live chunk off them until F verified copies live elsewhere.

Draining nodes take no new uploads but keep serving reads and serve as copy sources. A node is
done when every live chunk it holds has F copies on non-draining nodes, each verified on the
target (check with verify) before the catalog records it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence

from cofre.aio import Periodic
from cofre.errors import BadRequest, CofreError, NotFound
from cofre.manager.catalog import LiveChunk
from cofre.manager.context import Manager
from cofre.manager.placement import NodeView, Weights, candidates, rank, restore_order
from cofre.models import NodeId, UploadId
from cofre.protocol.manager_api import DrainStatus, NodeDrain
from cofre.tickets import Ticket

log = logging.getLogger(__name__)

# Seconds a pull ticket is valid; one chunk copy takes far less.
PULL_TICKET_TTL_S = 600.0


def copies_needed(chunk: LiveChunk, *, draining: set[NodeId], factor: int) -> int:
    """How many more copies on non-draining nodes this chunk needs."""
    return max(0, factor - len(chunk.holders - draining))


def repair_order(todo: Iterable[LiveChunk], *, excluded: set[NodeId]) -> list[LiveChunk]:
    """The order copies are made in: fewest copies left outside ``excluded`` first, so a
    chunk down to its last copy is safe again before one short of a single copy (stable for
    ties, which keeps the catalog's order)."""
    return sorted(todo, key=lambda c: len(c.holders - excluded))


def pick_target(
    views: Iterable[NodeView],
    *,
    holders: Iterable[NodeId],
    length: int,
    weights: Weights,
    min_free_bytes: int,
) -> tuple[NodeView, float] | None:
    """The best ready, non-draining node with room that does not already hold the chunk, and
    its score."""
    held = set(holders)
    pool = [
        v
        for v in candidates(views, size=length, min_free_bytes=min_free_bytes)
        if v.node_id not in held
    ]
    ranked = rank(pool, weights)
    return ranked[0] if ranked else None


def drain_status(chunks: Sequence[LiveChunk], *, draining: set[NodeId], factor: int) -> DrainStatus:
    # per node: [chunks left, bytes left]
    left = {n: [0, 0] for n in sorted(draining)}
    chunks_left = bytes_left = 0
    for c in chunks:
        if not copies_needed(c, draining=draining, factor=factor):
            continue
        chunks_left += 1
        bytes_left += c.length
        for n in c.holders & draining:
            left[n][0] += 1
            left[n][1] += c.length
    return DrainStatus(
        done=chunks_left == 0,
        chunks_left=chunks_left,
        bytes_left=bytes_left,
        nodes={
            n: NodeDrain(done=count == 0, chunks_left=count, bytes_left=size)
            for n, (count, size) in left.items()
        },
    )


async def status(m: Manager) -> DrainStatus:
    draining = set(m.registry.draining)
    chunks = await m.catalog.live_chunks(on_nodes=draining) if draining else []
    result = drain_status(chunks, draining=draining, factor=m.factor)
    m.metrics.drain_left(result)
    return result


def _unknown_nodes(m: Manager, node_ids: Iterable[NodeId], recorded: set[NodeId]) -> list[str]:
    return sorted(set(node_ids) - set(m.registry.nodes) - m.registry.draining - recorded)


async def start_drain(m: Manager, node_ids: Sequence[NodeId]) -> DrainStatus:
    """Start draining ``node_ids``: each must be a node discovery knows or one the catalog
    records copies on (a node that is gone but still holds data)."""
    if not node_ids:
        raise BadRequest("nodes must name at least one node")
    unknown = _unknown_nodes(m, node_ids, await m.catalog.holders(node_ids))
    if unknown:
        raise NotFound(f"no such storage node: {', '.join(unknown)}", nodes=unknown)
    await m.catalog.add_draining(node_ids, now=time.time())
    new = set(node_ids) - m.registry.draining
    m.registry.draining.update(node_ids)
    if new:
        log.info("drain started nodes=%s", ",".join(sorted(new)))
    m.drain_wakeup.set()
    return await status(m)


async def set_drain(m: Manager, nodes: Iterable[NodeId]) -> DrainStatus:
    """Declarative: the draining set becomes exactly ``nodes`` (an empty list ends every drain).

    The operator sends the nodes a scale-down will remove on every pass, so a cancelled
    scale-down, or a pod that comes back later, stops draining. Unlike ``start_drain`` it
    takes ids discovery has not seen yet: the operator may name a pod it has just created.
    """
    node_ids = set(nodes)
    await m.catalog.set_draining(node_ids, now=time.time())
    started = node_ids - m.registry.draining
    ended = m.registry.draining - node_ids
    m.registry.draining.clear()
    m.registry.draining.update(node_ids)
    if started:
        log.info("drain started nodes=%s", ",".join(sorted(started)))
    if ended:
        log.info("drain ended nodes=%s", ",".join(sorted(ended)))
    m.drain_wakeup.set()
    return await status(m)


async def copy_chunk(m: Manager, chunk: LiveChunk, *, why: str) -> NodeId | None:
    """Copy one chunk to the best new node and verify it there; -> the node, None if stuck.
    ``why`` (why a copy is needed) is recorded with the new copy.

    Held to the copy byte budget (``repair.bytes_per_s``) and to ``repair.per_node_copies``
    copies in flight per node (as target or as the first source asked): a copy waits for a
    slot when only busy nodes could take part, and is stuck only when no node could at all.
    """
    wait = m.copy_pacer.take(chunk.length)
    if wait > 0:
        await asyncio.sleep(wait)
    slots = m.copy_slots
    p = m.config.placement
    while True:
        released = slots.released
        views = m.registry.views()

        def target_among(pool: list[NodeView]) -> tuple[NodeView, float] | None:
            return pick_target(
                pool,
                holders=chunk.holders,
                length=chunk.length,
                weights=m.weights,
                min_free_bytes=p.min_free_bytes,
            )

        picked = target_among([v for v in views if slots.free(v.node_id)])
        if picked is None and target_among(views) is None:
            log.warning(
                "no node to copy chunk to chunk=%s holders=%d", chunk.hash, len(chunk.holders)
            )
            return None
        ranked = restore_order([v for v in views if v.node_id in chunk.holders], m.weights)
        if not ranked:
            log.warning("no ready source for chunk chunk=%s", chunk.hash)
            return None
        free_sources = [v for v in ranked if slots.free(v.node_id)]
        if picked is not None and free_sources:
            break
        await released.wait()
    target, target_score = picked
    source = free_sources[0]
    sources = [v.url for v in (*free_sources, *(v for v in ranked if v not in free_sources))]
    slots.take(target.node_id, source.node_id)
    try:
        return await _copy_to(m, chunk, target, target_score, sources, why=why)
    finally:
        slots.give(target.node_id, source.node_id)


async def _copy_to(
    m: Manager,
    chunk: LiveChunk,
    target: NodeView,
    target_score: float,
    sources: list[str],
    *,
    why: str,
) -> NodeId | None:
    upload_id = UploadId("copy-" + secrets.token_urlsafe(12))
    ticket = Ticket(upload_id, (target.node_id,), time.time() + PULL_TICKET_TTL_S)
    client = m.client(target.url)
    try:
        await client.pull_chunk(chunk.hash, sources, ticket=ticket.sign(m.ticket_key))
        async with m.catalog_lock:
            result = await client.check([chunk.hash], verify=True, touch=True)
            if chunk.hash not in result.present or chunk.hash in result.corrupt:
                log.warning(
                    "copied chunk does not verify chunk=%s node=%s", chunk.hash, target.node_id
                )
                return None
            await m.catalog.add_location(
                chunk.hash,
                target.node_id,
                why=f"{why}; the best-scored ready node without a copy (score {target_score:.2f})",
            )
    except CofreError as exc:
        log.warning(
            "chunk copy failed chunk=%s node=%s error=%s", chunk.hash, target.node_id, exc.detail
        )
        return None
    log.debug("chunk copied chunk=%s node=%s", chunk.hash, target.node_id)
    return target.node_id


async def fill_copies(
    m: Manager,
    todo: list[LiveChunk],
    *,
    excluded: set[NodeId],
    why_of: Callable[[LiveChunk], str],
) -> tuple[int, int]:
    """Copy each chunk until it has F copies outside ``excluded``, those with the fewest
    copies left first (``repair_order``), ``repair.parallel_copies`` chunks at a time;
    -> (copies made, stuck)."""
    queue = collections.deque(repair_order(todo, excluded=excluded))
    copied = stuck = 0

    async def fill(chunk: LiveChunk) -> None:
        nonlocal copied, stuck
        holders = set(chunk.holders)
        for _ in range(copies_needed(chunk, draining=excluded, factor=m.factor)):
            node = await copy_chunk(
                m, LiveChunk(chunk.hash, chunk.length, frozenset(holders)), why=why_of(chunk)
            )
            if node is None:
                stuck += 1
                return
            holders.add(node)
            copied += 1

    async def worker() -> None:
        # Each takes the next chunk in order when it is free, so the order holds.
        while queue:
            await fill(queue.popleft())

    workers = min(m.config.repair.parallel_copies, len(queue))
    await asyncio.gather(*(worker() for _ in range(workers)))
    return copied, stuck


async def drain_pass(m: Manager) -> DrainStatus:
    """Copy what the draining nodes still hold alone; -> the status afterwards."""
    draining = set(m.registry.draining)
    if not draining:
        return drain_status([], draining=draining, factor=m.factor)
    chunks = await m.catalog.live_chunks(on_nodes=draining)
    todo = [c for c in chunks if copies_needed(c, draining=draining, factor=m.factor)]
    copied, stuck = await fill_copies(
        m,
        todo,
        excluded=draining,
        why_of=lambda c: f"copied off {_listed(c.holders & draining)} while it drained",
    )
    m.metrics.copied("drain", made=copied, stuck=stuck)
    result = await status(m)
    log.log(
        logging.WARNING if stuck else logging.INFO if todo else logging.DEBUG,
        "drain pass nodes=%s copied=%d stuck=%d chunks_left=%d bytes_left=%d",
        ",".join(sorted(draining)),
        copied,
        stuck,
        result.chunks_left,
        result.bytes_left,
    )
    return result


async def repair_pass(m: Manager) -> tuple[int, int]:
    """Copy live chunks whose copies sit on nodes unready or gone for too long.

    -> (copies made, chunks stuck without a source or target). Draining nodes count as lost
    copies here too, so a drain and a repair agree on what is missing.
    """
    m.metrics.repair_passes.labels("lost_nodes").inc()
    chunks = await m.catalog.live_chunks()
    holders = {n for c in chunks for n in c.holders}
    lost = m.registry.lost_nodes(holders, after_s=m.repair_after_s)
    excluded = lost | set(m.registry.draining)
    todo = [c for c in chunks if copies_needed(c, draining=excluded, factor=m.factor)]
    if not todo:
        log.debug("repair pass chunks=%d lost_nodes=%d nothing to copy", len(chunks), len(lost))
        return 0, 0
    copied, stuck = await fill_copies(
        m,
        todo,
        excluded=excluded,
        why_of=lambda c: f"repair: the copies on {_listed(c.holders & excluded)} were lost",
    )
    m.metrics.copied("repair", made=copied, stuck=stuck)
    if copied:
        m.registry.refill_wakeup.set()  # measures the window with fewer than F copies again
    log.log(
        logging.WARNING if stuck else logging.INFO,
        "repair pass lost_nodes=%s under_replicated=%d copied=%d stuck=%d",
        ",".join(sorted(lost)) or "-",
        len(todo),
        copied,
        stuck,
    )
    return copied, stuck


def _listed(nodes: Iterable[NodeId]) -> str:
    return ",".join(sorted(nodes)) or "-"


def drain_loop(m: Manager) -> Periodic:
    """A drain pass every few seconds while draining, at once on ``m.drain_wakeup``; a repair
    pass of lost nodes' chunks with it every ``repair.lost_scan_s`` (or ``m.repair_after_s`` if
    shorter)."""
    last_repair = time.monotonic()

    async def drain_and_repair() -> None:
        nonlocal last_repair
        if m.registry.draining:
            await drain_pass(m)
        if time.monotonic() - last_repair >= min(m.config.repair.lost_scan_s, m.repair_after_s):
            last_repair = time.monotonic()
            await repair_pass(m)

    return Periodic(
        "drain", drain_and_repair, interval_s=m.config.drain.pass_interval_s, wakeup=m.drain_wakeup
    )
