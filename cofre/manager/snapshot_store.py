"""A snapshot's tree on the storage nodes: written at its commit, deleted when it goes.

The manager writes the objects itself (tree_objects.py): it holds the entries already (they
arrived in batches), they are metadata, not file bytes, and so the client's protocol is
unchanged. At commit, before the catalog transaction: the entries are read from the catalog in
path order and cut into pieces, each batch of pieces is pinned to the open snapshot (under the
commit lock, so GC keeps them from then on) and written to F nodes placed as an upload's copies
are; the root last. The commit transaction then records their copies and holds them to F like
any chunk, and makes the snapshot visible. Their rows in ``snapshot_chunks`` make them live for
GC, repair, drain, fsck and where, as the data chunks are.

A crash between the writes and the commit leaves a root of a snapshot still open: the open
snapshot expires and is removed, which deletes the root. Only if the catalog is lost as well
can a rebuild find that root, and it recovers it only when every piece reads back with the
root's entry count and every chunk the entries name is on a node: then it is a complete tree
whose data is all stored (restic's rule: a snapshot exists when its root does). A root is
written only once the entries sent match the count the client committed, so a root never
describes a tree with a missing batch.

A removed snapshot (delete, forget, expiry) leaves its root's hash in ``snapshot_roots``;
``delete_orphan_roots`` deletes it from every node and only then drops the row (GC passes try
again while a node is not ready), so a forgotten snapshot does not come back in a rebuild.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from cofre.errors import CofreError, Unavailable
from cofre.limits import CHECK_BATCH, MAX_ENTRY_BATCH, MAX_FRAMED_BYTES, MAX_FRAMED_CHUNKS
from cofre.manager.catalog import SnapshotRow
from cofre.manager.context import Manager
from cofre.manager.placement import NodeView, choose
from cofre.manager.tree_objects import (
    PIECE_BYTES,
    Piece,
    PieceCutter,
    SnapshotRootDoc,
    encode_root,
    object_hash,
)
from cofre.models import ChunkHash, NodeId, SnapshotId, UploadId
from cofre.protocol.framing import encode_frames
from cofre.protocol.manager_api import EntryView
from cofre.tickets import Ticket

log = logging.getLogger(__name__)

# Seconds a write ticket for tree objects is valid.
WRITE_TICKET_TTL_S = 300.0
# Pieces written per framed request (and pinned per transaction).
FLUSH_BYTES = min(MAX_FRAMED_BYTES // 2, 8 * PIECE_BYTES)


@dataclass(frozen=True, slots=True)
class StoredTree:
    root: ChunkHash
    # Every object (pieces and root): its length and the nodes that stored it.
    objects: Mapping[ChunkHash, tuple[int, Sequence[NodeId]]]


async def _pages(m: Manager, snapshot_id: SnapshotId) -> AsyncIterator[list[EntryView]]:
    """Every entry of the snapshot, in path order, a page at a time."""
    after: str | None = None
    while True:
        page, after = await m.catalog.snapshot_entries(
            snapshot_id, under=None, after=after, limit=MAX_ENTRY_BATCH
        )
        yield page
        if after is None:
            return


def _holders(m: Manager, size: int) -> tuple[NodeView, ...]:
    p = m.config.placement
    placement = choose(
        m.registry.views(),
        size=size,
        weights=m.weights,
        factor=p.replication_factor,
        primary_keeps_copy=True,
        min_free_bytes=p.min_free_bytes,
    )
    return placement.copy_holders


async def _write(
    m: Manager,
    snapshot_id: SnapshotId,
    holders: Sequence[NodeView],
    batch: list[tuple[ChunkHash, bytes]],
    *,
    root: ChunkHash | None,
) -> None:
    """Pin ``batch`` to the open snapshot, then store it durably on every holder."""
    async with m.catalog_lock:
        await m.catalog.pin_snapshot_objects(
            snapshot_id, {h: len(d) for h, d in batch}, root=root, now=time.time()
        )
    body = encode_frames(batch)
    upload_id = UploadId("tree-" + secrets.token_urlsafe(12))

    async def put(node: NodeView) -> None:
        ticket = Ticket(upload_id, (node.node_id,), time.time() + WRITE_TICKET_TTL_S)
        await m.client(node.url).put_chunks(body, ticket=ticket.sign(m.ticket_key))

    await asyncio.gather(*(put(n) for n in holders))


async def store(m: Manager, row: SnapshotRow) -> StoredTree:
    """Write the open snapshot's tree (pieces, then root) with F copies; -> what to record at
    commit. Memory: a page of entries, the piece being cut and one batch of pieces. Raises the
    first node's error; what was written stays pinned to the open snapshot (a retried commit
    writes the same objects)."""
    # Sized for placement by a generous guess: the pieces' bytes are not known yet.
    holders = _holders(m, row.entries * 256 + 4096)
    ids = tuple(n.node_id for n in holders)
    objects: dict[ChunkHash, tuple[int, Sequence[NodeId]]] = {}
    order: list[tuple[ChunkHash, int]] = []
    batch: list[tuple[ChunkHash, bytes]] = []
    size = 0

    async def take(piece: Piece | None) -> None:
        nonlocal batch, size
        if piece is None:
            return
        h, data, _ = piece
        order.append((h, len(data)))
        if h in objects:  # the same run of entries twice: one object
            return
        objects[h] = (len(data), ids)
        if batch and (size + len(data) > FLUSH_BYTES or len(batch) >= MAX_FRAMED_CHUNKS):
            await _write(m, row.snapshot_id, holders, batch, root=None)
            batch, size = [], 0
        batch.append((h, data))
        size += len(data)

    cutter = PieceCutter()
    async for page in _pages(m, row.snapshot_id):
        for entry in page:
            await take(cutter.add(entry))
    await take(cutter.finish())
    if batch:
        await _write(m, row.snapshot_id, holders, batch, root=None)
    root = encode_root(
        SnapshotRootDoc(
            cofre_snapshot=1,
            id=row.snapshot_id,
            time=row.time,
            host=row.host,
            tags=list(row.tags),
            paths=list(row.paths),
            parent=row.parent,
            entries=row.entries,
            files=row.files,
            bytes=row.bytes,
            pieces=order,
        )
    )
    root_hash = object_hash(root)
    await _write(m, row.snapshot_id, holders, [(root_hash, root)], root=root_hash)
    objects[root_hash] = (len(root), ids)
    log.info(
        "snapshot tree stored snapshot=%s pieces=%d bytes=%d nodes=%s",
        row.snapshot_id,
        len(order),
        sum(n for n, _ in objects.values()),
        ",".join(ids),
    )
    return StoredTree(root=root_hash, objects=objects)


async def delete_orphan_roots(m: Manager) -> int:
    """Delete the root objects of removed snapshots from every node; -> how many are gone
    everywhere. A root stays listed while a known node is not ready or fails to answer."""
    roots = await m.catalog.orphan_roots()
    if not roots:
        return 0
    nodes = list(m.registry.nodes.values())
    if not nodes or any(not s.ready for s in nodes):
        log.info("snapshot roots kept for later roots=%d reason=a node is not ready", len(roots))
        return 0
    done: list[ChunkHash] = []
    for start in range(0, len(roots), CHECK_BATCH):
        batch = roots[start : start + CHECK_BATCH]
        try:
            await asyncio.gather(*(m.client(s.url).delete_chunks(batch) for s in nodes))
        except CofreError as exc:
            log.warning("snapshot roots not deleted roots=%d error=%s", len(batch), exc.detail)
            continue
        done += batch
    await m.catalog.roots_deleted(done)
    log.info("snapshot roots deleted roots=%d", len(done))
    return len(done)


async def forget_roots_soon(m: Manager) -> None:
    """After snapshots were removed: delete their roots now when every node answers (a GC
    pass retries otherwise)."""
    try:
        await delete_orphan_roots(m)
    except (CofreError, Unavailable, OSError) as exc:
        log.warning("snapshot roots left for GC error=%s", exc)
