"""Rebuild a lost catalog from the manifests and snapshot roots stored as chunks on the nodes.

Every committed version's manifest is a chunk on its nodes, so an empty catalog can be filled
again: list the manifest chunks on every node, read each once and check its hash, ask every
node which chunks it holds, and record, per name in order of creation, each version whose data
chunks are all still somewhere. Deleted versions not yet collected come back (their manifests
are still there); version numbers are assigned afresh, 1..n per name.

Every committed snapshot's tree is on the nodes too (snapshot_store.py): each root found is
read, its pieces read and checked, and the snapshot recorded with its id, metadata and entries
when every piece reads back, they hold the root's count of entries, and every chunk the
entries name is on a node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cofre.errors import CofreError, Conflict, Unavailable
from cofre.limits import CHECK_BATCH
from cofre.manager import uncommitted
from cofre.manager.catalog import RecoveredVersion, SnapshotRow
from cofre.manager.catalog_snapshots import RecoveredSnapshot
from cofre.manager.context import Manager
from cofre.manager.registry import NodeState
from cofre.manager.tree_objects import SnapshotRootDoc, decode_piece, decode_root, object_hash
from cofre.models import ChunkHash, Manifest, NodeId
from cofre.protocol.manager_api import RebuildReport, TreeEntry, decode_manifest

log = logging.getLogger(__name__)

# Manifests read at once.
FETCH_PARALLELISM = 8


@dataclass(frozen=True, slots=True)
class FoundManifest:
    """A manifest read from a node, its hash checked."""

    hash: ChunkHash
    length: int
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class Plan:
    versions: list[RecoveredVersion]  # by name, then version number
    skipped_incomplete: int  # manifests with a data chunk that no node holds


def plan(
    manifests: Iterable[FoundManifest], presence: Mapping[ChunkHash, Iterable[NodeId]]
) -> Plan:
    """The versions to record: per name, the complete manifests in order of ``created`` (ties
    by manifest hash), numbered from 1. ``presence``: chunk -> nodes holding it intact. The same
    manifest found on several nodes counts once."""
    holders = {h: frozenset(nodes) for h, nodes in presence.items()}
    unique = {f.hash: f for f in manifests}
    by_name: dict[str, list[FoundManifest]] = {}
    skipped = 0
    for found in unique.values():
        if not all(holders.get(c.hash) for c in found.manifest.chunks):
            skipped += 1
            continue
        by_name.setdefault(found.manifest.name, []).append(found)
    versions: list[RecoveredVersion] = []
    for name in sorted(by_name):
        ordered = sorted(by_name[name], key=lambda f: (f.manifest.created, f.hash))
        for number, found in enumerate(ordered, start=1):
            wanted = {c.hash for c in found.manifest.chunks} | {found.hash}
            versions.append(
                RecoveredVersion(
                    number=number,
                    manifest=found.manifest,
                    manifest_hash=found.hash,
                    manifest_length=found.length,
                    locations={h: holders.get(h, frozenset()) for h in sorted(wanted)},
                )
            )
    return Plan(versions=versions, skipped_incomplete=skipped)


def _refuse_if_not_empty(rows: int) -> None:
    if rows:
        raise Conflict(
            f"the catalog already holds {rows} versions or snapshots; a rebuild only fills an "
            "empty catalog"
        )


def _every_node_ready(m: Manager) -> list[NodeState]:
    """Every known node, all ready: a node left out would lose its copies' locations."""
    known = list(m.registry.nodes.values())
    if not known:
        raise Unavailable("no storage nodes are known; nothing to rebuild from")
    unready = sorted(s.node_id for s in known if not s.ready)
    if unready:
        raise Unavailable(
            f"storage nodes {', '.join(unready)} are not ready; a rebuild needs every node"
        )
    return sorted(known, key=lambda s: s.node_id)


async def _fetch(
    m: Manager, chunk_hash: ChunkHash, sources: list[NodeState]
) -> FoundManifest | None:
    """The manifest from the first holder that returns it with the right hash; None if none."""
    for source in sources:
        try:
            raw = await m.client(source.url).get_chunk(chunk_hash)
            manifest = decode_manifest(raw)
        except CofreError as exc:
            log.warning(
                "rebuild manifest unreadable hash=%s node=%s error=%s",
                chunk_hash,
                source.node_id,
                exc.detail,
            )
            continue
        if manifest.hash != chunk_hash:  # not canonical: not a manifest this system wrote
            log.warning("rebuild chunk is no manifest hash=%s node=%s", chunk_hash, source.node_id)
            continue
        return FoundManifest(chunk_hash, len(raw), manifest)
    return None


async def _present_on(m: Manager, state: NodeState, hashes: list[ChunkHash]) -> set[ChunkHash]:
    client = m.client(state.url)
    present: set[ChunkHash] = set()
    for start in range(0, len(hashes), CHECK_BATCH):
        result = await client.check(hashes[start : start + CHECK_BATCH])
        present.update(result.present)
    return present


async def rebuild(m: Manager) -> RebuildReport:
    """Fill an empty catalog from the manifests on every node; -> what it recovered. Nothing is
    written unless every node answered."""
    # Held throughout: no GC pass deletes anything while the catalog is being rebuilt.
    async with m.catalog_lock:
        _refuse_if_not_empty(await m.catalog.version_rows())
        nodes = _every_node_ready(m)
        listings = await asyncio.gather(*(m.client(n.url).manifests() for n in nodes))
        sources: dict[ChunkHash, list[NodeState]] = {}
        root_sources: dict[ChunkHash, list[NodeState]] = {}
        for node, listing in zip(nodes, listings, strict=True):
            for entry in listing:
                into = root_sources if entry.kind == "snapshot" else sources
                into.setdefault(entry.hash, []).append(node)
        limit = asyncio.Semaphore(FETCH_PARALLELISM)

        async def fetch(h: ChunkHash) -> FoundManifest | None:
            async with limit:
                return await _fetch(m, h, sources[h])

        fetched = await asyncio.gather(*(fetch(h) for h in sorted(sources)))
        readable = [f for f in fetched if f is not None]
        # A catalog that survived with no version may know uploads that never committed:
        # their manifests are no backups and must not come back as versions (uncommitted.py).
        declared = await m.catalog.uncommitted_files()
        found = [f for f in readable if not uncommitted.is_uncommitted(f.manifest, declared)]
        wanted = sorted(
            {c.hash for f in found for c in f.manifest.chunks} | {f.hash for f in found}
        )
        held = await asyncio.gather(*(_present_on(m, n, wanted) for n in nodes))
        presence: dict[ChunkHash, set[NodeId]] = {}
        for node, present in zip(nodes, held, strict=True):
            for h in present:
                presence.setdefault(h, set()).add(node.node_id)
        result = plan(found, presence)
        # Roots of snapshots this catalog removed, whose deletion a node has not confirmed.
        forgotten = set(await m.catalog.orphan_roots())
        roots = {h: srcs for h, srcs in root_sources.items() if h not in forgotten}
        snapshots, snapshots_skipped = await _recover_snapshots(m, nodes, roots)
        await m.catalog.restore(result.versions, snapshots)
    answer = RebuildReport(
        versions=len(result.versions),
        names=len({v.manifest.name for v in result.versions}),
        skipped_incomplete=result.skipped_incomplete,
        skipped_unreadable=len(fetched) - len(readable),
        skipped_uncommitted=len(readable) - len(found),
        nodes_scanned=len(nodes),
        snapshots=len(snapshots),
        snapshots_skipped=snapshots_skipped,
    )
    log.info("catalog rebuilt %s", " ".join(f"{k}={v}" for k, v in answer.model_dump().items()))
    return answer


async def _read_object(m: Manager, chunk_hash: ChunkHash, sources: list[NodeState]) -> bytes | None:
    """The object's bytes from the first holder that returns them with the right hash."""
    for source in sources:
        try:
            raw = await m.client(source.url).get_chunk(chunk_hash)
        except CofreError as exc:
            log.warning(
                "rebuild object unreadable hash=%s node=%s error=%s",
                chunk_hash,
                source.node_id,
                exc.detail,
            )
            continue
        if object_hash(raw) == chunk_hash:
            return raw
    return None


async def _presence(
    m: Manager, nodes: list[NodeState], hashes: list[ChunkHash]
) -> dict[ChunkHash, frozenset[NodeId]]:
    held = await asyncio.gather(*(_present_on(m, n, hashes) for n in nodes))
    out: dict[ChunkHash, set[NodeId]] = {}
    for node, present in zip(nodes, held, strict=True):
        for h in present:
            out.setdefault(h, set()).add(node.node_id)
    return {h: frozenset(n) for h, n in out.items()}


async def _tree(
    m: Manager,
    root: SnapshotRootDoc,
    holders: dict[ChunkHash, frozenset[NodeId]],
    states: dict[NodeId, NodeState],
) -> list[TreeEntry] | None:
    """The root's entries from its pieces, or None when one cannot be read intact or they
    do not hold the root's count."""
    entries: list[TreeEntry] = []
    for h, _ in root.pieces:
        raw = await _read_object(m, h, [states[n] for n in sorted(holders.get(h, ()))])
        if raw is None:
            return None
        try:
            entries += decode_piece(raw)
        except CofreError:
            return None
    if len(entries) != root.entries or len({e.path for e in entries}) != len(entries):
        return None
    return entries


async def _recover_snapshots(
    m: Manager, nodes: list[NodeState], roots: dict[ChunkHash, list[NodeState]]
) -> tuple[list[RecoveredSnapshot], int]:
    """Every snapshot whose root, pieces and chunks are on the nodes; -> them, and how many
    roots were skipped (unreadable, incomplete, or a chunk on no node)."""
    found: list[tuple[ChunkHash, int, SnapshotRootDoc]] = []
    skipped = 0
    for h in sorted(roots):
        raw = await _read_object(m, h, roots[h])
        try:
            doc = None if raw is None else decode_root(raw)
        except CofreError:
            doc = None
        if raw is None or doc is None:
            skipped += 1
            continue
        found.append((h, len(raw), doc))
    states = {n.node_id: n for n in nodes}
    piece_holders = await _presence(m, nodes, sorted({p for _, _, d in found for p, _ in d.pieces}))
    trees: list[tuple[ChunkHash, int, SnapshotRootDoc, list[TreeEntry]]] = []
    for h, length, doc in found:
        entries = await _tree(m, doc, piece_holders, states)
        if entries is None:
            log.warning("rebuild snapshot skipped snapshot=%s reason=tree incomplete", doc.id)
            skipped += 1
            continue
        trees.append((h, length, doc, entries))
    data = sorted({ChunkHash(c) for *_, es in trees for e in es for c, _ in e.chunks})
    holders = piece_holders | await _presence(m, nodes, data)
    roots_held = await _presence(m, nodes, [h for h, *_ in trees])
    holders |= roots_held
    out: list[RecoveredSnapshot] = []
    for h, length, doc, entries in trees:
        if not all(holders.get(ChunkHash(c)) for e in entries for c, _ in e.chunks):
            log.warning("rebuild snapshot skipped snapshot=%s reason=chunks missing", doc.id)
            skipped += 1
            continue
        objects = {h: length} | {p: n for p, n in doc.pieces}
        out.append(
            RecoveredSnapshot(
                row=SnapshotRow(
                    snapshot_id=doc.id,
                    time=doc.time,
                    host=doc.host,
                    tags=tuple(doc.tags),
                    paths=tuple(doc.paths),
                    parent=doc.parent,
                    state="committed",
                    created=doc.time,
                    expires=doc.time,
                    committed=doc.time,
                    entries=doc.entries,
                    files=doc.files,
                    bytes=doc.bytes,
                ),
                root=h,
                entries=entries,
                objects=objects,
                locations=holders,
            )
        )
    return out, skipped
