"""The catalog: versions, their chunks, where chunks live, open uploads, drains (SQLite, WAL).

One connection, used only from one worker thread, so the event loop never waits on the disk and
SQLite never sees two threads. ``synchronous=FULL``: a commit the client was told about survives
a power cut.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from cofre.errors import Conflict
from cofre.manager import catalog_snapshots as snap_sql
from cofre.manager.catalog_rows import (
    CommitEntry,
    KeyRow,
    LiveChunk,
    RecoveredVersion,
    SessionRow,
    SnapshotRow,
    VersionRow,
)
from cofre.manager.catalog_sql import (
    IS_KEPT,
    KEPT_HASHES,
    LIVE_HASHES,
    SCHEMA,
    SCHEMA_VERSION,
    VERSION_COLUMNS,
    WHY_REBUILD,
    find_version,
    insert_recovered,
    insert_version,
    migrate,
    session_row,
    transaction,
    version_row,
)
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, SnapshotId, UploadId
from cofre.protocol.manager_api import EntryView, TreeEntry

__all__ = [
    "WHY_REBUILD",
    "Catalog",
    "CommitEntry",
    "KeyRow",
    "LiveChunk",
    "RecoveredVersion",
    "SessionRow",
    "SnapshotRow",
    "VersionRow",
]

T = TypeVar("T")


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
            db.executescript(SCHEMA)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] < SCHEMA_VERSION:
                migrate(db, int(row[0]))
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
                with transaction(db):
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
            return None if row is None else session_row(row)

        return await self._run(do)

    async def open_sessions(self) -> list[SessionRow]:
        def do(db: sqlite3.Connection) -> list[SessionRow]:
            rows = db.execute("SELECT * FROM sessions WHERE state = 'open' ORDER BY created")
            return [session_row(r) for r in rows]

        return await self._run(do)

    async def uncommitted_files(self) -> set[tuple[str, int]]:
        """(name, size) of every file declared by an upload this catalog holds as not
        committed (open, aborted or expired): the only manifests a node may hold that are not
        versions here without the catalog having lost them (uncommitted.py)."""

        def do(db: sqlite3.Connection) -> set[tuple[str, int]]:
            rows = db.execute(
                "SELECT f.name, f.size FROM session_files f JOIN sessions s"
                " ON s.id = f.session_id WHERE s.state != 'committed'"
                " UNION SELECT s.name, s.size FROM sessions s WHERE s.state != 'committed'"
                " AND NOT EXISTS (SELECT 1 FROM session_files f WHERE f.session_id = s.id)"
            )
            return {(str(n), int(z)) for n, z in rows}

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
            with transaction(db):
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
            with transaction(db):
                # Only an open session commits, once: a concurrent abort or commit loses here.
                closed = db.execute(
                    "UPDATE sessions SET state = 'committed' WHERE id = ? AND state = 'open'",
                    (session.upload_id,),
                )
                if closed.rowcount != 1:
                    raise Conflict(f"upload {session.upload_id} is no longer open")
                numbers = [
                    insert_version(db, e, holders_of, created, why=session.why) for e in entries
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
                f"SELECT {VERSION_COLUMNS} FROM versions v WHERE {where}"
                " ORDER BY v.name, v.version",
                params,
            )
            return [version_row(r) for r in rows]

        return await self._run(do)

    async def version(
        self, name: str, version: int | None = None
    ) -> tuple[VersionRow, list[ChunkRef]] | None:
        """A live version (the latest without ``version``) and its chunks in order."""
        return await self._run(lambda db: find_version(db, name, version))

    async def latest_many(self, names: Sequence[str]) -> list[tuple[VersionRow, list[ChunkRef]]]:
        """The latest live version of each name that has one, in order, in one thread hop."""

        def do(db: sqlite3.Connection) -> list[tuple[VersionRow, list[ChunkRef]]]:
            found = (find_version(db, name, None) for name in dict.fromkeys(names))
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
            with transaction(db):
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

    async def last_commit_time(self) -> float | None:
        """When the newest version (deleted or not) or snapshot was committed; None for an
        empty catalog."""

        def do(db: sqlite3.Connection) -> float | None:
            row = db.execute(
                "SELECT MAX(t) FROM (SELECT MAX(created) AS t FROM versions"
                " UNION ALL SELECT MAX(committed) FROM snapshots WHERE state = 'committed')"
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(do)

    async def version_rows(self) -> int:
        """Every version row, deleted ones included, and every snapshot (0: an empty
        catalog)."""

        def do(db: sqlite3.Connection) -> int:
            return int(
                db.execute(
                    "SELECT (SELECT COUNT(*) FROM versions) + (SELECT COUNT(*) FROM snapshots)"
                ).fetchone()[0]
            )

        return await self._run(do)

    async def restore(
        self,
        versions: Sequence[RecoveredVersion],
        snapshots: Sequence[snap_sql.RecoveredSnapshot] = (),
    ) -> None:
        """Fill an empty catalog with recovered versions and snapshots and their locations,
        in one transaction; Conflict (nothing written) if it holds any version or snapshot."""

        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
                held = int(
                    db.execute(
                        "SELECT (SELECT COUNT(*) FROM versions) + (SELECT COUNT(*) FROM snapshots)"
                    ).fetchone()[0]
                )
                if held:
                    raise Conflict(
                        f"the catalog already holds {held} versions or snapshots; a rebuild "
                        "only fills an empty catalog"
                    )
                for v in versions:
                    insert_recovered(db, v)
                now = time.time()
                for snap in snapshots:
                    snap_sql.insert_recovered(db, snap, now=now)

        await self._run(do)

    # chunks and locations --------------------------------------------------------------------

    async def live_hashes(self) -> set[ChunkHash]:
        def do(db: sqlite3.Connection) -> set[ChunkHash]:
            return {ChunkHash(r[0]) for r in db.execute(LIVE_HASHES)}

        return await self._run(do)

    async def live_chunk_count(self) -> int:
        """Distinct chunks live versions reference, manifests included (counted in SQLite)."""

        def do(db: sqlite3.Connection) -> int:
            return int(db.execute(f"SELECT COUNT(*) FROM ({LIVE_HASHES})").fetchone()[0])

        return await self._run(do)

    async def kept_hashes(self) -> set[ChunkHash]:
        """Live chunks and those pinned by open uploads: what GC must not delete."""

        def do(db: sqlite3.Connection) -> set[ChunkHash]:
            return {ChunkHash(r[0]) for r in db.execute(KEPT_HASHES)}

        return await self._run(do)

    async def kept_among(self, hashes: Iterable[ChunkHash]) -> set[ChunkHash]:
        """Those of ``hashes`` GC must not delete now (``kept_hashes``, asked per hash)."""
        wanted = list(dict.fromkeys(hashes))

        def do(db: sqlite3.Connection) -> set[ChunkHash]:
            return {h for h in wanted if db.execute(IS_KEPT, (h, h, h, h)).fetchone()[0]}

        return await self._run(do)

    async def pin(self, upload_id: UploadId, hashes: Iterable[ChunkHash]) -> None:
        """Keep ``hashes`` (and their locations) from GC while the upload stays open."""
        rows = [(upload_id, h) for h in hashes]

        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany("INSERT OR IGNORE INTO session_pins VALUES (?,?)", rows)

        if rows:
            await self._run(do)

    async def live_chunks(self, *, on_nodes: Iterable[NodeId] | None = None) -> list[LiveChunk]:
        """Live chunks with their lengths and holders (only those held by ``on_nodes``)."""
        node_filter = None if on_nodes is None else list(on_nodes)

        def do(db: sqlite3.Connection) -> list[LiveChunk]:
            holders: dict[str, set[NodeId]] = {}
            for h, n in db.execute(
                f"SELECT hash, node_id FROM locations WHERE hash IN ({LIVE_HASHES})"
            ):
                holders.setdefault(h, set()).add(NodeId(n))
            lengths = dict(
                db.execute(
                    f"SELECT hash, length FROM chunk_lengths WHERE hash IN ({LIVE_HASHES})"
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

    async def holders(self, node_ids: Iterable[NodeId]) -> set[NodeId]:
        """Those of ``node_ids`` the catalog records at least one copy on."""
        wanted = list(dict.fromkeys(node_ids))

        def do(db: sqlite3.Connection) -> set[NodeId]:
            return {
                n
                for n in wanted
                if db.execute("SELECT 1 FROM locations WHERE node_id = ? LIMIT 1", (n,)).fetchone()
            }

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
            with transaction(db):
                db.executemany("DELETE FROM locations WHERE hash = ? AND node_id = ?", rows)

        await self._run(do)

    async def drop_unreferenced(self) -> int:
        """Forget locations and lengths of chunks neither a live version references nor an
        open upload pinned; -> locations."""

        def do(db: sqlite3.Connection) -> int:
            with transaction(db):
                cur = db.execute(f"DELETE FROM locations WHERE hash NOT IN ({KEPT_HASHES})")
                db.execute(f"DELETE FROM chunk_lengths WHERE hash NOT IN ({KEPT_HASHES})")
                return cur.rowcount

        return await self._run(do)

    # tree snapshots (catalog_snapshots.py) ---------------------------------------------------

    async def open_snapshot(self, row: SnapshotRow) -> None:
        await self._run(lambda db: snap_sql.insert_open(db, row))

    async def snapshot(self, snapshot_id: SnapshotId) -> SnapshotRow | None:
        """Any snapshot, open or committed."""
        return await self._run(lambda db: snap_sql.find(db, snapshot_id))

    async def attach_snapshot_chunks(
        self,
        snapshot_id: SnapshotId,
        session: SessionRow,
        lengths: dict[ChunkHash, int],
        holders_of: Callable[[ChunkHash], Iterable[NodeId]],
        *,
        now: float,
        expires: float,
    ) -> int:
        return await self._run(
            lambda db: snap_sql.attach_chunks(
                db, snapshot_id, session, lengths, holders_of, now=now, expires=expires
            )
        )

    async def snapshot_holds(self, snapshot_id: SnapshotId, hashes: Sequence[ChunkHash]) -> bool:
        return await self._run(lambda db: snap_sql.holds_chunks(db, snapshot_id, hashes))

    async def add_snapshot_entries(
        self, snapshot_id: SnapshotId, entries: Sequence[TreeEntry], *, now: float, expires: float
    ) -> int:
        return await self._run(
            lambda db: snap_sql.add_entries(db, snapshot_id, entries, now=now, expires=expires)
        )

    async def commit_snapshot(
        self,
        snapshot_id: SnapshotId,
        *,
        sent: int,
        factor: int,
        now: float,
        objects: Mapping[ChunkHash, tuple[int, Sequence[NodeId]]] | None = None,
    ) -> SnapshotRow:
        return await self._run(
            lambda db: snap_sql.commit(
                db, snapshot_id, sent=sent, factor=factor, now=now, objects=objects
            )
        )

    async def snapshots(
        self, *, host: str | None = None, tags: Sequence[str] = (), path: str | None = None
    ) -> list[SnapshotRow]:
        """Committed snapshots matching the filters, oldest first."""
        return await self._run(
            lambda db: snap_sql.committed_rows(db, host=host, tags=tags, path=path)
        )

    async def resolve_snapshot(
        self,
        ref: str,
        *,
        host: str | None = None,
        tags: Sequence[str] = (),
        path: str | None = None,
        open_too: bool = False,
    ) -> SnapshotRow:
        return await self._run(
            lambda db: snap_sql.resolve(db, ref, host=host, tags=tags, path=path, open_too=open_too)
        )

    async def snapshot_entries(
        self, snapshot_id: SnapshotId, *, under: str | None, after: str | None, limit: int
    ) -> tuple[list[EntryView], str | None]:
        return await self._run(
            lambda db: snap_sql.entries_page(db, snapshot_id, under=under, after=after, limit=limit)
        )

    async def snapshot_entry(self, snapshot_id: SnapshotId, path: str) -> EntryView | None:
        return await self._run(lambda db: snap_sql.entry(db, snapshot_id, path))

    async def remove_snapshots(self, snapshot_ids: Sequence[SnapshotId]) -> list[SnapshotId]:
        """Remove them; their root objects are left for ``orphan_roots`` to delete."""
        gone, _ = await self._run(lambda db: snap_sql.remove(db, snapshot_ids))
        return gone

    async def pin_snapshot_objects(
        self,
        snapshot_id: SnapshotId,
        lengths: Mapping[ChunkHash, int],
        *,
        root: ChunkHash | None,
        now: float,
    ) -> None:
        await self._run(
            lambda db: snap_sql.pin_objects(db, snapshot_id, lengths, root=root, now=now)
        )

    async def orphan_roots(self) -> list[ChunkHash]:
        return await self._run(snap_sql.orphan_roots)

    async def roots_deleted(self, hashes: Sequence[ChunkHash]) -> None:
        await self._run(lambda db: snap_sql.roots_deleted(db, hashes))

    async def expired_snapshots(self, *, now: float) -> list[SnapshotId]:
        return await self._run(lambda db: snap_sql.expired_open(db, now=now))

    async def snapshot_count(self) -> int:
        """Committed snapshots."""

        def do(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT COUNT(*) FROM snapshots WHERE state = 'committed'")
            return int(row.fetchone()[0])

        return await self._run(do)

    async def snapshot_chunk_sets(self) -> dict[SnapshotId, set[ChunkHash]]:
        return await self._run(snap_sql.chunk_sets)

    # drains ----------------------------------------------------------------------------------

    async def add_draining(self, node_ids: Iterable[NodeId], *, now: float) -> None:
        rows = [(n, now) for n in node_ids]

        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany("INSERT OR IGNORE INTO draining VALUES (?,?)", rows)

        await self._run(do)

    async def set_draining(self, node_ids: Iterable[NodeId], *, now: float) -> None:
        """Make the draining set exactly ``node_ids`` (keeping when each drain began)."""
        keep = sorted(set(node_ids))

        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
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

    # client keys ------------------------------------------------------------------------------

    async def add_key(self, row: KeyRow) -> None:
        """Record a new key; Conflict if its name is taken."""

        def do(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO client_keys VALUES (?,?,?,?,?,?)",
                    (row.key_id, row.name, row.role, row.digest, row.created, row.last_used),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"a key named {row.name!r} exists already") from None

        await self._run(do)

    async def client_keys(self) -> list[KeyRow]:
        def do(db: sqlite3.Connection) -> list[KeyRow]:
            rows = db.execute(
                "SELECT id, name, role, digest, created, last_used FROM client_keys ORDER BY name"
            )
            return [
                KeyRow(
                    key_id=str(r[0]),
                    name=str(r[1]),
                    role=str(r[2]),
                    digest=str(r[3]),
                    created=float(r[4]),
                    last_used=None if r[5] is None else float(r[5]),
                )
                for r in rows
            ]

        return await self._run(do)

    async def delete_key(self, name: str) -> bool:
        def do(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM client_keys WHERE name = ?", (name,)).rowcount > 0

        return await self._run(do)

    async def key_used(self, key_id: str, at: float) -> None:
        def do(db: sqlite3.Connection) -> None:
            db.execute("UPDATE client_keys SET last_used = ? WHERE id = ?", (at, key_id))

        await self._run(do)
