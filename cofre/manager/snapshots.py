"""Tree snapshots: open, fill, commit in one transaction; list, read, delete, forget.

A backup of a tree opens a snapshot, sends the bytes of the files that need it through ordinary
uploads (placement, tickets, `known`, the primary's relay) and closes each upload by committing
its chunks into the snapshot instead of a manifest (checked on the upload's nodes exactly as a
file commit is), sends the tree's entries in batches, and commits. The commit is one catalog
transaction that refuses chunks the catalog does not hold with F copies, naming them.

Freeing space takes no lock a backup waits on for long: removing snapshots is one short
transaction, and GC deletes chunks in batches under the commit lock (gc.py). A backup racing a
forget and a GC completes because everything it will reference is live throughout: chunks it
uploads are protected by its open upload (the GC cutoff, `known` pins) until the chunk commit
records them for the open snapshot, under the commit lock, in the same transaction that closes
the upload; its parent's chunks (the unchanged files it re-uses without reading) are pinned to
the open snapshot when it is opened; the snapshot's commit checks, under the commit lock, that
every chunk is still recorded with F copies.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from cofre.errors import Conflict, NotFound
from cofre.manager import health, retention, snapshot_store, uploads
from cofre.manager.catalog import SnapshotRow
from cofre.manager.context import Manager
from cofre.models import ChunkHash, ChunkRef, SnapshotId, UploadId
from cofre.protocol.manager_api import (
    ChunksCommitted,
    EntriesAdded,
    EntryPage,
    EntryWhere,
    ForgetGroup,
    ForgetReport,
    ForgetRequest,
    KeptSnapshot,
    SnapshotCreate,
    SnapshotFilter,
    SnapshotInfo,
    SnapshotOpened,
    TreeEntry,
)

log = logging.getLogger(__name__)


def info(row: SnapshotRow) -> SnapshotInfo:
    return SnapshotInfo(
        snapshot_id=row.snapshot_id,
        short_id=row.snapshot_id[:8],
        time=row.time,
        host=row.host,
        tags=list(row.tags),
        paths=list(row.paths),
        parent=row.parent,
        committed=row.committed if row.committed is not None else row.created,
        entries=row.entries,
        files=row.files,
        bytes=row.bytes,
    )


def _expiry(m: Manager) -> float:
    return time.time() + m.config.upload.session_ttl_s


async def open_snapshot(m: Manager, body: SnapshotCreate) -> SnapshotOpened:
    await uploads.refuse_over_a_lost_catalog(m)
    now = time.time()
    row = SnapshotRow(
        snapshot_id=SnapshotId(secrets.token_hex(16)),
        time=body.time,
        host=body.host,
        tags=tuple(dict.fromkeys(body.tags)),
        paths=tuple(body.paths),
        parent=body.parent,
        state="open",
        created=now,
        expires=now + m.config.upload.session_ttl_s,
    )
    # Under the commit lock: the parent's chunks are pinned either before a GC pass decides
    # (then it keeps them) or after one finished (then what it deleted is not recorded).
    async with m.catalog_lock:
        await m.catalog.open_snapshot(row)
    log.info(
        "snapshot opened snapshot=%s host=%r paths=%d parent=%s",
        row.snapshot_id,
        row.host,
        len(row.paths),
        row.parent,
    )
    return SnapshotOpened(snapshot_id=row.snapshot_id, expires=row.expires)


async def commit_chunks(
    m: Manager, snapshot_id: SnapshotId, upload_id: UploadId, chunks: Sequence[ChunkRef]
) -> ChunksCommitted:
    """Close an upload by recording its chunks (sent, or `known` elsewhere) for the open
    snapshot, once every copy is confirmed; a retry whose answer was lost answers again."""
    session = await m.catalog.session(upload_id)
    hashes = list(dict.fromkeys(c.hash for c in chunks))
    if (
        session is not None
        and session.state == "committed"
        and await m.catalog.snapshot_holds(snapshot_id, hashes)
    ):
        return ChunksCommitted(snapshot_id=snapshot_id, chunks=len(hashes))
    session = uploads.open_session_or_raise(session, upload_id)
    if await m.catalog.snapshot(snapshot_id) is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    lengths: dict[ChunkHash, int] = {}
    for c in chunks:
        if lengths.setdefault(c.hash, c.length) != c.length:
            raise Conflict(f"chunk {c.hash} is given two lengths")
    async with m.checked_under_lock(
        lambda: uploads.confirm_copies(m, session, hashes, lengths)
    ) as located:
        count = await m.catalog.attach_snapshot_chunks(
            snapshot_id, session, lengths, located, now=time.time(), expires=_expiry(m)
        )
    m.registry.release(upload_id)
    log.info(
        "snapshot chunks committed snapshot=%s upload=%s chunks=%d",
        snapshot_id,
        upload_id,
        len(hashes),
    )
    await uploads.close_relay(m, session)
    return ChunksCommitted(snapshot_id=snapshot_id, chunks=count)


async def add_entries(
    m: Manager, snapshot_id: SnapshotId, entries: Sequence[TreeEntry]
) -> EntriesAdded:
    expires = _expiry(m)
    count = await m.catalog.add_snapshot_entries(
        snapshot_id, entries, now=time.time(), expires=expires
    )
    return EntriesAdded(snapshot_id=snapshot_id, entries=count, expires=expires)


async def _store_tree(
    m: Manager, snapshot_id: SnapshotId, *, sent: int
) -> snapshot_store.StoredTree | None:
    """The tree's objects written to the nodes, when the commit can succeed on the entries
    sent (else the commit transaction reports why, and no root is written)."""
    row = await m.catalog.snapshot(snapshot_id)
    if row is None or row.state != "open" or row.entries != sent:
        return None
    return await snapshot_store.store(m, row)


async def commit(m: Manager, snapshot_id: SnapshotId, *, sent: int) -> SnapshotInfo:
    tree = await _store_tree(m, snapshot_id, sent=sent)
    # Under the commit lock: the check that every chunk is recorded with F copies and the
    # insert that makes them live are one step for GC.
    async with m.catalog_lock:
        row = await m.catalog.commit_snapshot(
            snapshot_id,
            sent=sent,
            factor=m.factor,
            now=time.time(),
            objects=None if tree is None else tree.objects,
        )
    m.catalog_seen_versions = True
    log.info(
        "snapshot committed snapshot=%s host=%r entries=%d files=%d bytes=%d",
        row.snapshot_id,
        row.host,
        row.entries,
        row.files,
        row.bytes,
    )
    return info(row)


async def resolve(m: Manager, ref: str, filters: SnapshotFilter) -> SnapshotRow:
    return await m.catalog.resolve_snapshot(
        ref, host=filters.host, tags=filters.tags, path=filters.path
    )


async def entries(
    m: Manager, ref: str, *, under: str | None, after: str | None, limit: int
) -> EntryPage:
    row = await m.catalog.resolve_snapshot(ref)
    page, next_after = await m.catalog.snapshot_entries(
        row.snapshot_id, under=under, after=after, limit=limit
    )
    return EntryPage(snapshot_id=row.snapshot_id, entries=page, next_after=next_after)


async def delete(m: Manager, ref: str) -> list[SnapshotId]:
    """Remove a committed snapshot, or abort an open one; GC frees what nothing else needs."""
    row = await m.catalog.resolve_snapshot(ref, open_too=True)
    removed = await m.catalog.remove_snapshots([row.snapshot_id])
    if not removed:
        raise NotFound(f"no snapshot {ref}")
    log.info("snapshot removed snapshot=%s state=%s", row.snapshot_id, row.state)
    await snapshot_store.forget_roots_soon(m)
    return removed


def _group_key(
    row: SnapshotRow, by: Sequence[str]
) -> tuple[str | None, tuple[str, ...] | None, tuple[str, ...] | None]:
    return (
        row.host if "host" in by else None,
        tuple(sorted(row.paths)) if "paths" in by else None,
        tuple(sorted(row.tags)) if "tags" in by else None,
    )


async def forget(m: Manager, rules: ForgetRequest) -> ForgetReport:
    """Apply keep rules per group (retention.py); remove what they do not keep in one
    transaction, unless a dry run."""
    keep = retention.KeepRules(
        last=rules.keep_last,
        hourly=rules.keep_hourly,
        daily=rules.keep_daily,
        weekly=rules.keep_weekly,
        monthly=rules.keep_monthly,
        yearly=rules.keep_yearly,
        within_s=rules.keep_within,
        tags=frozenset(rules.keep_tags),
    )
    rows = [
        r
        for r in await m.catalog.snapshots(host=rules.host, tags=rules.tags)
        if set(rules.paths) <= set(r.paths)
    ]
    groups: dict[
        tuple[str | None, tuple[str, ...] | None, tuple[str, ...] | None], list[SnapshotRow]
    ] = {}
    for r in rows:
        groups.setdefault(_group_key(r, rules.group_by), []).append(r)
    tz = ZoneInfo(rules.timezone)
    reports = []
    doomed: list[SnapshotId] = []
    for (host, paths, tags), members in sorted(groups.items(), key=lambda g: repr(g[0])):
        decision = retention.apply(members, keep, tz=tz)
        doomed += [s.snapshot_id for s in decision.remove]
        reports.append(
            ForgetGroup(
                host=host,
                paths=None if paths is None else list(paths),
                tags=None if tags is None else list(tags),
                keep=[KeptSnapshot(snapshot=info(s), reasons=why) for s, why in decision.keep],
                remove=[info(s) for s in decision.remove],
            )
        )
    removed = [] if rules.dry_run else await m.catalog.remove_snapshots(doomed)
    if removed:
        await snapshot_store.forget_roots_soon(m)
    log.info(
        "forget dry_run=%s groups=%d kept=%d removed=%d",
        rules.dry_run,
        len(reports),
        len(rows) - len(doomed),
        len(removed),
    )
    return ForgetReport(dry_run=rules.dry_run, groups=reports, removed=removed)


async def where(m: Manager, ref: str, path: str) -> EntryWhere:
    row = await m.catalog.resolve_snapshot(ref)
    found = await m.catalog.snapshot_entry(row.snapshot_id, path)
    if found is None:
        raise NotFound(f"no path {path!r} in snapshot {row.snapshot_id[:8]}")
    chunks = [ChunkRef(h, n) for h, n in found.chunks]
    return EntryWhere(
        snapshot_id=row.snapshot_id,
        path=found.path,
        size=found.size,
        replication_factor=m.factor,
        chunks=await health.chunks_where(m, chunks),
    )
