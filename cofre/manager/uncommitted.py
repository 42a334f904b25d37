"""Manifests on the nodes that are no version: a lost catalog's, or uploads that never committed.

A client stores an upload's manifest as a chunk before it commits, so an upload that dies or
is aborted after that leaves a manifest no version names. A lost catalog leaves the same
thing. The rule that tells them apart: a manifest is *uncommitted* when this catalog recorded
an upload, not committed (open, aborted or expired), that declared a file of the manifest's
name and size; every other manifest that is no version here is *unexplained*, and only those
mean a lost catalog. A fresh catalog records no upload while unexplained manifests are held
(the create is refused first), so a lost catalog has no sessions to excuse its manifests, and
an uncommitted upload's session is kept while the catalog holds no version (uploads.py), so its
manifest stays explained until GC deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from cofre.errors import CofreError
from cofre.manager.context import Manager
from cofre.manager.registry import NodeState
from cofre.models import ChunkHash, Manifest
from cofre.protocol.manager_api import decode_manifest

log = logging.getLogger(__name__)

# Manifests read at once.
FETCH_PARALLELISM = 8


def is_uncommitted(manifest: Manifest, declared: set[tuple[str, int]]) -> bool:
    """Whether ``manifest`` is one an upload in ``declared`` (uncommitted_files) may have sent."""
    return (manifest.name, manifest.size) in declared


@dataclass(frozen=True, slots=True)
class Survey:
    held: frozenset[ChunkHash]  # manifests the asked nodes hold
    uncommitted: frozenset[ChunkHash]  # of those, manifests of uploads never committed

    @property
    def unexplained(self) -> frozenset[ChunkHash]:
        return self.held - self.uncommitted


async def _read(m: Manager, chunk_hash: ChunkHash, sources: list[NodeState]) -> Manifest | None:
    for source in sources:
        try:
            manifest = decode_manifest(await m.client(source.url).get_chunk(chunk_hash))
        except CofreError as exc:
            log.debug(
                "manifest unreadable hash=%s node=%s error=%s", chunk_hash, source.node_id, exc
            )
            continue
        if manifest.hash == chunk_hash:
            return manifest
    return None


async def survey(m: Manager, nodes: Iterable[NodeState], *, strict: bool = False) -> Survey:
    """The manifests ``nodes`` hold, and which of them are uncommitted uploads'. A node that
    cannot be asked is left out (its error raised if ``strict``); a manifest that cannot be
    read counts as unexplained."""
    asked = list(nodes)
    listings = await asyncio.gather(
        *(m.client(s.url).manifests() for s in asked), return_exceptions=True
    )
    sources: dict[ChunkHash, list[NodeState]] = {}
    for node, listing in zip(asked, listings, strict=True):
        if isinstance(listing, BaseException):
            if strict or not isinstance(listing, CofreError):
                raise listing
            continue
        for entry in listing:
            sources.setdefault(entry.hash, []).append(node)
    # Roots of snapshots this catalog removed (their deletion from a node not yet confirmed)
    # are explained; every other snapshot root counts like an unexplained manifest.
    held = frozenset(sources) - set(await m.catalog.orphan_roots())
    declared = await m.catalog.uncommitted_files() if held else set()
    if not declared:  # nothing could excuse them: no need to read them
        return Survey(held=held, uncommitted=frozenset())
    limit = asyncio.Semaphore(FETCH_PARALLELISM)

    async def read(h: ChunkHash) -> Manifest | None:
        async with limit:
            return await _read(m, h, sources[h])

    hashes = sorted(held)
    read_back = await asyncio.gather(*(read(h) for h in hashes))
    uncommitted = frozenset(
        h
        for h, mf in zip(hashes, read_back, strict=True)
        if mf is not None and is_uncommitted(mf, declared)
    )
    return Survey(held=held, uncommitted=uncommitted)
