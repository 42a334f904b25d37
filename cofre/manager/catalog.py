"""The catalog: versions, their chunks, where chunks live, open uploads, drains (SQLite, WAL).

One connection, used only from one worker thread, so the event loop never waits on the disk and
SQLite never sees two threads. ``synchronous=FULL``: a commit the client was told about survives
a power cut.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cofre.errors import Conflict
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, UploadId

T = TypeVar("T")

log = logging.getLogger(__name__)
# The reason of copies found on the nodes by a catalog rebuild.
WHY_REBUILD = "found on this node by a catalog rebuild"

SCHEMA_VERSION = 2
_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS draining (node_id TEXT PRIMARY KEY, since REAL NOT NULL);
"""

# The live reference set: data chunks and manifests of versions not deleted.
_LIVE_HASHES = """
SELECT vc.hash FROM version_chunks vc JOIN versions v ON v.id = vc.version_id
WHERE v.deleted_at IS NULL
UNION SELECT manifest_hash FROM versions WHERE deleted_at IS NULL
"""
# What GC keeps: live chunks, and those open uploads were told are stored already.
_KEPT_HASHES = (
    _LIVE_HASHES
    + """UNION SELECT p.hash FROM session_pins p JOIN sessions s ON s.id = p.session_id
WHERE s.state = 'open'
"""
)


@dataclass(frozen=True, slots=True)
class SessionRow:
    upload_id: UploadId
    name: str
    size: int
    mode: int
    mtime: float
    created: float
    expires: float
    primary: NodeId
    nodes: tuple[NodeId, ...]  # every chosen node, the primary first
    keep_copy: bool
    state: str = "open"  # open, committed, aborted, expired
    version: int | None = None
    # Why its nodes were chosen; becomes the reason of every copy the upload places.
    why: str = ""

    @property
    def copy_holders(self) -> tuple[NodeId, ...]:
        return self.nodes if self.keep_copy else self.nodes[1:]


@dataclass(frozen=True, slots=True)
class VersionRow:
    name: str
    version: int
    size: int
    mode: int
    mtime: float
    created: float
    manifest_hash: ChunkHash
    chunk_count: int
    deleted_at: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "created": self.created,
            "chunks": self.chunk_count,
        }


@dataclass(frozen=True, slots=True)
class LiveChunk:
    hash: ChunkHash
    length: int
    holders: frozenset[NodeId]


_VERSION_COLUMNS = (
    "v.name, v.version, v.size, v.mode, v.mtime, v.created, v.manifest_hash, "
    "(SELECT COUNT(*) FROM version_chunks vc WHERE vc.version_id = v.id), v.deleted_at"
)


def _version(row: tuple[Any, ...]) -> VersionRow:
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


def _session(row: tuple[Any, ...]) -> SessionRow:
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


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        self._db: sqlite3.Connection | None = None

    # plumbing --------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise RuntimeError("catalog is closed")
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def do_open() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] < SCHEMA_VERSION:
                _migrate(db, int(row[0]))
            elif row[0] > SCHEMA_VERSION:
                db.close()
                raise RuntimeError(
                    f"catalog {self.path} has schema {row[0]}, newer than this manager's "
                    f"{SCHEMA_VERSION}"
                )
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._executor, do_open)

    async def close(self) -> None:
        def do_close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, do_close)
        self._executor.shutdown(wait=True)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    # upload sessions -------------------------------------------------------------------------

    async def add_session(self, s: SessionRow, *, files: Sequence[tuple[str, int]] = ()) -> None:
        """Record an open upload; ``files`` (name, size) for an upload of several files."""

        def do(db: sqlite3.Connection) -> None:
            # Not fsynced on its own (synchronous=NORMAL for this one transaction): a session
            # row lost to a power cut only fails that upload's commit (404), which commits
            # nothing, and the next fsynced commit makes the row durable anyway. Its
            # reservation and GC fence matter only while the manager runs, and they live in
            # memory too. Versions are never written this way.
            db.execute("PRAGMA synchronous=NORMAL")
            try:
                with _transaction(db):
                    db.execute(
                        "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            s.upload_id,
                            s.name,
                            s.size,
                            s.mode,
                            s.mtime,
                            s.created,
                            s.expires,
                            s.primary,
                            json.dumps(list(s.nodes)),
                            int(s.keep_copy),
                            s.state,
                            s.version,
                            s.why,
                        ),
                    )
                    db.executemany(
                        "INSERT INTO session_files VALUES (?,?,?,?,NULL)",
                        [(s.upload_id, i, name, size) for i, (name, size) in enumerate(files)],
                    )
            finally:
                db.execute("PRAGMA synchronous=FULL")

        await self._run(do)

    async def session_files(self, upload_id: UploadId) -> list[tuple[str, int, int | None]]:
        """(name, size, committed version or None) of an upload of several files; [] for one."""

        def do(db: sqlite3.Connection) -> list[tuple[str, int, int | None]]:
            rows = db.execute(
                "SELECT name, size, version FROM session_files WHERE session_id = ? ORDER BY seq",
                (upload_id,),
            )
            return [(str(n), int(z), None if v is None else int(v)) for n, z, v in rows]

        return await self._run(do)

    async def session(self, upload_id: UploadId) -> SessionRow | None:
        def do(db: sqlite3.Connection) -> SessionRow | None:
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (upload_id,)).fetchone()
            return None if row is None else _session(row)

        return await self._run(do)

    async def open_sessions(self) -> list[SessionRow]:
        def do(db: sqlite3.Connection) -> list[SessionRow]:
            rows = db.execute("SELECT * FROM sessions WHERE state = 'open' ORDER BY created")
            return [_session(r) for r in rows]

        return await self._run(do)

    async def close_session(self, upload_id: UploadId, *, state: str) -> bool:
        """Mark an open session closed; False if it was not open."""

        def do(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE sessions SET state = ? WHERE id = ? AND state = 'open'",
                (state, upload_id),
            )
            return cur.rowcount == 1

        return await self._run(do)

    async def purge_sessions(self, *, closed_before: float) -> int:
        """Forget closed sessions whose expiry passed before ``closed_before``."""

        def do(db: sqlite3.Connection) -> int:
            with _transaction(db):
                for table in ("session_files", "session_pins"):
                    db.execute(
                        f"DELETE FROM {table} WHERE session_id IN (SELECT id FROM sessions"
                        " WHERE state != 'open' AND expires < ?)",
                        (closed_before,),
                    )
                cur = db.execute(
                    "DELETE FROM sessions WHERE state != 'open' AND expires < ?", (closed_before,)
                )
                return cur.rowcount

        return await self._run(do)

    # versions --------------------------------------------------------------------------------

    async def commit(
        self,
        session: SessionRow,
        manifest: Manifest,
        *,
        manifest_hash: ChunkHash,
        manifest_length: int,
        holders: Iterable[NodeId],
        now: float | None = None,
    ) -> int:
        """Record a version, its chunks and their locations, and close the session; -> version."""
        (number,) = await self.commit_many(
            session,
            [CommitEntry(manifest, manifest_hash, manifest_length)],
            holders=holders,
            now=now,
        )
        return number

    async def commit_many(
        self,
        session: SessionRow,
        entries: Sequence[CommitEntry],
        *,
        holders: Iterable[NodeId] | Callable[[ChunkHash], Iterable[NodeId]],
        now: float | None = None,
    ) -> list[int]:
        """Record every entry's version, chunks and locations and close the session, all in one
        transaction; -> the version numbers, in order. ``holders``: the nodes holding every
        chunk, or a function giving each chunk's nodes (chunks stored before stay where they
        are)."""
        created = time.time() if now is None else now
        if callable(holders):
            holders_of = holders
        else:
            holder_list = list(holders)

            def holders_of(_: ChunkHash) -> Iterable[NodeId]:
                return holder_list

        def do(db: sqlite3.Connection) -> list[int]:
            with _transaction(db):
                # Only an open session commits, once: a concurrent abort or commit loses here.
                closed = db.execute(
                    "UPDATE sessions SET state = 'committed' WHERE id = ? AND state = 'open'",
                    (session.upload_id,),
                )
                if closed.rowcount != 1:
                    raise Conflict(f"upload {session.upload_id} is no longer open")
                numbers = [
                    _insert_version(db, e, holders_of, created, why=session.why) for e in entries
                ]
                db.executemany(
                    "UPDATE session_files SET version = ? WHERE session_id = ? AND name = ?",
                    [
                        (n, session.upload_id, e.manifest.name)
                        for n, e in zip(numbers, entries, strict=True)
                    ],
                )
                db.execute(
                    "UPDATE sessions SET version = ? WHERE id = ?",
                    (numbers[0] if len(numbers) == 1 else None, session.upload_id),
                )
                return numbers

        return await self._run(do)

    async def versions(
        self, *, name: str | None = None, all_versions: bool = True
    ) -> list[VersionRow]:
        """Live versions (of ``name``), or only the latest live version per name."""

        def do(db: sqlite3.Connection) -> list[VersionRow]:
            where = "v.deleted_at IS NULL"
            params: tuple[object, ...] = ()
            if name is not None:
                where += " AND v.name = ?"
                params = (name,)
            if not all_versions:
                where += (
                    " AND v.version = (SELECT MAX(w.version) FROM versions w"
                    " WHERE w.name = v.name AND w.deleted_at IS NULL)"
                )
            rows = db.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions v WHERE {where}"
                " ORDER BY v.name, v.version",
                params,
            )
            return [_version(r) for r in rows]

        return await self._run(do)

    async def version(
        self, name: str, version: int | None = None
    ) -> tuple[VersionRow, list[ChunkRef]] | None:
        """A live version (the latest without ``version``) and its chunks in order."""
        return await self._run(lambda db: _find_version(db, name, version))

    async def latest_many(self, names: Sequence[str]) -> list[tuple[VersionRow, list[ChunkRef]]]:
        """The latest live version of each name that has one, in order, in one thread hop."""

        def do(db: sqlite3.Connection) -> list[tuple[VersionRow, list[ChunkRef]]]:
            found = (_find_version(db, name, None) for name in dict.fromkeys(names))
            return [f for f in found if f is not None]

        return await self._run(do)

    async def delete(self, name: str, version: int | None = None, *, now: float) -> list[int]:
        """Mark live versions deleted; -> their numbers (empty when none matched)."""

        def do(db: sqlite3.Connection) -> list[int]:
            sql = "SELECT version FROM versions WHERE name = ? AND deleted_at IS NULL"
            params: tuple[object, ...] = (name,)
            if version is not None:
                sql += " AND version = ?"
                params = (name, version)
            with _transaction(db):
                numbers = [int(r[0]) for r in db.execute(sql + " ORDER BY version", params)]
                db.executemany(
                    "UPDATE versions SET deleted_at = ? WHERE name = ? AND version = ?",
                    [(now, name, n) for n in numbers],
                )
            return numbers

        return await self._run(do)

    async def counts(self) -> tuple[int, int]:
        """-> (names with a live version, live versions)."""

        def do(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute(
                "SELECT COUNT(DISTINCT name), COUNT(*) FROM versions WHERE deleted_at IS NULL"
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self._run(do)

    async def version_rows(self) -> int:
        """Every version row, deleted ones included (0: an empty catalog)."""

        def do(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT COUNT(*) FROM versions").fetchone()[0])

        return await self._run(do)

    async def restore(self, versions: Sequence[RecoveredVersion]) -> None:
        """Fill an empty catalog with recovered versions and their locations, in one
        transaction; Conflict (nothing written) if it holds any version."""

        def do(db: sqlite3.Connection) -> None:
            with _transaction(db):
                held = int(db.execute("SELECT COUNT(*) FROM versions").fetchone()[0])
                if held:
                    raise Conflict(
                        f"the catalog already holds {held} versions; a rebuild only fills an "
                        "empty catalog"
                    )
                for v in versions:
                    _insert_recovered(db, v)

        await self._run(do)

    # chunks and locations --------------------------------------------------------------------

    async def live_hashes(self) -> set[ChunkHash]:
        def do(db: sqlite3.Connection) -> set[ChunkHash]:
            return {ChunkHash(r[0]) for r in db.execute(_LIVE_HASHES)}

        return await self._run(do)

    async def kept_hashes(self) -> set[ChunkHash]:
        """Live chunks and those pinned by open uploads: what GC must not delete."""

        def do(db: sqlite3.Connection) -> set[ChunkHash]:
            return {ChunkHash(r[0]) for r in db.execute(_KEPT_HASHES)}

        return await self._run(do)

    async def pin(self, upload_id: UploadId, hashes: Iterable[ChunkHash]) -> None:
        """Keep ``hashes`` (and their locations) from GC while the upload stays open."""
        rows = [(upload_id, h) for h in hashes]

        def do(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT OR IGNORE INTO session_pins VALUES (?,?)", rows)

        if rows:
            await self._run(do)

    async def live_chunks(self, *, on_nodes: Iterable[NodeId] | None = None) -> list[LiveChunk]:
        """Live chunks with their lengths and holders (only those held by ``on_nodes``)."""
        node_filter = None if on_nodes is None else list(on_nodes)

        def do(db: sqlite3.Connection) -> list[LiveChunk]:
            holders: dict[str, set[NodeId]] = {}
            for h, n in db.execute(
                f"SELECT hash, node_id FROM locations WHERE hash IN ({_LIVE_HASHES})"
            ):
                holders.setdefault(h, set()).add(NodeId(n))
            lengths = dict(
                db.execute(
                    f"SELECT hash, length FROM chunk_lengths WHERE hash IN ({_LIVE_HASHES})"
                ).fetchall()
            )
            out = []
            for h, length in sorted(lengths.items()):
                nodes = frozenset(holders.get(h, set()))
                if node_filter is not None and not nodes.intersection(node_filter):
                    continue
                out.append(LiveChunk(ChunkHash(h), int(length), nodes))
            return out

        return await self._run(do)

    async def locations(self, hashes: Iterable[ChunkHash]) -> dict[ChunkHash, set[NodeId]]:
        wanted = list(hashes)

        def do(db: sqlite3.Connection) -> dict[ChunkHash, set[NodeId]]:
            out: dict[ChunkHash, set[NodeId]] = {h: set() for h in wanted}
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                for h, n in db.execute(
                    f"SELECT hash, node_id FROM locations WHERE hash IN ({marks})", batch
                ):
                    out[ChunkHash(h)].add(NodeId(n))
            return out

        return await self._run(do)

    async def copy_reasons(
        self, hashes: Iterable[ChunkHash]
    ) -> dict[ChunkHash, dict[NodeId, tuple[str, float]]]:
        """hash -> node -> (why the copy is there, since when), for every recorded copy."""
        wanted = list(hashes)

        def do(db: sqlite3.Connection) -> dict[ChunkHash, dict[NodeId, tuple[str, float]]]:
            out: dict[ChunkHash, dict[NodeId, tuple[str, float]]] = {h: {} for h in wanted}
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                for h, n, why, since in db.execute(
                    f"SELECT hash, node_id, why, since FROM locations WHERE hash IN ({marks})",
                    batch,
                ):
                    out[ChunkHash(h)][NodeId(n)] = (str(why), float(since))
            return out

        return await self._run(do)

    async def lengths(self, hashes: Iterable[ChunkHash]) -> dict[ChunkHash, int]:
        wanted = list(hashes)

        def do(db: sqlite3.Connection) -> dict[ChunkHash, int]:
            out: dict[ChunkHash, int] = {}
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                marks = ",".join("?" * len(batch))
                for h, n in db.execute(
                    f"SELECT hash, length FROM chunk_lengths WHERE hash IN ({marks})", batch
                ):
                    out[ChunkHash(h)] = int(n)
            return out

        return await self._run(do)

    async def add_location(self, chunk_hash: ChunkHash, node_id: NodeId, *, why: str) -> None:
        row = (chunk_hash, node_id, why, time.time())

        def do(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR IGNORE INTO locations (hash, node_id, why, since) VALUES (?,?,?,?)", row
            )

        await self._run(do)

    async def remove_locations(self, node_id: NodeId, hashes: Iterable[ChunkHash]) -> None:
        rows = [(h, node_id) for h in hashes]

        def do(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("DELETE FROM locations WHERE hash = ? AND node_id = ?", rows)

        await self._run(do)

    async def drop_unreferenced(self) -> int:
        """Forget locations and lengths of chunks neither a live version references nor an
        open upload pinned; -> locations."""

        def do(db: sqlite3.Connection) -> int:
            with _transaction(db):
                cur = db.execute(f"DELETE FROM locations WHERE hash NOT IN ({_KEPT_HASHES})")
                db.execute(f"DELETE FROM chunk_lengths WHERE hash NOT IN ({_KEPT_HASHES})")
                return cur.rowcount

        return await self._run(do)

    # drains ----------------------------------------------------------------------------------

    async def add_draining(self, node_ids: Iterable[NodeId], *, now: float) -> None:
        rows = [(n, now) for n in node_ids]

        def do(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT OR IGNORE INTO draining VALUES (?,?)", rows)

        await self._run(do)

    async def set_draining(self, node_ids: Iterable[NodeId], *, now: float) -> None:
        """Make the draining set exactly ``node_ids`` (keeping when each drain began)."""
        keep = sorted(set(node_ids))

        def do(db: sqlite3.Connection) -> None:
            with _transaction(db):
                marks = ",".join("?" * len(keep))
                db.execute(f"DELETE FROM draining WHERE node_id NOT IN ({marks})", keep)
                db.executemany(
                    "INSERT OR IGNORE INTO draining VALUES (?,?)", [(n, now) for n in keep]
                )

        await self._run(do)

    async def draining(self) -> set[NodeId]:
        def do(db: sqlite3.Connection) -> set[NodeId]:
            return {NodeId(r[0]) for r in db.execute("SELECT node_id FROM draining")}

        return await self._run(do)


def _find_version(
    db: sqlite3.Connection, name: str, version: int | None
) -> tuple[VersionRow, list[ChunkRef]] | None:
    sql = f"SELECT v.id, {_VERSION_COLUMNS} FROM versions v WHERE v.name = ?"
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
    return _version(row[1:]), chunks


@dataclass(frozen=True, slots=True)
class CommitEntry:
    manifest: Manifest
    manifest_hash: ChunkHash
    manifest_length: int


def _insert_version(
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
    _insert_rows(
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


def _insert_rows(
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


@dataclass(frozen=True, slots=True)
class RecoveredVersion:
    """A version rebuilt from its manifest on the nodes, with every node holding each chunk."""

    number: int
    manifest: Manifest
    manifest_hash: ChunkHash
    manifest_length: int
    # chunk (data chunks and the manifest) -> nodes holding it
    locations: Mapping[ChunkHash, frozenset[NodeId]]


def _insert_recovered(db: sqlite3.Connection, v: RecoveredVersion) -> None:
    _insert_rows(
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


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a catalog of an older schema to this one, in one transaction."""
    with _transaction(db):
        if version < 2:
            # Copies recorded before their reasons were: why stays empty, since 0.
            db.execute("ALTER TABLE locations ADD COLUMN why TEXT NOT NULL DEFAULT ''")
            db.execute("ALTER TABLE locations ADD COLUMN since REAL NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE sessions ADD COLUMN why TEXT NOT NULL DEFAULT ''")
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    log.info("catalog schema migrated from=%d to=%d", version, SCHEMA_VERSION)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
