"""The catalog's SQL: schema and its migrations, row conversions, the writes a commit and a
rebuild share, and the transaction helper. Every function runs on the catalog's worker thread."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from cofre.manager.catalog_rows import CommitEntry, RecoveredVersion, SessionRow, VersionRow
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, UploadId

log = logging.getLogger(__name__)

# The reason of copies found on the nodes by a catalog rebuild.
WHY_REBUILD = "found on this node by a catalog rebuild"
WHY_TREE = "snapshot tree object written at its commit"

SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    mtime REAL NOT NULL,
    created REAL NOT NULL,
    manifest_hash TEXT NOT NULL,
    deleted_at REAL,
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS version_chunks (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (version_id, seq)
);
CREATE INDEX IF NOT EXISTS version_chunks_hash ON version_chunks(hash);
CREATE INDEX IF NOT EXISTS versions_manifest ON versions(manifest_hash);
CREATE TABLE IF NOT EXISTS chunk_lengths (hash TEXT PRIMARY KEY, length INTEGER NOT NULL);
-- why: how the copy came to be there (placed by an upload, a drain, a repair, a rebuild);
-- since: when it was recorded (seconds since the epoch).
CREATE TABLE IF NOT EXISTS locations (
    hash TEXT NOT NULL,
    node_id TEXT NOT NULL,
    why TEXT NOT NULL DEFAULT '',
    since REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (hash, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS locations_node ON locations(node_id);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    mtime REAL NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    primary_node TEXT NOT NULL,
    nodes TEXT NOT NULL,
    keep_copy INTEGER NOT NULL,
    state TEXT NOT NULL,
    version INTEGER,
    why TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS session_files (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    version INTEGER,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
-- Chunks an open upload was told it need not send (dedup across placement): GC keeps them.
CREATE TABLE IF NOT EXISTS session_pins (
    session_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (session_id, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_pins_hash ON session_pins(hash);
CREATE TABLE IF NOT EXISTS draining (node_id TEXT PRIMARY KEY, since REAL NOT NULL);
-- Tree snapshots (catalog_snapshots.py). tags, paths: JSON lists. state: open, committed.
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    host TEXT NOT NULL,
    tags TEXT NOT NULL,
    paths TEXT NOT NULL,
    parent TEXT,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    committed REAL,
    entries INTEGER NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS snapshots_state_time ON snapshots(state, time);
-- chunks: JSON [[hash, length], ...]; inode, device: unsigned 64-bit, stored wrapped.
CREATE TABLE IF NOT EXISTS snapshot_entries (
    snapshot_id TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    uid INTEGER,
    gid INTEGER,
    target TEXT,
    chunks TEXT NOT NULL,
    ctime_ns INTEGER,
    inode INTEGER,
    device INTEGER,
    PRIMARY KEY (snapshot_id, path)
) WITHOUT ROWID;
-- Each snapshot's distinct chunks, all live for GC. referenced: named by one of its entries
-- (at that length); 0: only pinned (its parent's) or uploaded for it, dropped at its commit.
CREATE TABLE IF NOT EXISTS snapshot_chunks (
    snapshot_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    length INTEGER NOT NULL,
    referenced INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS snapshot_chunks_hash ON snapshot_chunks(hash);
-- Client keys (cofre.protocol.access): a sha256 of each secret, never the secret. A table any
-- catalog gains on open (IF NOT EXISTS): no schema version to migrate.
CREATE TABLE IF NOT EXISTS client_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
-- Each snapshot's root object on the nodes (tree_objects.py), recorded before it is written:
-- removing the snapshot deletes it from the nodes, so a rebuild does not bring it back.
CREATE TABLE IF NOT EXISTS snapshot_roots (
    snapshot_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL
) WITHOUT ROWID;
"""

# The live reference set: data chunks and manifests of versions not deleted, and the chunks of
# every snapshot (committed, or open: a backup in progress).
LIVE_HASHES = """
SELECT vc.hash FROM version_chunks vc JOIN versions v ON v.id = vc.version_id
WHERE v.deleted_at IS NULL
UNION SELECT manifest_hash FROM versions WHERE deleted_at IS NULL
UNION SELECT hash FROM snapshot_chunks
"""
# What GC keeps: live chunks, and those open uploads were told are stored already.
KEPT_HASHES = (
    LIVE_HASHES
    + """UNION SELECT p.hash FROM session_pins p JOIN sessions s ON s.id = p.session_id
WHERE s.state = 'open'
"""
)
# Whether one hash (every ? the same) is in KEPT_HASHES, by the indexes: GC asks this of each
# chunk it is about to delete, under the commit lock.
IS_KEPT = """
SELECT EXISTS (SELECT 1 FROM version_chunks vc JOIN versions v ON v.id = vc.version_id
               WHERE vc.hash = ? AND v.deleted_at IS NULL)
    OR EXISTS (SELECT 1 FROM versions WHERE manifest_hash = ? AND deleted_at IS NULL)
    OR EXISTS (SELECT 1 FROM snapshot_chunks WHERE hash = ?)
    OR EXISTS (SELECT 1 FROM session_pins p JOIN sessions s ON s.id = p.session_id
               WHERE p.hash = ? AND s.state = 'open')
"""


VERSION_COLUMNS = (
    "v.name, v.version, v.size, v.mode, v.mtime, v.created, v.manifest_hash, "
    "(SELECT COUNT(*) FROM version_chunks vc WHERE vc.version_id = v.id), v.deleted_at"
)


def version_row(row: tuple[Any, ...]) -> VersionRow:
    name, number, size, mode, mtime, created, manifest_hash, count, deleted_at = row
    return VersionRow(
        name=str(name),
        version=int(number),
        size=int(size),
        mode=int(mode),
        mtime=float(mtime),
        created=float(created),
        manifest_hash=ChunkHash(str(manifest_hash)),
        chunk_count=int(count),
        deleted_at=None if deleted_at is None else float(deleted_at),
    )


def session_row(row: tuple[Any, ...]) -> SessionRow:
    uid, name, size, mode, mtime, created, expires, primary, nodes, keep, state, version, why = row
    return SessionRow(
        upload_id=UploadId(str(uid)),
        name=str(name),
        size=int(size),
        mode=int(mode),
        mtime=float(mtime),
        created=float(created),
        expires=float(expires),
        primary=NodeId(str(primary)),
        nodes=tuple(NodeId(n) for n in json.loads(str(nodes))),
        keep_copy=bool(keep),
        state=str(state),
        version=None if version is None else int(version),
        why=str(why),
    )


def find_version(
    db: sqlite3.Connection, name: str, version: int | None
) -> tuple[VersionRow, list[ChunkRef]] | None:
    sql = f"SELECT v.id, {VERSION_COLUMNS} FROM versions v WHERE v.name = ?"
    sql += " AND v.deleted_at IS NULL"
    params: tuple[object, ...] = (name,)
    if version is not None:
        sql += " AND v.version = ?"
        params = (name, version)
    row = db.execute(sql + " ORDER BY v.version DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    chunks = [
        ChunkRef(ChunkHash(h), int(n))
        for h, n in db.execute(
            "SELECT hash, length FROM version_chunks WHERE version_id = ? ORDER BY seq",
            (row[0],),
        )
    ]
    return version_row(row[1:]), chunks


def insert_version(
    db: sqlite3.Connection,
    entry: CommitEntry,
    holders_of: Callable[[ChunkHash], Iterable[NodeId]],
    created: float,
    *,
    why: str,
) -> int:
    """A newly committed version: the next number of its name; each chunk on its holders."""
    row = db.execute(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?",
        (entry.manifest.name,),
    ).fetchone()
    number = int(row[0])
    insert_rows(
        db,
        entry.manifest,
        number=number,
        created=created,
        manifest_hash=entry.manifest_hash,
        manifest_length=entry.manifest_length,
        holders_of=holders_of,
        why=why,
        now=created,
    )
    return number


def insert_rows(
    db: sqlite3.Connection,
    manifest: Manifest,
    *,
    number: int,
    created: float,
    manifest_hash: ChunkHash,
    manifest_length: int,
    holders_of: Callable[[ChunkHash], Iterable[NodeId]],
    why: str,
    now: float,
) -> None:
    """One version's rows: the version, its ordered chunks, their lengths and locations (a
    copy recorded before keeps its reason)."""
    cur = db.execute(
        "INSERT INTO versions (name, version, size, mode, mtime, created, manifest_hash)"
        " VALUES (?,?,?,?,?,?,?)",
        (
            manifest.name,
            number,
            manifest.size,
            manifest.mode,
            manifest.mtime,
            created,
            manifest_hash,
        ),
    )
    vid = cur.lastrowid
    db.executemany(
        "INSERT INTO version_chunks VALUES (?,?,?,?)",
        [(vid, i, c.hash, c.length) for i, c in enumerate(manifest.chunks)],
    )
    lengths = {c.hash: c.length for c in manifest.chunks}
    lengths[manifest_hash] = manifest_length
    db.executemany("INSERT OR IGNORE INTO chunk_lengths VALUES (?,?)", list(lengths.items()))
    db.executemany(
        "INSERT OR IGNORE INTO locations (hash, node_id, why, since) VALUES (?,?,?,?)",
        [(h, n, why, now) for h in lengths for n in holders_of(h)],
    )


def insert_recovered(db: sqlite3.Connection, v: RecoveredVersion) -> None:
    insert_rows(
        db,
        v.manifest,
        number=v.number,
        created=v.manifest.created,
        manifest_hash=v.manifest_hash,
        manifest_length=v.manifest_length,
        holders_of=lambda h: sorted(v.locations.get(h, ())),
        why=WHY_REBUILD,
        now=time.time(),
    )


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a catalog of an older schema to this one, in one transaction."""
    with transaction(db):
        if version < 2:
            # Copies recorded before their reasons were: why stays empty, since 0.
            db.execute("ALTER TABLE locations ADD COLUMN why TEXT NOT NULL DEFAULT ''")
            db.execute("ALTER TABLE locations ADD COLUMN since REAL NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE sessions ADD COLUMN why TEXT NOT NULL DEFAULT ''")
        # 3: the snapshot tables; 4: snapshot_roots (committed snapshots of a schema 3
        # catalog have no objects on the nodes until they are written again). SCHEMA creates
        # the tables before this runs.
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    log.info("catalog schema migrated from=%d to=%d", version, SCHEMA_VERSION)


class transaction:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
