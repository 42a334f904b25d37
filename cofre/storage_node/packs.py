"""Pack files: small chunks appended to large files, found through an index.

A file per 4 KiB chunk costs a file create, an fsync and a directory entry each; appended to a
pack, a batch of them costs one write and one ``fdatasync``. Layout under ``packs/``:
``<id>.pack`` (ids only grow, never reused) and ``index.sqlite``.

A record is a 52-byte header (magic ``CFRP``, kind, payload length, the chunk's SHA-256, a CRC32)
and its payload. A chunk record's payload is the chunk (checked by its hash); a tombstone's is the
pack id and offset of the chunk record it kills (covered by the CRC). Every record names its
chunk, so the index can be rebuilt from the packs alone, deletes included.

The packs are the truth; the index (SQLite in WAL mode, ``synchronous=NORMAL``: a commit is not
synced) is a cache of them that also keeps each chunk's last use. Each pack's row says up to
where its records are in the index; at open, every pack is scanned from there: records past it
are indexed, and a torn tail (a record cut by a crash mid-append: a bad header, a short record,
bytes that do not match the hash, with no valid record after it) is cut off. A put is
acknowledged only once its records are synced and indexed; concurrent batches share one
``fdatasync`` (group commit). An index that cannot be opened is set aside and rebuilt.

Compaction rewrites a sealed pack whose garbage (deleted, superseded, rotten or never-indexed
records) passes a fraction of it: its live records are appended to the active pack like any
write, each index row moved only if it still points at the old record (a delete or a rot finding
meanwhile wins), tombstones kept while the pack they aim at exists; then the index is synced and
the old pack unlinked. A reader that looked the chunk up before the move reads the old pack (still
there, or gone: it looks again).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cofre.durable import fsync_dir
from cofre.models import ChunkHash

log = logging.getLogger(__name__)

MAGIC = b"CFRP"
KIND_CHUNK = 1
KIND_TOMBSTONE = 2
# magic, kind, 3 bytes padding, payload length, SHA-256 (raw), CRC32 of what precedes it (and
# of a tombstone's payload).
HEADER = struct.Struct("<4sB3xQ32sI")
HEADER_SIZE = HEADER.size
TOMBSTONE = struct.Struct("<QQ")  # target pack id, target offset
INDEX_FILE = "index.sqlite"
PACK_SUFFIX = ".pack"
# Buffers per pwritev call (below IOV_MAX, 1024 on Linux).
_IOV_BATCH = 512
# The index's WAL is checkpointed every this many pages (64 MiB), and its page cache (KiB).
_WAL_CHECKPOINT_PAGES = 16384
_CACHE_KIB = 8192
# Hashes per SQL ``IN (...)`` list (SQLite allows at least 999 parameters).
_SQL_BATCH = 500
# Times a read looks the chunk up again when its pack was compacted away under it.
_READ_RETRIES = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    hash TEXT PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    used REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY,
    indexed_upto INTEGER NOT NULL
);
"""


def pack_name(pack_id: int) -> str:
    return f"{pack_id:012d}{PACK_SUFFIX}"


def record_header(kind: int, chunk_hash: str, payload: bytes | memoryview) -> bytes:
    raw = HEADER.pack(MAGIC, kind, len(payload), bytes.fromhex(chunk_hash), 0)[:-4]
    crc = zlib.crc32(raw)
    if kind == KIND_TOMBSTONE:
        crc = zlib.crc32(payload, crc)
    return raw + struct.pack("<I", crc)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a chunk's bytes are: ``length`` bytes at ``offset`` of ``path``."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Record:
    kind: int
    offset: int  # of the header
    length: int  # of the payload
    hash: ChunkHash
    target: tuple[int, int] | None = None  # a tombstone's (pack, offset)

    @property
    def end(self) -> int:
        return self.offset + HEADER_SIZE + self.length


@dataclass(slots=True)
class ScanResult:
    records: list[Record]
    good_end: int  # the end of the last valid record (the size once a torn tail is cut)
    size: int
    skipped: int = 0  # bytes of bad records in the middle (rot), not cut


def _valid_at(buf: mmap.mmap | bytes, pos: int, size: int) -> Record | None:
    """The valid record at ``pos``, or None (bad or short header, short or rotten payload)."""
    if pos + HEADER_SIZE > size:
        return None
    magic, kind, length, raw_hash, crc = HEADER.unpack_from(buf, pos)
    if magic != MAGIC or kind not in (KIND_CHUNK, KIND_TOMBSTONE):
        return None
    start = pos + HEADER_SIZE
    if length > size - start:
        return None
    expect = zlib.crc32(buf[pos : pos + HEADER_SIZE - 4])
    chunk_hash = ChunkHash(raw_hash.hex())
    if kind == KIND_TOMBSTONE:
        if length != TOMBSTONE.size:
            return None
        payload = buf[start : start + length]
        if zlib.crc32(payload, expect) != crc:
            return None
        return Record(kind, pos, length, chunk_hash, TOMBSTONE.unpack(payload))
    if expect != crc:
        return None
    with memoryview(buf) as view:
        if hashlib.sha256(view[start : start + length]).hexdigest() != chunk_hash:
            return None
    return Record(kind, pos, length, chunk_hash)


def scan_pack(path: Path, start: int = 0) -> ScanResult:
    """Every valid record of a pack from ``start``, each verified. A bad stretch followed by a
    valid record is rot (skipped); one that runs to the end is a torn tail (``good_end``)."""
    size = path.stat().st_size
    if size <= start:
        return ScanResult([], min(start, size), size)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        records: list[Record] = []
        pos = good_end = start
        skipped = 0
        while pos < size:
            rec = _valid_at(buf, pos, size)
            if rec is not None:
                records.append(rec)
                pos = good_end = rec.end
                continue
            # Look for the next valid record; none: the rest is a torn tail.
            nxt = buf.find(MAGIC, pos + 1)
            while nxt != -1 and _valid_at(buf, nxt, size) is None:
                nxt = buf.find(MAGIC, nxt + 1)
            if nxt == -1:
                break
            skipped += nxt - pos
            pos = nxt
        return ScanResult(records, good_end, size, skipped)


@dataclass(slots=True)
class _Pack:
    """A pack open for appends."""

    id: int
    path: Path
    fd: int
    size: int
    synced: int
    writers: int = 0  # appends not yet synced (the fd stays open for them)
    sealed: bool = False
    sync_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True, slots=True)
class PackStats:
    chunks: int
    chunk_bytes: int  # the chunks' own bytes
    packs: int
    pack_bytes: int  # on disk: headers, garbage and all
    garbage_bytes: int


class PackStore:
    """Packs and their index in one directory. Thread-safe; every method blocks (callers run
    them in worker threads)."""

    def __init__(self, directory: Path, *, target_bytes: int) -> None:
        self.dir = Path(directory)
        self.target_bytes = target_bytes
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._append_lock = threading.Lock()
        self._active: _Pack | None = None
        # Pack id -> its size on disk, and the bytes of its live records (headers included).
        self._sizes: dict[int, int] = {}
        self._live: dict[int, int] = {}
        self._count = 0
        self._chunk_bytes = 0
        self._next_id = 1
        # Packs being compacted: not compacted twice at once.
        self._compacting: set[int] = set()
        # Pack id -> appends to it not yet synced and indexed. A sealed pack with some is never
        # compacted: records not indexed yet look like garbage there.
        self._pending: dict[int, int] = {}
        self.compacted_packs = 0
        self.compacted_bytes = 0  # live bytes copied by compaction
        self.reclaimed_bytes = 0

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        self.dir.mkdir(exist_ok=True)
        index = self.dir / INDEX_FILE
        try:
            db = self._connect(index)
        except sqlite3.DatabaseError as exc:
            aside = index.with_name(f"{INDEX_FILE}.broken-{time.time_ns()}")
            log.warning("pack index unreadable, rebuilding it from the packs error=%s", exc)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{index}{suffix}", f"{aside}{suffix}")
            db = self._connect(index)
        with self._db_lock:
            self._db = db
        self._recover()

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # The packs are synced; the index may lag them after a power loss and is caught up
            # by the scan at open. Compaction syncs it before it unlinks a pack.
            db.execute("PRAGMA synchronous=NORMAL")
            # Rows keyed by hash land on random pages: a checkpoint (and its fsync) every 1000
            # WAL pages, SQLite's default, halves the insert rate of a big index; a larger
            # page cache saves re-reads. Measured in bench/packstore.py.
            db.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM packs").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._append_lock:
            if self._active is not None:
                self._seal(self._active)
            self._active = None
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _pack_ids_on_disk(self) -> list[int]:
        ids = []
        for name in os.listdir(self.dir):
            stem = name.removesuffix(PACK_SUFFIX)
            if name.endswith(PACK_SUFFIX) and stem.isdigit():
                ids.append(int(stem))
        return sorted(ids)

    def path_of(self, pack_id: int) -> Path:
        return self.dir / pack_name(pack_id)

    def _recover(self) -> None:
        """Bring the index up to the packs: drop packs gone, index what the packs hold past
        their mark, cut torn tails; then count what is live."""
        on_disk = self._pack_ids_on_disk()
        with self._db_lock:
            db = self._require_db()
            marks = dict(db.execute("SELECT id, indexed_upto FROM packs").fetchall())
            gone = [p for p in marks if p not in set(on_disk)]
            if gone:
                with _transaction(db):
                    for p in gone:
                        n = db.execute("DELETE FROM chunks WHERE pack = ?", (p,)).rowcount
                        db.execute("DELETE FROM packs WHERE id = ?", (p,))
                        log.warning(
                            "pack missing, its chunks dropped from the index pack=%d chunks=%d",
                            p,
                            n,
                        )
        indexed = cut = 0
        now = time.time()
        for pack_id in on_disk:
            path = self.path_of(pack_id)
            start = marks.get(pack_id, 0)
            scan = scan_pack(path, start)
            with self._db_lock:
                db = self._require_db()
                with _transaction(db):
                    for rec in scan.records:
                        if rec.kind == KIND_CHUNK:
                            db.execute(
                                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?)",
                                (rec.hash, pack_id, rec.offset, rec.length, now),
                            )
                        else:
                            assert rec.target is not None
                            db.execute(
                                "DELETE FROM chunks WHERE hash = ? AND pack = ? AND offset = ?",
                                (rec.hash, *rec.target),
                            )
                    db.execute(
                        "INSERT OR REPLACE INTO packs VALUES (?, ?)", (pack_id, scan.good_end)
                    )
            indexed += len(scan.records)
            if scan.good_end < scan.size:
                # A record cut by a crash mid-append: never acknowledged, so nothing is lost.
                with open(path, "r+b") as fh:
                    fh.truncate(scan.good_end)
                    os.fsync(fh.fileno())
                cut += scan.size - scan.good_end
                log.warning(
                    "pack torn tail cut pack=%d at_offset=%d bytes=%d",
                    pack_id,
                    scan.good_end,
                    scan.size - scan.good_end,
                )
            if scan.skipped:
                log.warning("pack holds unreadable records pack=%d bytes=%d", pack_id, scan.skipped)
        with self._db_lock:
            db = self._require_db()
            rows = db.execute(
                "SELECT pack, count(*), sum(length) FROM chunks GROUP BY pack"
            ).fetchall()
        self._sizes = {p: self.path_of(p).stat().st_size for p in on_disk}
        self._live = {p: 0 for p in on_disk}
        self._count = self._chunk_bytes = 0
        for pack_id, count, total in rows:
            self._live[pack_id] = total + count * HEADER_SIZE
            self._count += count
            self._chunk_bytes += total
        self._next_id = (on_disk[-1] + 1) if on_disk else 1
        self._active = None
        if on_disk and self._sizes[on_disk[-1]] < self.target_bytes:
            # Go on appending to the last pack (its tail is clean now).
            last = on_disk[-1]
            fd = os.open(self.path_of(last), os.O_WRONLY)
            size = self._sizes[last]
            self._active = _Pack(last, self.path_of(last), fd, size, size)
        log.info(
            "packs opened dir=%s packs=%d chunks=%d indexed_at_open=%d torn_bytes_cut=%d",
            self.dir,
            len(on_disk),
            self._count,
            indexed,
            cut,
        )

    def _require_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise OSError("the pack index is not open")
        return self._db

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, chunk_hash: ChunkHash) -> tuple[int, int, int] | None:
        """(pack, offset of the record, chunk length), or None."""
        with self._db_lock:
            row = (
                self._require_db()
                .execute("SELECT pack, offset, length FROM chunks WHERE hash = ?", (chunk_hash,))
                .fetchone()
            )
        return None if row is None else (row[0], row[1], row[2])

    def locate(self, chunk_hash: ChunkHash) -> Location | None:
        found = self.lookup(chunk_hash)
        if found is None:
            return None
        pack, offset, length = found
        return Location(self.path_of(pack), offset + HEADER_SIZE, length)

    def length_of(self, chunk_hash: ChunkHash) -> int | None:
        found = self.lookup(chunk_hash)
        return None if found is None else found[2]

    def read(
        self, chunk_hash: ChunkHash, *, limit: int | None = None
    ) -> tuple[bytes, tuple[int, int]] | None:
        """The chunk's stored bytes (not verified; at most ``limit``) and its (pack, offset),
        or None if it is not in a pack. A pack compacted away meanwhile: looked up again."""
        for _ in range(_READ_RETRIES):
            found = self.lookup(chunk_hash)
            if found is None:
                return None
            pack, offset, length = found
            want = length if limit is None else min(limit, length)
            try:
                fd = os.open(self.path_of(pack), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                data = os.pread(fd, want, offset + HEADER_SIZE)
            finally:
                os.close(fd)
            return data, (pack, offset)
        raise OSError(f"chunk {chunk_hash} kept moving while it was read")

    def iter_hashes(self, *, after: str, limit: int) -> list[tuple[ChunkHash, int]]:
        with self._db_lock:
            rows = (
                self._require_db()
                .execute(
                    "SELECT hash, length FROM chunks WHERE hash > ? ORDER BY hash LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        return [(ChunkHash(h), n) for h, n in rows]

    def inventory(self, *, before: float | None) -> list[tuple[ChunkHash, int, float]]:
        query = "SELECT hash, length, used FROM chunks"
        args: tuple[float, ...] = ()
        if before is not None:
            query += " WHERE used < ?"
            args = (before,)
        with self._db_lock:
            rows = self._require_db().execute(query, args).fetchall()
        return [(ChunkHash(h), n, u) for h, n, u in rows]

    def touch(self, hashes: Sequence[ChunkHash], *, at: float | None = None) -> int:
        """Mark chunks used now (GC spares them); -> how many are held."""
        when = time.time() if at is None else at
        with self._db_lock:
            db = self._require_db()
            with _transaction(db):
                cur = db.executemany(
                    "UPDATE chunks SET used = ? WHERE hash = ?", [(when, h) for h in hashes]
                )
                return cur.rowcount

    def stats(self) -> PackStats:
        pack_bytes = sum(self._sizes.values())
        live = sum(self._live.values())
        return PackStats(
            chunks=self._count,
            chunk_bytes=self._chunk_bytes,
            packs=len(self._sizes),
            pack_bytes=pack_bytes,
            garbage_bytes=max(0, pack_bytes - live),
        )

    # -- appends ----------------------------------------------------------------------------

    def _new_pack(self) -> _Pack:
        pack_id = self._next_id
        self._next_id += 1
        path = self.path_of(pack_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        # Its directory entry durable before any ack rests on its records.
        fsync_dir(self.dir)
        with self._db_lock:
            db = self._require_db()
            with _transaction(db):
                db.execute("INSERT OR REPLACE INTO packs VALUES (?, 0)", (pack_id,))
        self._sizes[pack_id] = 0
        self._live[pack_id] = 0
        log.debug("pack created pack=%d", pack_id)
        return _Pack(pack_id, path, fd, 0, 0)

    def _append(self, records: Sequence[tuple[bytes, bytes | memoryview]]) -> tuple[_Pack, int]:
        """Write (header, payload) records at the active pack's end; -> (pack, first offset).
        The caller syncs with :meth:`_sync` and then :meth:`_release`."""
        with self._append_lock:
            active = self._active
            if active is None or active.size >= self.target_bytes:
                if active is not None:
                    self._seal(active)
                active = self._active = self._new_pack()
            start = active.size
            buffers: list[bytes | memoryview] = [b for rec in records for b in rec]
            total = sum(len(b) for b in buffers)
            try:
                pos = start
                for i in range(0, len(buffers), _IOV_BATCH):
                    part = buffers[i : i + _IOV_BATCH]
                    want = sum(len(b) for b in part)
                    done = os.pwritev(active.fd, part, pos)
                    if done != want:  # a regular file writes all or fails; be sure
                        raise OSError(f"short write to pack {active.id}: {done} of {want}")
                    pos += want
            except OSError:
                # Leave no partial record behind (the next append would follow it).
                with contextlib.suppress(OSError):
                    os.ftruncate(active.fd, start)
                raise
            active.size = start + total
            active.writers += 1
            self._pending[active.id] = self._pending.get(active.id, 0) + 1
            self._sizes[active.id] = active.size
            return active, start

    def _seal(self, pack: _Pack) -> None:
        pack.sealed = True
        if pack.writers == 0:
            os.close(pack.fd)

    def _sync(self, pack: _Pack) -> None:
        """Make everything appended to ``pack`` so far durable; concurrent callers share one
        ``fdatasync``."""
        upto = pack.size
        with pack.sync_lock:
            if pack.synced >= upto:
                return
            target = pack.size
            os.fdatasync(pack.fd)
            pack.synced = max(pack.synced, target)

    def _release(self, pack: _Pack) -> None:
        with self._append_lock:
            pack.writers -= 1
            left = self._pending.get(pack.id, 1) - 1
            if left > 0:
                self._pending[pack.id] = left
            else:
                self._pending.pop(pack.id, None)
            if pack.sealed and pack.writers == 0:
                os.close(pack.fd)

    def _write_synced(
        self,
        records: Sequence[tuple[bytes, bytes | memoryview]],
        *,
        index: Callable[[int, int], None],
    ) -> None:
        """Append records, sync them, then ``index(pack, first offset)``; the pack counts as
        written to (never compacted) until they are indexed."""
        pack, start = self._append(records)
        try:
            self._sync(pack)
            index(pack.id, start)
        finally:
            self._release(pack)

    def put_many(self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]) -> list[bool]:
        """Append chunks (hashes checked by the caller), sync once, index them; per item, True
        if it is new here. Held ones are touched, not written again."""
        if not items:
            return []
        now = time.time()
        wanted = list(dict.fromkeys(h for h, _ in items))
        held: set[ChunkHash] = set()
        with self._db_lock:
            db = self._require_db()
            for i in range(0, len(wanted), _SQL_BATCH):
                part = wanted[i : i + _SQL_BATCH]
                query = f"SELECT hash FROM chunks WHERE hash IN ({','.join('?' * len(part))})"
                held.update(ChunkHash(h) for (h,) in db.execute(query, part))
        todo: dict[ChunkHash, bytes | memoryview] = {}
        for h, data in items:
            if h not in held:
                todo.setdefault(h, data)
        if held:
            self.touch(sorted(held), at=now)
        created: set[ChunkHash] = set()
        if todo:
            records = [(record_header(KIND_CHUNK, h, d), d) for h, d in todo.items()]

            def index(pack_id: int, start: int) -> None:
                rows = []
                pos = start
                for h, d in todo.items():
                    rows.append((h, pack_id, pos, len(d), now))
                    pos += HEADER_SIZE + len(d)
                with self._db_lock:
                    db = self._require_db()
                    with _transaction(db):
                        for row in rows:
                            if db.execute(
                                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?)", row
                            ).rowcount:
                                created.add(row[0])
                                live = self._live.get(pack_id, 0) + HEADER_SIZE + row[3]
                                self._live[pack_id] = live
                                self._count += 1
                                self._chunk_bytes += row[3]
                        db.execute(
                            "UPDATE packs SET indexed_upto = max(indexed_upto, ?) WHERE id = ?",
                            (pos, pack_id),
                        )

            self._write_synced(records, index=index)
        seen: set[ChunkHash] = set()
        out = []
        for h, _ in items:
            out.append(h in created and h not in seen)
            seen.add(h)
        return out

    # -- deletes ----------------------------------------------------------------------------

    def delete_many(self, hashes: Sequence[ChunkHash]) -> list[tuple[ChunkHash, int]]:
        """Drop chunks from the index and append their tombstones; -> (hash, length) of those
        that were held."""
        with self._db_lock:
            db = self._require_db()
            found = []
            for h in dict.fromkeys(hashes):
                row = db.execute(
                    "SELECT pack, offset, length FROM chunks WHERE hash = ?", (h,)
                ).fetchone()
                if row is not None:
                    found.append((h, row[0], row[1], row[2]))
        if not found:
            return []
        tombs = []
        for h, pack, offset, _ in found:
            payload = TOMBSTONE.pack(pack, offset)
            tombs.append((record_header(KIND_TOMBSTONE, h, payload), payload))
        out = []

        def index(_pack: int, _start: int) -> None:
            with self._db_lock:
                db = self._require_db()
                with _transaction(db):
                    for h, pack, offset, length in found:
                        if self._drop_row(db, h, pack, offset, length):
                            out.append((h, length))

        self._write_synced(tombs, index=index)
        return out

    def forget(self, chunk_hash: ChunkHash, at: tuple[int, int]) -> int | None:
        """Drop a rotten record's row (if it is still the one at ``at``); -> its length. The
        record stays in its pack as garbage; scans skip it (its hash does not match)."""
        with self._db_lock:
            db = self._require_db()
            row = db.execute(
                "SELECT length FROM chunks WHERE hash = ? AND pack = ? AND offset = ?",
                (chunk_hash, *at),
            ).fetchone()
            if row is None:
                return None
            with _transaction(db):
                self._drop_row(db, chunk_hash, at[0], at[1], row[0])
            return int(row[0])

    def _drop_row(
        self, db: sqlite3.Connection, chunk_hash: ChunkHash, pack: int, offset: int, length: int
    ) -> bool:
        gone = db.execute(
            "DELETE FROM chunks WHERE hash = ? AND pack = ? AND offset = ?",
            (chunk_hash, pack, offset),
        ).rowcount
        if gone:
            self._live[pack] = self._live.get(pack, 0) - HEADER_SIZE - length
            self._count -= 1
            self._chunk_bytes -= length
        return bool(gone)

    # -- compaction -------------------------------------------------------------------------

    def garbage_fraction(self, pack_id: int) -> float:
        size = self._sizes.get(pack_id, 0)
        if size == 0:
            return 0.0
        return max(0.0, size - self._live.get(pack_id, 0)) / size

    def compaction_candidates(self, fraction: float) -> list[int]:
        """Sealed packs whose garbage is over ``fraction`` of them, the most garbage first."""
        active = self._active.id if self._active is not None else None
        busy = set(self._pending) | self._compacting
        found = [
            p
            for p in list(self._sizes)
            if p != active and p not in busy and self.garbage_fraction(p) > fraction
        ]
        return sorted(found, key=self.garbage_fraction, reverse=True)

    def compact(
        self,
        pack_id: int,
        *,
        step_bytes: int,
        pace: Callable[[int], None],
        on_rot: Callable[[ChunkHash, bytes, tuple[int, int]], None],
    ) -> tuple[int, int]:
        """Rewrite one pack: its live records appended anew, then it is removed. ``pace`` is
        called with the bytes moved after each step (it may sleep); ``on_rot`` with a live
        record whose bytes do not match its hash. -> (live bytes copied, bytes reclaimed)."""
        with self._append_lock:
            # Sealed packs take no new appends: once none is pending, none will be.
            if (self._active is not None and self._active.id == pack_id) or (
                pack_id in self._pending
            ):
                return 0, 0
            self._compacting.add(pack_id)
        try:
            return self._compact(pack_id, step_bytes=step_bytes, pace=pace, on_rot=on_rot)
        finally:
            self._compacting.discard(pack_id)

    def _compact(
        self,
        pack_id: int,
        *,
        step_bytes: int,
        pace: Callable[[int], None],
        on_rot: Callable[[ChunkHash, bytes, tuple[int, int]], None],
    ) -> tuple[int, int]:
        path = self.path_of(pack_id)
        size = path.stat().st_size
        copied = written = 0
        for batch in _steps(self._records_of(path), step_bytes):
            moves: list[tuple[ChunkHash, int, int, bytes]] = []
            keep: list[tuple[bytes, bytes]] = []
            with open(path, "rb") as fh:
                for kind, offset, length, chunk_hash, target in batch:
                    if kind == KIND_TOMBSTONE:
                        assert target is not None
                        if target[0] != pack_id and self.path_of(target[0]).exists():
                            payload = TOMBSTONE.pack(*target)
                            keep.append(
                                (record_header(KIND_TOMBSTONE, chunk_hash, payload), payload)
                            )
                        continue
                    if self.lookup(chunk_hash) != (pack_id, offset, length):
                        continue  # deleted, superseded or never indexed: garbage
                    fh.seek(offset + HEADER_SIZE)
                    data = fh.read(length)
                    if hashlib.sha256(data).hexdigest() != chunk_hash:
                        on_rot(chunk_hash, data, (pack_id, offset))
                        continue
                    moves.append((chunk_hash, offset, length, data))
            records = [(record_header(KIND_CHUNK, h, d), d) for h, _, _, d in moves] + keep
            if records:
                copied += self._write_moves(records, moves, keep, pack_id)
                written += sum(len(head) + len(body) for head, body in records)
            pace(sum(n for _, _, n, _ in moves) + sum(r[2] for r in batch))
        with self._db_lock:
            db = self._require_db()
            # Every move durable in the index before the old records go.
            db.execute("PRAGMA synchronous=FULL")
            try:
                with _transaction(db):
                    left = db.execute(
                        "SELECT count(*) FROM chunks WHERE pack = ?", (pack_id,)
                    ).fetchone()[0]
                    if left:
                        # A write indexed a record here meanwhile (cannot happen for a sealed
                        # pack); keep the pack.
                        log.warning("pack not removed, it still holds chunks pack=%d", pack_id)
                        return copied, 0
                    db.execute("DELETE FROM packs WHERE id = ?", (pack_id,))
            finally:
                db.execute("PRAGMA synchronous=NORMAL")
        os.unlink(path)
        fsync_dir(self.dir)
        self._sizes.pop(pack_id, None)
        self._live.pop(pack_id, None)
        reclaimed = size - written  # the old pack, less what its records take in new ones
        self.compacted_packs += 1
        self.compacted_bytes += copied
        self.reclaimed_bytes += max(0, reclaimed)
        log.info(
            "pack compacted pack=%d size=%d live_copied=%d reclaimed=%d",
            pack_id,
            size,
            copied,
            reclaimed,
        )
        return copied, reclaimed

    def _write_moves(
        self,
        records: list[tuple[bytes, bytes]],
        moves: list[tuple[ChunkHash, int, int, bytes]],
        keep: list[tuple[bytes, bytes]],
        old_pack: int,
    ) -> int:
        """Append a compaction step's records; move each row that still points at its old
        record; -> the chunk bytes moved."""
        copied = 0

        def index(new_id: int, start: int) -> None:
            nonlocal copied
            pos = start
            with self._db_lock:
                db = self._require_db()
                with _transaction(db):
                    for h, old_offset, length, _ in moves:
                        moved = db.execute(
                            "UPDATE chunks SET pack = ?, offset = ? "
                            "WHERE hash = ? AND pack = ? AND offset = ?",
                            (new_id, pos, h, old_pack, old_offset),
                        ).rowcount
                        if moved:
                            rec = HEADER_SIZE + length
                            self._live[new_id] = self._live.get(new_id, 0) + rec
                            self._live[old_pack] = self._live.get(old_pack, 0) - rec
                            copied += length
                        pos += HEADER_SIZE + length
                    end = pos + sum(len(head) + len(body) for head, body in keep)
                    db.execute(
                        "UPDATE packs SET indexed_upto = max(indexed_upto, ?) WHERE id = ?",
                        (end, new_id),
                    )

        self._write_synced(records, index=index)
        return copied

    @staticmethod
    def _records_of(
        path: Path,
    ) -> Iterator[tuple[int, int, int, ChunkHash, tuple[int, int] | None]]:
        """(kind, offset, length, hash, tombstone target) of each well-formed header (payloads
        are checked when copied)."""
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos = 0
            while pos < size:
                rec = _header_at(buf, pos, size)
                if rec is None:
                    nxt = buf.find(MAGIC, pos + 1)
                    while nxt != -1 and _header_at(buf, nxt, size) is None:
                        nxt = buf.find(MAGIC, nxt + 1)
                    if nxt == -1:
                        return
                    pos = nxt
                    continue
                yield rec
                pos += HEADER_SIZE + rec[2]


def _header_at(
    buf: mmap.mmap, pos: int, size: int
) -> tuple[int, int, int, ChunkHash, tuple[int, int] | None] | None:
    if pos + HEADER_SIZE > size:
        return None
    magic, kind, length, raw_hash, crc = HEADER.unpack_from(buf, pos)
    if magic != MAGIC or kind not in (KIND_CHUNK, KIND_TOMBSTONE) or length > size - pos:
        return None
    expect = zlib.crc32(buf[pos : pos + HEADER_SIZE - 4])
    start = pos + HEADER_SIZE
    if kind == KIND_TOMBSTONE:
        payload = buf[start : start + length]
        if length != TOMBSTONE.size or zlib.crc32(payload, expect) != crc:
            return None
        return kind, pos, length, ChunkHash(raw_hash.hex()), TOMBSTONE.unpack(payload)
    if expect != crc:
        return None
    return kind, pos, length, ChunkHash(raw_hash.hex()), None


def _steps(
    records: Iterator[tuple[int, int, int, ChunkHash, tuple[int, int] | None]], step_bytes: int
) -> Iterator[list[tuple[int, int, int, ChunkHash, tuple[int, int] | None]]]:
    batch: list[tuple[int, int, int, ChunkHash, tuple[int, int] | None]] = []
    total = 0
    for rec in records:
        batch.append(rec)
        total += rec[2]
        if total >= step_bytes:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def read_index(directory: Path) -> dict[ChunkHash, Location]:
    """The chunks a pack directory's index lists (read-only; for tools and tests looking at a
    store from outside its node)."""
    index = directory / INDEX_FILE
    if not index.exists():
        return {}
    db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT hash, pack, offset, length FROM chunks").fetchall()
    finally:
        db.close()
    return {
        ChunkHash(h): Location(directory / pack_name(p), o + HEADER_SIZE, n) for h, p, o, n in rows
    }
