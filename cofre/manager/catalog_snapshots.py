"""The catalog's tree snapshots: their SQL, run on the catalog's worker thread.

A snapshot row is ``open`` while its backup runs (its entries and chunks arrive in batches) and
becomes ``committed`` in one transaction; only committed snapshots are listed, resolved or read.
``snapshot_chunks`` holds each snapshot's distinct chunks: while open, those its uploads
committed and its parent's (pinned at open, so a backup that re-uses them survives a forget of
the parent); once committed, exactly those its entries reference. Every row there is live for
GC (``catalog_sql.LIVE_HASHES``); removing a snapshot removes its rows in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cofre.errors import BadRequest, ChunksNotStored, Conflict, NotFound
from cofre.manager.catalog_rows import SessionRow, SnapshotRow
from cofre.manager.catalog_sql import WHY_REBUILD, WHY_TREE, transaction
from cofre.models import ChunkHash, NodeId, SnapshotId
from cofre.protocol.manager_api import EntryView, TreeEntry

# Chunks a refusal names (the count says how many there are).
NAMED_CHUNKS = 20
_U64 = 1 << 64
_I64 = 1 << 63

SNAPSHOT_COLUMNS = (
    "id, time, host, tags, paths, parent, state, created, expires, committed, entries, files, bytes"
)
ENTRY_COLUMNS = (
    "path, kind, mode, mtime_ns, size, uid, gid, target, chunks, ctime_ns, inode, device"
)


def _to_i64(value: int | None) -> int | None:
    """An unsigned 64-bit number (an inode, a device) in SQLite's signed INTEGER."""
    return None if value is None else (value - _U64 if value >= _I64 else value)


def _from_i64(value: Any) -> int | None:
    return None if value is None else (int(value) + _U64 if int(value) < 0 else int(value))


def snapshot_row(row: tuple[Any, ...]) -> SnapshotRow:
    sid, t, host, tags, paths, parent, state, created, expires, committed, n, files, size = row
    return SnapshotRow(
        snapshot_id=SnapshotId(str(sid)),
        time=float(t),
        host=str(host),
        tags=tuple(json.loads(str(tags))),
        paths=tuple(json.loads(str(paths))),
        parent=None if parent is None else SnapshotId(str(parent)),
        state=str(state),
        created=float(created),
        expires=float(expires),
        committed=None if committed is None else float(committed),
        entries=int(n),
        files=int(files),
        bytes=int(size),
    )


def entry_values(snapshot_id: SnapshotId, e: TreeEntry) -> tuple[object, ...]:
    chunks = json.dumps([[h, n] for h, n in e.chunks], separators=(",", ":"))
    return (
        snapshot_id,
        e.path,
        e.kind,
        e.mode,
        e.mtime_ns,
        e.size,
        e.uid,
        e.gid,
        e.target,
        chunks,
        e.ctime_ns,
        _to_i64(e.inode),
        _to_i64(e.device),
    )


def entry_view(row: tuple[Any, ...]) -> EntryView:
    path, kind, mode, mtime_ns, size, uid, gid, target, chunks, ctime_ns, inode, device = row
    # Built without validation: every row was a validated TreeEntry on its way in, and a page
    # of a thousand would otherwise spend most of its time checking them again.
    return EntryView.model_construct(
        path=str(path),
        kind=kind,
        mode=int(mode),
        mtime_ns=int(mtime_ns),
        size=int(size),
        uid=None if uid is None else int(uid),
        gid=None if gid is None else int(gid),
        target=None if target is None else str(target),
        chunks=[(ChunkHash(h), int(n)) for h, n in json.loads(str(chunks))],
        ctime_ns=None if ctime_ns is None else int(ctime_ns),
        inode=_from_i64(inode),
        device=_from_i64(device),
    )


def find(db: sqlite3.Connection, snapshot_id: SnapshotId) -> SnapshotRow | None:
    row = db.execute(
        f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (snapshot_id,)
    ).fetchone()
    return None if row is None else snapshot_row(row)


def _open_row(db: sqlite3.Connection, snapshot_id: SnapshotId, *, now: float) -> SnapshotRow:
    """The snapshot, which must be open and not expired."""
    row = find(db, snapshot_id)
    if row is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    if row.state != "open":
        raise Conflict(f"snapshot {snapshot_id} is {row.state}, not open")
    if now > row.expires:
        raise Conflict(f"snapshot {snapshot_id} expired before it was committed")
    return row


def insert_open(db: sqlite3.Connection, row: SnapshotRow) -> None:
    """Record an open snapshot; its parent's chunks are pinned to it."""
    with transaction(db):
        if row.parent is not None:
            parent = find(db, row.parent)
            if parent is None or parent.state != "committed":
                raise NotFound(f"no snapshot {row.parent} (the parent)")
        db.execute(
            f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.snapshot_id,
                row.time,
                row.host,
                json.dumps(list(row.tags)),
                json.dumps(list(row.paths)),
                row.parent,
                row.state,
                row.created,
                row.expires,
                None,
                0,
                0,
                0,
            ),
        )
        if row.parent is not None:
            db.execute(
                "INSERT INTO snapshot_chunks (snapshot_id, hash, length, referenced)"
                " SELECT ?, hash, length, 0 FROM snapshot_chunks WHERE snapshot_id = ?",
                (row.snapshot_id, row.parent),
            )


def attach_chunks(
    db: sqlite3.Connection,
    snapshot_id: SnapshotId,
    session: SessionRow,
    lengths: dict[ChunkHash, int],
    holders_of: Callable[[ChunkHash], Iterable[NodeId]],
    *,
    now: float,
    expires: float,
) -> int:
    """Close the upload and record its chunks (lengths, locations) for the open snapshot, in
    one transaction; -> the snapshot's distinct chunks so far."""
    with transaction(db):
        _open_row(db, snapshot_id, now=now)
        closed = db.execute(
            "UPDATE sessions SET state = 'committed' WHERE id = ? AND state = 'open'",
            (session.upload_id,),
        )
        if closed.rowcount != 1:
            raise Conflict(f"upload {session.upload_id} is no longer open")
        db.executemany("INSERT OR IGNORE INTO chunk_lengths VALUES (?,?)", list(lengths.items()))
        db.executemany(
            "INSERT OR IGNORE INTO locations (hash, node_id, why, since) VALUES (?,?,?,?)",
            [(h, n, session.why, now) for h in lengths for n in holders_of(h)],
        )
        db.executemany(
            "INSERT OR IGNORE INTO snapshot_chunks VALUES (?,?,?,0)",
            [(snapshot_id, h, n) for h, n in lengths.items()],
        )
        db.execute("UPDATE snapshots SET expires = ? WHERE id = ?", (expires, snapshot_id))
        return _chunk_count(db, snapshot_id)


def _chunk_count(db: sqlite3.Connection, snapshot_id: SnapshotId) -> int:
    row = db.execute(
        "SELECT COUNT(*) FROM snapshot_chunks WHERE snapshot_id = ?", (snapshot_id,)
    ).fetchone()
    return int(row[0])


def holds_chunks(db: sqlite3.Connection, snapshot_id: SnapshotId, hashes: Sequence[str]) -> bool:
    """Whether every one of ``hashes`` is recorded for the snapshot (a retried chunk commit)."""
    for start in range(0, len(hashes), 500):
        batch = list(dict.fromkeys(hashes[start : start + 500]))
        marks = ",".join("?" * len(batch))
        row = db.execute(
            f"SELECT COUNT(*) FROM snapshot_chunks WHERE snapshot_id = ? AND hash IN ({marks})",
            (snapshot_id, *batch),
        ).fetchone()
        if int(row[0]) != len(batch):
            return False
    return True


def add_entries(
    db: sqlite3.Connection,
    snapshot_id: SnapshotId,
    entries: Sequence[TreeEntry],
    *,
    now: float,
    expires: float,
) -> int:
    """A batch of entries for the open snapshot; -> how many it holds now. A path it holds
    already is a 400 naming it, and nothing of the batch is written."""
    with transaction(db):
        _open_row(db, snapshot_id, now=now)
        for start in range(0, len(entries), 500):
            batch = [e.path for e in entries[start : start + 500]]
            marks = ",".join("?" * len(batch))
            dup = db.execute(
                f"SELECT path FROM snapshot_entries WHERE snapshot_id = ? AND path IN ({marks})"
                " LIMIT 1",
                (snapshot_id, *batch),
            ).fetchone()
            if dup is not None:
                raise BadRequest(f"entries: path {dup[0]!r} was sent before for this snapshot")
        refs = _references(db, snapshot_id, entries)
        db.executemany(
            f"INSERT INTO snapshot_entries (snapshot_id, {ENTRY_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [entry_values(snapshot_id, e) for e in entries],
        )
        db.executemany(
            "INSERT INTO snapshot_chunks VALUES (?,?,?,1) ON CONFLICT (snapshot_id, hash)"
            " DO UPDATE SET referenced = 1, length = excluded.length",
            [(snapshot_id, h, n) for h, n in refs.items()],
        )
        files = [e for e in entries if e.kind == "file"]
        db.execute(
            "UPDATE snapshots SET entries = entries + ?, files = files + ?, bytes = bytes + ?,"
            " expires = ? WHERE id = ?",
            (len(entries), len(files), sum(e.size for e in files), expires, snapshot_id),
        )
        return int(
            db.execute("SELECT entries FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()[0]
        )


def _references(
    db: sqlite3.Connection, snapshot_id: SnapshotId, entries: Sequence[TreeEntry]
) -> dict[str, int]:
    """The chunks a batch of entries references, hash -> length; BadRequest naming a chunk given
    two lengths (in the batch, or against an earlier batch)."""
    refs: dict[str, int] = {}
    for e in entries:
        for h, n in e.chunks:
            if refs.setdefault(h, n) != n:
                raise BadRequest(f"entries: chunk {h} is given two lengths")
    hashes = list(refs)
    for start in range(0, len(hashes), 500):
        batch = hashes[start : start + 500]
        marks = ",".join("?" * len(batch))
        for h, n in db.execute(
            "SELECT hash, length FROM snapshot_chunks WHERE snapshot_id = ? AND referenced = 1"
            f" AND hash IN ({marks})",
            (snapshot_id, *batch),
        ):
            if refs[h] != n:
                raise BadRequest(f"entries: chunk {h} is given two lengths")
    return refs


def pin_objects(
    db: sqlite3.Connection,
    snapshot_id: SnapshotId,
    lengths: Mapping[ChunkHash, int],
    *,
    root: ChunkHash | None,
    now: float,
) -> None:
    """Pin tree objects about to be written to the open snapshot (live for GC from now on,
    kept by its commit); ``root``: its root object, deleted from the nodes when it goes."""
    with transaction(db):
        _open_row(db, snapshot_id, now=now)
        db.executemany(
            "INSERT INTO snapshot_chunks VALUES (?,?,?,1) ON CONFLICT (snapshot_id, hash)"
            " DO UPDATE SET referenced = 1",
            [(snapshot_id, h, n) for h, n in lengths.items()],
        )
        if root is not None:
            db.execute("INSERT OR REPLACE INTO snapshot_roots VALUES (?,?)", (snapshot_id, root))


def _record_objects(
    db: sqlite3.Connection, objects: Mapping[ChunkHash, tuple[int, Sequence[NodeId]]], now: float
) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO chunk_lengths VALUES (?,?)",
        [(h, n) for h, (n, _) in objects.items()],
    )
    db.executemany(
        "INSERT OR IGNORE INTO locations (hash, node_id, why, since) VALUES (?,?,?,?)",
        [(h, node, WHY_TREE, now) for h, (_, nodes) in objects.items() for node in nodes],
    )


def commit(
    db: sqlite3.Connection,
    snapshot_id: SnapshotId,
    *,
    sent: int,
    factor: int,
    now: float,
    objects: Mapping[ChunkHash, tuple[int, Sequence[NodeId]]] | None = None,
) -> SnapshotRow:
    """Make the open snapshot visible, in one transaction, if it holds the ``sent`` entries
    and every chunk they reference is recorded at its length with at least ``factor`` copies.
    Its chunk set becomes exactly what its entries reference (chunks pinned or uploaded but
    not in the tree are released to GC)."""
    with transaction(db):
        found = find(db, snapshot_id)
        if found is not None and found.state == "committed" and found.entries == sent:
            return found  # a retried commit whose answer was lost
        row = _open_row(db, snapshot_id, now=now)
        if row.entries != sent:
            raise Conflict(
                f"snapshot {snapshot_id} holds {row.entries} entries but {sent} were sent; "
                "send the missing batches and commit again"
            )
        if objects:
            # The tree objects (pinned, written to their nodes): recorded like chunks, so the
            # check below holds them to F copies too.
            _record_objects(db, objects, now)
        short = _not_stored(db, snapshot_id, factor=factor)
        if short:
            raise ChunksNotStored(
                f"{len(short)} chunks the snapshot references are not stored with "
                f"{factor} copies: {', '.join(short[:NAMED_CHUNKS])}"
                + (" ..." if len(short) > NAMED_CHUNKS else "")
                + "; upload them again and commit",
                chunks=short[:NAMED_CHUNKS],
                count=len(short),
            )
        db.execute(
            "DELETE FROM snapshot_chunks WHERE snapshot_id = ? AND referenced = 0", (snapshot_id,)
        )
        db.execute(
            "UPDATE snapshots SET state = 'committed', committed = ? WHERE id = ?",
            (now, snapshot_id),
        )
        committed = find(db, snapshot_id)
        assert committed is not None
        return committed


def _not_stored(db: sqlite3.Connection, snapshot_id: SnapshotId, *, factor: int) -> list[str]:
    """The chunks the snapshot's entries reference that the catalog does not record at that
    length with at least ``factor`` copies, sorted."""
    return [
        str(r[0])
        for r in db.execute(
            "SELECT r.hash FROM snapshot_chunks r LEFT JOIN chunk_lengths c ON c.hash = r.hash"
            " WHERE r.snapshot_id = ? AND r.referenced = 1 AND (c.hash IS NULL"
            " OR c.length != r.length"
            " OR (SELECT COUNT(*) FROM locations l WHERE l.hash = r.hash) < ?)"
            " ORDER BY r.hash",
            (snapshot_id, factor),
        )
    ]


def committed_rows(
    db: sqlite3.Connection,
    *,
    host: str | None = None,
    tags: Sequence[str] = (),
    path: str | None = None,
) -> list[SnapshotRow]:
    """Committed snapshots matching the filters, oldest first (ties by id)."""
    rows = [
        snapshot_row(r)
        for r in db.execute(
            f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE state = 'committed' ORDER BY time, id"
        )
    ]
    return [r for r in rows if r.matches(host=host, tags=tags, path=path)]


def resolve(
    db: sqlite3.Connection,
    ref: str,
    *,
    host: str | None = None,
    tags: Sequence[str] = (),
    path: str | None = None,
    open_too: bool = False,
) -> SnapshotRow:
    """A snapshot by id, unique id prefix, or ``latest`` (the newest committed one matching
    the filters). NotFound, or BadRequest for a prefix several ids share."""
    if ref == "latest":
        rows = committed_rows(db, host=host, tags=tags, path=path)
        if not rows:
            raise NotFound("no snapshot matches" + _described(host, tags, path))
        return rows[-1]
    states = "('committed', 'open')" if open_too else "('committed')"
    found = [
        snapshot_row(r)
        for r in db.execute(
            f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id >= ? AND id < ?"
            f" AND state IN {states} ORDER BY id LIMIT 2",
            (ref, ref + "g"),  # 'g' sorts after every hex digit
        )
    ]
    if not found:
        raise NotFound(f"no snapshot {ref}")
    if len(found) > 1:
        raise BadRequest(f"snapshot: {ref!r} is the prefix of several snapshot ids; give more")
    return found[0]


def _described(host: str | None, tags: Sequence[str], path: str | None) -> str:
    parts = []
    if host is not None:
        parts.append(f"host {host!r}")
    if tags:
        parts.append(f"tags {','.join(tags)!r}")
    if path is not None:
        parts.append(f"path {path!r}")
    return (" " + ", ".join(parts)) if parts else ""


def entries_page(
    db: sqlite3.Connection,
    snapshot_id: SnapshotId,
    *,
    under: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[EntryView], str | None]:
    """Up to ``limit`` entries in path order, after ``after``, only ``under`` and below;
    -> (entries, the path to continue after, or None when there are no more)."""
    where = "snapshot_id = ?"
    params: list[object] = [snapshot_id]
    if under is not None:
        # ``under`` itself, or a path starting ``under/`` ('0' is the byte after '/').
        where += " AND (path = ? OR (path > ? AND path < ?))"
        params += [under, under + "/", under + "0"]
    if after is not None:
        where += " AND path > ?"
        params.append(after)
    rows = db.execute(
        f"SELECT {ENTRY_COLUMNS} FROM snapshot_entries WHERE {where} ORDER BY path LIMIT ?",
        (*params, limit + 1),
    ).fetchall()
    entries = [entry_view(r) for r in rows[:limit]]
    more = len(rows) > limit
    return entries, (entries[-1].path if more else None)


def entry(db: sqlite3.Connection, snapshot_id: SnapshotId, path: str) -> EntryView | None:
    row = db.execute(
        f"SELECT {ENTRY_COLUMNS} FROM snapshot_entries WHERE snapshot_id = ? AND path = ?",
        (snapshot_id, path),
    ).fetchone()
    return None if row is None else entry_view(row)


def remove(
    db: sqlite3.Connection, snapshot_ids: Sequence[SnapshotId]
) -> tuple[list[SnapshotId], list[ChunkHash]]:
    """Remove snapshots, their entries and chunk references, in one transaction; -> those
    that were there, and the root objects to delete from the nodes (their rows stay in
    ``snapshot_roots`` until ``roots_deleted``)."""
    with transaction(db):
        gone = []
        roots = []
        for sid in snapshot_ids:
            db.execute("DELETE FROM snapshot_entries WHERE snapshot_id = ?", (sid,))
            db.execute("DELETE FROM snapshot_chunks WHERE snapshot_id = ?", (sid,))
            if db.execute("DELETE FROM snapshots WHERE id = ?", (sid,)).rowcount:
                gone.append(sid)
            row = db.execute(
                "SELECT hash FROM snapshot_roots WHERE snapshot_id = ?", (sid,)
            ).fetchone()
            if row is not None:
                roots.append(ChunkHash(str(row[0])))
        return gone, roots


def orphan_roots(db: sqlite3.Connection) -> list[ChunkHash]:
    """Root objects of snapshots no longer in the catalog, not yet deleted from every node."""
    return [
        ChunkHash(str(r[0]))
        for r in db.execute(
            "SELECT hash FROM snapshot_roots r WHERE NOT EXISTS"
            " (SELECT 1 FROM snapshots s WHERE s.id = r.snapshot_id) ORDER BY hash"
        )
    ]


def roots_deleted(db: sqlite3.Connection, hashes: Sequence[ChunkHash]) -> None:
    """Root objects deleted from every node: forget their rows and copies."""
    with transaction(db):
        for h in hashes:
            db.execute(
                "DELETE FROM snapshot_roots WHERE hash = ? AND NOT EXISTS"
                " (SELECT 1 FROM snapshots s WHERE s.id = snapshot_roots.snapshot_id)",
                (h,),
            )
            if not db.execute("SELECT 1 FROM snapshot_roots WHERE hash = ?", (h,)).fetchone():
                db.execute("DELETE FROM locations WHERE hash = ?", (h,))


@dataclass(frozen=True, slots=True)
class RecoveredSnapshot:
    """A snapshot read back from its objects on the nodes, for a catalog rebuild."""

    row: SnapshotRow
    root: ChunkHash
    entries: Sequence[TreeEntry]
    objects: Mapping[ChunkHash, int]  # its root and pieces, with their lengths
    locations: Mapping[ChunkHash, frozenset[NodeId]]  # every chunk and object -> holders


def insert_recovered(db: sqlite3.Connection, snap: RecoveredSnapshot, *, now: float) -> None:
    """A recovered snapshot's rows, committed (inside the rebuild's transaction)."""
    row = snap.row
    db.execute(
        f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            row.snapshot_id,
            row.time,
            row.host,
            json.dumps(list(row.tags)),
            json.dumps(list(row.paths)),
            row.parent,
            "committed",
            row.created,
            row.expires,
            row.committed,
            row.entries,
            row.files,
            row.bytes,
        ),
    )
    db.executemany(
        f"INSERT INTO snapshot_entries (snapshot_id, {ENTRY_COLUMNS})"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [entry_values(row.snapshot_id, e) for e in snap.entries],
    )
    lengths: dict[ChunkHash, int] = dict(snap.objects)
    for e in snap.entries:
        lengths.update((ChunkHash(h), n) for h, n in e.chunks)
    db.executemany(
        "INSERT OR IGNORE INTO snapshot_chunks VALUES (?,?,?,1)",
        [(row.snapshot_id, h, n) for h, n in lengths.items()],
    )
    db.execute("INSERT OR REPLACE INTO snapshot_roots VALUES (?,?)", (row.snapshot_id, snap.root))
    db.executemany("INSERT OR IGNORE INTO chunk_lengths VALUES (?,?)", list(lengths.items()))
    db.executemany(
        "INSERT OR IGNORE INTO locations (hash, node_id, why, since) VALUES (?,?,?,?)",
        [(h, n, WHY_REBUILD, now) for h in lengths for n in sorted(snap.locations.get(h, ()))],
    )


def expired_open(db: sqlite3.Connection, *, now: float) -> list[SnapshotId]:
    return [
        SnapshotId(str(r[0]))
        for r in db.execute(
            "SELECT id FROM snapshots WHERE state = 'open' AND expires < ? ORDER BY id", (now,)
        )
    ]


def chunk_sets(db: sqlite3.Connection) -> dict[SnapshotId, set[ChunkHash]]:
    """Every committed snapshot's distinct chunks."""
    out: dict[SnapshotId, set[ChunkHash]] = {}
    for r in db.execute("SELECT id FROM snapshots WHERE state = 'committed' ORDER BY time, id"):
        out[SnapshotId(str(r[0]))] = set()
    for sid, h in db.execute(
        "SELECT c.snapshot_id, c.hash FROM snapshot_chunks c JOIN snapshots s"
        " ON s.id = c.snapshot_id WHERE s.state = 'committed'"
    ):
        out[SnapshotId(str(sid))].add(ChunkHash(str(h)))
    return out
