"""fsck (are the copies the catalog promises really there, and intact?) and cluster stats."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from cofre.errors import CofreError, NotFound
from cofre.limits import CHECK_BATCH
from cofre.manager.catalog import VersionRow
from cofre.manager.context import Manager
from cofre.models import ChunkHash, ChunkRef, NodeId
from cofre.protocol.base import ChunkStatus, CopyState
from cofre.protocol.client import NodeClient
from cofre.protocol.manager_api import (
    ChunkHealth,
    ChunkWhere,
    ClusterStats,
    CopyWhere,
    FileHealth,
    FsckReport,
    FsckRun,
    FsckSummary,
    SnapshotHealth,
    VersionBase,
    VersionInfo,
    WhereReport,
)
from cofre.protocol.node_api import CheckResult

log = logging.getLogger(__name__)

STATUSES: tuple[ChunkStatus, ...] = ("ok", "under_replicated", "missing", "corrupt")


def classify(*, good: int, corrupt: int, factor: int) -> ChunkStatus:
    """ok: F good copies; corrupt: a bad copy and fewer than F good; else by good copies."""
    if good >= factor:
        return "ok"
    if corrupt:
        return "corrupt"
    return "under_replicated" if good > 0 else "missing"


async def check_batches(
    client: NodeClient,
    hashes: list[ChunkHash],
    *,
    lengths: Mapping[ChunkHash, int],
    verify: bool = False,
    touch: bool = False,
) -> AsyncIterator[CheckResult]:
    """A node's answers about ``hashes`` in batches, each copy's size checked against
    ``lengths`` where it has one (a copy of another size is corrupt)."""
    for start in range(0, len(hashes), CHECK_BATCH):
        batch = hashes[start : start + CHECK_BATCH]
        sized = [h for h in batch if h in lengths]
        unsized = [h for h in batch if h not in lengths]
        if sized:
            yield await client.check(
                sized, lengths=[lengths[h] for h in sized], verify=verify, touch=touch
            )
        if unsized:
            yield await client.check(unsized, verify=verify, touch=touch)


async def _check_node(
    m: Manager,
    url: str,
    hashes: list[ChunkHash],
    *,
    lengths: Mapping[ChunkHash, int],
    verify: bool,
    touch: bool,
) -> tuple[set[ChunkHash], set[ChunkHash]]:
    """-> (present and intact, corrupt) on one node."""
    present: set[ChunkHash] = set()
    corrupt: set[ChunkHash] = set()
    async for result in check_batches(
        m.client(url), hashes, lengths=lengths, verify=verify, touch=touch
    ):
        corrupt.update(result.corrupt)
        present.update(result.present)
    return present - corrupt, corrupt


@dataclass(frozen=True, slots=True)
class CopyCheck:
    """What the nodes said about the copies the catalog records."""

    # per hash: (nodes with a good copy, nodes with a corrupt copy)
    copies: dict[ChunkHash, tuple[set[NodeId], set[NodeId]]]
    # the nodes that answered; a copy on any other node is of unknown state
    answered: set[NodeId]

    def good(self, chunk_hash: ChunkHash) -> set[NodeId]:
        return self.copies.get(chunk_hash, (set(), set()))[0]


async def check_copies(
    m: Manager,
    hashes: Iterable[ChunkHash],
    *,
    verify: bool,
    touch: bool = False,
    locations: Mapping[ChunkHash, Iterable[NodeId]] | None = None,
    ask_all_about_unseen: bool = True,
) -> CopyCheck:
    """Ask every ready node about the chunks the catalog places on it, or ``locations`` when
    the caller read them already (``touch``: and mark them used now). A node that is not ready,
    or fails to answer, confirms nothing. Each copy's size is checked against the catalog's
    length: a truncated copy is corrupt even without ``verify``. ``ask_all_about_unseen``:
    chunks no recorded copy confirms are asked of every ready node (see below).
    """
    if locations is None:
        locations = await m.catalog.locations(hashes)
    lengths = await m.catalog.lengths(locations)
    by_node: dict[NodeId, list[ChunkHash]] = {}
    for h, nodes in locations.items():
        for n in nodes:
            by_node.setdefault(n, []).append(h)
    ready = {s.node_id: s.url for s in m.registry.ready_nodes()}
    asked = [n for n in by_node if n in ready]
    results = await asyncio.gather(
        *(
            _check_node(m, ready[n], by_node[n], lengths=lengths, verify=verify, touch=touch)
            for n in asked
        ),
        return_exceptions=True,
    )
    out: dict[ChunkHash, tuple[set[NodeId], set[NodeId]]] = {h: (set(), set()) for h in locations}
    answered: set[NodeId] = set()
    for node_id, result in zip(asked, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, CofreError):
                raise result
            log.warning("copy check failed node=%s error=%s", node_id, result.detail)
            continue
        answered.add(node_id)
        good, bad = result
        for h in good:
            if h in out:
                out[h][0].add(node_id)
        for h in bad:
            if h in out:
                out[h][1].add(node_id)
    # A chunk no recorded copy confirms may still rot on a node whose location repair forgot
    # (it counts a corrupt copy as lost): ask every ready node about those few, so that a
    # chunk whose every copy rotted is reported corrupt, not missing.
    unseen = [h for h, (good, bad) in out.items() if not good and not bad]
    others = list(ready)  # the recorded holders, asked already, said nothing of these
    if unseen and others and ask_all_about_unseen:
        more = await asyncio.gather(
            *(
                _check_node(m, ready[n], unseen, lengths=lengths, verify=verify, touch=False)
                for n in others
            ),
            return_exceptions=True,
        )
        for node_id, result in zip(others, more, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, CofreError):
                    raise result
                continue
            answered.add(node_id)
            for h in result[0]:
                out[h][0].add(node_id)
            for h in result[1]:
                out[h][1].add(node_id)
    return CopyCheck(copies=out, answered=answered)


async def fsck(m: Manager, *, name: str | None, verify: bool) -> FsckReport:
    versions = await m.catalog.versions(name=name)
    if name is not None and not versions:
        raise NotFound(f"no live version of {name!r}")
    contents: list[tuple[VersionRow, list[ChunkRef]]] = []
    for row in versions:
        found = await m.catalog.version(row.name, row.version)
        if found is not None:
            contents.append(found)
    all_hashes: set[ChunkHash] = set()
    for row, chunks in contents:
        all_hashes.update(c.hash for c in chunks)
        all_hashes.add(row.manifest_hash)
    # A whole-catalog fsck covers every committed snapshot's chunks too.
    snapshot_chunks = await m.catalog.snapshot_chunk_sets() if name is None else {}
    for held in snapshot_chunks.values():
        all_hashes.update(held)
    copies = (await check_copies(m, all_hashes, verify=verify)).copies
    lengths = await m.catalog.lengths(
        [row.manifest_hash for row, _ in contents]
        + [h for held in snapshot_chunks.values() for h in held]
    )

    def health(h: ChunkHash, length: int) -> ChunkHealth:
        good, bad = copies.get(h, (set(), set()))
        return ChunkHealth(
            hash=h,
            length=length,
            nodes=sorted(good),
            corrupt_on=sorted(bad),
            status=classify(good=len(good), corrupt=len(bad), factor=m.factor),
        )

    if name is None:
        m.metrics.fsck_states(Counter(health(h, 0).status for h in all_hashes))
    by_status: Counter[str] = Counter()
    files = []
    for row, chunks in contents:
        entries = [health(c.hash, c.length) for c in chunks]
        manifest = health(row.manifest_hash, lengths.get(row.manifest_hash, 0))
        by_status.update(e.status for e in entries)
        healthy = manifest.status == "ok" and all(e.status == "ok" for e in entries)
        files.append(
            FileHealth(
                name=row.name,
                version=row.version,
                healthy=healthy,
                manifest=manifest,
                chunks=entries,
            )
        )
    snapshots = []
    for sid, held in snapshot_chunks.items():
        states = [health(h, lengths.get(h, 0)) for h in sorted(held)]
        by_status.update(c.status for c in states)
        unhealthy = [c for c in states if c.status != "ok"]
        snapshots.append(
            SnapshotHealth(
                snapshot_id=sid, healthy=not unhealthy, chunks=len(held), unhealthy=unhealthy
            )
        )
    summary = FsckSummary(
        files=len({row.name for row, _ in contents}),
        versions=len(contents),
        snapshots=len(snapshots),
        chunks=sum(by_status.values()),
        **{s: by_status[s] for s in STATUSES},
    )
    healthy_all = all(f.healthy for f in files) and all(s.healthy for s in snapshots)
    log.info(
        "fsck name=%r verify=%s versions=%d snapshots=%d healthy=%s %s",
        name,
        verify,
        len(contents),
        len(snapshots),
        healthy_all,
        " ".join(f"{s}={by_status[s]}" for s in STATUSES),
    )
    if name is None:
        m.last_fsck = FsckRun(at=time.time(), verify=verify, healthy=healthy_all, summary=summary)
    return FsckReport(healthy=healthy_all, summary=summary, files=files, snapshots=snapshots)


async def cluster_stats(m: Manager) -> ClusterStats:
    ready = m.registry.ready_nodes()
    used = sum(s.stats.stored_bytes for s in ready if s.stats)
    free = sum(s.stats.free_bytes for s in ready if s.stats)
    files, versions = await m.catalog.counts()
    ready_ids = {s.node_id for s in ready}
    on_ready = [len(c.holders & ready_ids) for c in await m.catalog.live_chunks()]
    m.metrics.catalog_states(on_ready, factor=m.factor)
    under = sum(1 for n in on_ready if n < m.factor)
    return ClusterStats(
        nodes_ready=len(ready),
        nodes_total=len(m.registry.nodes),
        used_bytes=used,
        capacity_bytes=used + free,
        files=files,
        versions=versions,
        under_replicated_chunks=under,
        missing_chunks=sum(1 for n in on_ready if n == 0),
    )


def copy_state(
    node: NodeId, *, good: set[NodeId], bad: set[NodeId], answered: set[NodeId]
) -> CopyState:
    """What one recorded copy is now: ok, corrupt, missing (its node says so) or unreachable
    (its node is not ready or did not answer)."""
    if node in good:
        return "ok"
    if node in bad:
        return "corrupt"
    return "missing" if node in answered else "unreachable"


def version_base(row: VersionRow) -> VersionBase:
    """What every answer about one version says of it; answers extend it
    (``Model(**version_base(row).model_dump(), ...)``)."""
    return VersionBase(
        name=row.name,
        version=row.version,
        size=row.size,
        mode=row.mode,
        mtime=row.mtime,
        created=row.created,
    )


def version_info(row: VersionRow) -> VersionInfo:
    return VersionInfo(**version_base(row).model_dump(), chunks=row.chunk_count)


def no_live(name: str, version: int | None) -> NotFound:
    which = f"version {version} of {name!r}" if version else f"{name!r}"
    return NotFound(f"no live {which}")


async def live_version(
    m: Manager, name: str, version: int | None
) -> tuple[VersionRow, list[ChunkRef]]:
    """A live version (the latest without ``version``) and its chunks; NotFound if none."""
    found = await m.catalog.version(name, version)
    if found is None:
        raise no_live(name, version)
    return found


async def where(m: Manager, *, name: str, version: int | None) -> WhereReport:
    """Every chunk of one version, each copy's node, its state now and why it is there."""
    row, chunks = await live_version(m, name, version)
    lengths = await m.catalog.lengths([row.manifest_hash])
    manifest = ChunkRef(row.manifest_hash, lengths.get(row.manifest_hash, 0))
    *listed, manifest_where = await chunks_where(m, [*chunks, manifest])
    return WhereReport(
        **version_base(row).model_dump(),
        replication_factor=m.factor,
        manifest=manifest_where,
        chunks=listed,
    )


async def chunks_where(m: Manager, chunks: list[ChunkRef]) -> list[ChunkWhere]:
    """Each chunk's recorded copies, their state now and why they are there, in order."""
    hashes = {c.hash for c in chunks}
    # The copies to ask about are the ones read with their reasons: one snapshot, so a copy
    # recorded meanwhile (a drain, a repair) is never listed without having been asked about.
    reasons = await m.catalog.copy_reasons(hashes)
    checked = await check_copies(
        m, hashes, verify=False, locations={h: list(nodes) for h, nodes in reasons.items()}
    )
    copies = checked.copies

    def entry(chunk_hash: ChunkHash, length: int) -> ChunkWhere:
        good, bad = copies.get(chunk_hash, (set(), set()))
        recorded = reasons.get(chunk_hash, {})
        listed = []
        for node in sorted(set(recorded) | good | bad):
            why, since = recorded.get(node, ("", 0.0))
            listed.append(
                CopyWhere(
                    node_id=node,
                    state=copy_state(node, good=good, bad=bad, answered=checked.answered),
                    why=why or "not recorded (an older catalog, or found by a check)",
                    since=since or None,
                )
            )
        return ChunkWhere(
            hash=chunk_hash,
            length=length,
            status=classify(good=len(good), corrupt=len(bad), factor=m.factor),
            copies=listed,
        )

    return [entry(c.hash, c.length) for c in chunks]
