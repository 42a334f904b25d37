"""Dedup across placement: chunks already stored with F copies need not be sent again.

An upload's own nodes dedup what they hold (the primary's `missing`). A re-put of a file is
usually placed elsewhere, since the nodes that took the first copy now store more bytes, so
without this every unchanged chunk would travel and be stored F more times. The manager knows
where every catalogued chunk lives: a chunk with at least F copies on ready, non-draining nodes,
each confirmed present now, is "known" and stays where it is. The client still never learns
where (it gets hashes back, no nodes), and the commit records the version over those copies.

A known chunk is pinned to the upload in the catalog, under ``Manager.catalog_lock``, checked
without it but again under it if GC deleted anything meanwhile: a GC pass either deleted before
(then the chunk is not known) or runs after and keeps it, and its locations, until the upload
ends. Confirmations also touch the chunk on its nodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence

from cofre.errors import Conflict, NotFound
from cofre.manager.context import Manager
from cofre.manager.health import check_copies
from cofre.models import ChunkHash, NodeId, UploadId

log = logging.getLogger(__name__)


def enough_copies(
    good: Mapping[ChunkHash, Collection[NodeId]], *, usable: Collection[NodeId], factor: int
) -> dict[ChunkHash, frozenset[NodeId]]:
    """hash -> its confirmed copies on usable nodes, for hashes with at least ``factor``."""
    out: dict[ChunkHash, frozenset[NodeId]] = {}
    for chunk_hash, nodes in good.items():
        holders = frozenset(n for n in nodes if n in usable)
        if len(holders) >= factor:
            out[chunk_hash] = holders
    return out


async def held_elsewhere(
    m: Manager, hashes: Iterable[ChunkHash]
) -> dict[ChunkHash, frozenset[NodeId]]:
    """Chunks with F confirmed copies on ready, non-draining nodes -> those nodes.

    Call through ``m.checked_under_lock``. A node that cannot be asked confirms nothing.
    """
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return {}
    # Only the copies the catalog records count (a first backup's chunks have none, and no
    # node is asked about them): asking every node about the rest would find nothing usable
    # for most and cost a request per node per batch.
    checked = await check_copies(m, wanted, verify=False, touch=True, ask_all_about_unseen=False)
    usable = {s.node_id for s in m.registry.ready_nodes()} - m.registry.draining
    good = {h: nodes for h, (nodes, _) in checked.copies.items()}
    return enough_copies(good, usable=usable, factor=m.factor)


async def known_chunks(
    m: Manager, upload_id: UploadId, hashes: Sequence[ChunkHash]
) -> list[ChunkHash]:
    """Those of ``hashes`` the upload need not send, in the order asked."""
    session = await m.catalog.session(upload_id)
    if session is None:
        raise NotFound(f"no upload {upload_id}")
    if session.state != "open":
        raise Conflict(f"upload {upload_id} is {session.state}")
    if time.time() > session.expires:
        raise Conflict(f"upload {upload_id} expired")
    async with m.checked_under_lock(lambda: held_elsewhere(m, hashes)) as held:
        known = [h for h in dict.fromkeys(hashes) if h in held]
        await m.catalog.pin(upload_id, known)
    log.debug("known chunks upload=%s asked=%d known=%d", upload_id, len(hashes), len(known))
    return known
