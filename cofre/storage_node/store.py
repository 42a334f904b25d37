"""The chunk store: content-addressed chunks on the node's volume, packed or a file each.

Chunks up to ``pack.max_chunk_bytes`` are appended to pack files under ``packs/`` with an index
(cofre.storage_node.packs: one sync per batch, torn tails cut at open, compaction in the
background). Larger ones, and every chunk of a store written before packs existed, are files:
``chunks/ab/cd/<hash>`` (two fan-out levels keep directories small). Either way a read looks in
the packs first, then for the file. ``quarantine/<hash>.<ns>`` holds the bytes of copies that no
longer match their hash. A file write goes
to a unique temp file in the target directory, is fsynced, renamed into place and the directory
fsynced, so a chunk is either absent or complete after a crash; a batch of chunks syncs the
filesystem once after its writes and once after its renames instead (cofre.durable). Paths are
built only from validated hashes.

Every blocking call runs in a worker thread; the public coroutine methods wrap them. Operations
on one hash are serialised by a striped thread lock, so batch calls (check, delete) can run a
whole batch in one thread hop.

The volume can go away under a running node (its directory removed, wiped or unmounted). Every
operation first looks at the layout (a few stats); while it is gone the store is not open and
operations raise ``StoreUnavailable`` with the reason, logged once. It reopens by itself when the
data directory is back: a wiped store (the directory there, its layout not) is recreated empty,
and the manager's repair refills it. A data directory that was a mount point is used again only
once it is one again, so chunks never land on the disk beneath an unmounted volume.

A copy's size is checked wherever its expected length is known (the manager sends the catalog's
lengths with ``check``): a file of another size is corrupt and quarantined like a hash mismatch.
Without a length, only a zero-byte file for a non-empty chunk is known to be wrong.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cofre.config import PackConfig
from cofre.durable import (
    fsync_dir,
    have_syncfs,
    sync_filesystem,
    write_synced,
    write_unsynced,
)
from cofre.errors import InsufficientStorage, IntegrityError, NotFound, StoreUnavailable
from cofre.models import MANIFEST_PREFIX, ChunkHash, is_chunk_hash
from cofre.pacing import Pacer
from cofre.storage_node.packs import Location, PackStats, PackStore, read_index

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
_STRIPES = 256
# Threads writing one batch's files; measured on ext4: 16 concurrent fsyncs ~4x one at a time.
IO_THREADS = 16
# Chunks in a batch from which one syncfs per step beats an fsync per file and directory.
SYNCFS_MIN_BATCH = 8
_HEX2 = frozenset(f"{i:02x}" for i in range(256))
# The only chunk whose file may be empty.
EMPTY_CHUNK = ChunkHash(hashlib.sha256(b"").hexdigest())
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Bytes of a pack compaction reads per step (the pacer is asked between steps).
COMPACT_STEP_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    hash: ChunkHash
    length: int
    mtime: float


@dataclass(slots=True)
class CheckResult:
    present: list[ChunkHash] = field(default_factory=list)
    missing: list[ChunkHash] = field(default_factory=list)
    corrupt: list[ChunkHash] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoreStats:
    stored_bytes: int
    chunk_count: int
    free_bytes: int


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class StoreInUse(OSError):
    """Another process has this data directory open."""


class ChunkStore:
    """Chunks of one node on its volume. Call :meth:`open` before use."""

    def __init__(
        self, data_dir: Path, *, reserve_bytes: int = 0, packs: PackConfig | None = None
    ) -> None:
        self.root = Path(data_dir)
        self.chunks_dir = self.root / "chunks"
        self.quarantine_dir = self.root / "quarantine"
        self.packs_dir = self.root / "packs"
        self.reserve_bytes = reserve_bytes
        self.pack_config = packs if packs is not None else PackConfig()
        self.packs = PackStore(self.packs_dir, target_bytes=self.pack_config.target_bytes)
        # Set when the store closes: a compaction in its worker thread stops at its next step.
        self._stop = threading.Event()
        self._compact_lock = threading.Lock()
        self._compact_pacer = Pacer(self.pack_config.compact_bytes_per_s)
        self.is_open = False
        self._lock_fd: int | None = None
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._stats_lock = threading.Lock()
        # Writes and fsyncs of a batch (put_many) run here, concurrently.
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="chunk-io")
        self._stored_bytes = 0
        self._chunk_count = 0
        # Chunks (and bytes) written since start, for the node's metrics.
        self.received_chunks = 0
        self.received_bytes = 0
        # Hashes whose file was moved to quarantine and not yet replaced or deleted: reported
        # as corrupt (not merely missing) so fsck tells rot from loss.
        self._corrupt: set[ChunkHash] = set()
        # Fan-out directories ("ab", "ab/cd") whose own entries are known durable; one made
        # since is used by a write only after its parent was fsynced, whoever made it.
        self._durable_dirs: set[str] = set()
        # Chunks renamed into place whose directory is not fsynced yet. A writer that finds
        # one of these already held syncs the directory itself before it acks, so an ack
        # never rests on another writer's unfinished rename.
        self._unsynced: set[ChunkHash] = set()
        # Why the store cannot be used now (None: it can); logged when it changes.
        self.fault: str | None = None
        self._health_lock = threading.Lock()
        # (st_dev, st_ino) of chunks/ and packs/ when opened: others there mean another store.
        self._identity: tuple[int, int, int, int] | None = None
        # The data directory was a mount point: used again only while it is one.
        self._was_mount = False

    # -- paths ------------------------------------------------------------------------------

    def packed(self, length: int) -> bool:
        """A chunk of this many bytes goes to a pack (else to a file of its own)."""
        return length <= self.pack_config.max_chunk_bytes

    def locate(self, chunk_hash: ChunkHash) -> Location | None:
        """Where the chunk's bytes are on disk (for tools and tests), or None."""
        found = self.packs.locate(chunk_hash)
        if found is not None:
            return found
        path = self.path_of(chunk_hash)
        size = self._size_or_none(path)
        return None if size is None else Location(path, 0, size)

    def path_of(self, chunk_hash: ChunkHash) -> Path:
        if not is_chunk_hash(chunk_hash):  # defence in depth: callers parse hashes already
            raise ValueError("not a chunk hash")
        return self.chunks_dir / chunk_hash[:2] / chunk_hash[2:4] / chunk_hash

    def _lock(self, chunk_hash: ChunkHash) -> threading.Lock:
        return self._stripes[int(chunk_hash[:2], 16) % _STRIPES]

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self._stop.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        self._open_layout()

    def _open_layout(self) -> None:
        """(Re)create the layout inside an existing data directory and scan what it holds."""
        self.chunks_dir.mkdir(exist_ok=True)
        self.quarantine_dir.mkdir(exist_ok=True)
        self._take_dir_lock()
        with self._compact_lock:  # not under a compaction step
            self.packs.close()
            self.packs.open()
        self._identity = self._dirs_identity()
        self._was_mount = self._was_mount or os.path.ismount(self.root)
        self._unsynced = set()
        stored = count = stale = 0
        durable: set[str] = set()
        for directory in self._leaf_dirs():
            # What exists at start is on disk: no fsync needed before using it.
            durable.update((directory.parent.name, f"{directory.parent.name}/{directory.name}"))
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(TEMP_PREFIX):
                        # A write that crashed before its rename: never a complete chunk.
                        try:
                            os.unlink(entry.path)
                            stale += 1
                        except FileNotFoundError:
                            pass
                    elif is_chunk_hash(entry.name) and entry.is_file(follow_symlinks=False):
                        stored += entry.stat(follow_symlinks=False).st_size
                        count += 1
        corrupt: set[ChunkHash] = set()
        with os.scandir(self.quarantine_dir) as entries:
            for entry in entries:
                name = ChunkHash(entry.name.split(".", 1)[0])
                if is_chunk_hash(name) and not self._held_anywhere(name):
                    corrupt.add(name)
        packed = self.packs.stats()
        stored += packed.chunk_bytes
        count += packed.chunks
        with self._stats_lock:
            self._stored_bytes, self._chunk_count = stored, count
        self._corrupt = corrupt
        self._durable_dirs = durable
        # What an earlier process renamed may still sit in the page cache; flush it once, so
        # everything held at start is durable.
        os.sync()
        self.fault = None
        self.is_open = True
        log.info(
            "chunk store opened data_dir=%s chunks=%d stored_bytes=%d stale_temp_removed=%d "
            "quarantined=%d",
            self.root,
            count,
            stored,
            stale,
            len(corrupt),
        )

    def _take_dir_lock(self) -> None:
        """One process per data dir: a second one would delete the first one's temp files."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(f"data dir {self.root} is in use by another storage node") from None
        self._lock_fd = fd

    def close(self) -> None:
        self.is_open = False
        self._stop.set()
        with self._compact_lock:  # a compaction step in flight finishes first
            self.packs.close()
        self._release_dir_lock()

    def _dirs_identity(self) -> tuple[int, int, int, int]:
        a, b = os.stat(self.chunks_dir), os.stat(self.packs_dir)
        return (a.st_dev, a.st_ino, b.st_dev, b.st_ino)

    def _held_anywhere(self, chunk_hash: ChunkHash) -> bool:
        return self.packs.lookup(chunk_hash) is not None or self.path_of(chunk_hash).exists()

    def _release_dir_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- the volume's health ----------------------------------------------------------------

    def _layout_fault(self) -> str | None:
        """Why the layout opened is not there now, or None (a few stats, no lock)."""
        try:
            if not stat.S_ISDIR(os.stat(self.root).st_mode):
                return f"data directory {self.root} is not a directory"
            if self._was_mount and not os.path.ismount(self.root):
                return f"data directory {self.root} is no longer a mounted volume"
            if self._dirs_identity() != self._identity:
                return f"chunk directory {self.chunks_dir} or {self.packs_dir} was replaced"
            os.stat(self.quarantine_dir)
        except FileNotFoundError as exc:
            return f"{exc.filename} is missing (removed, wiped or unmounted)"
        except OSError as exc:
            return f"data directory {self.root} cannot be read: {exc.strerror}"
        return None

    def _can_reopen(self) -> bool:
        """The data directory is there (and mounted, if it was): its layout may be recreated."""
        try:
            return self.root.is_dir() and (not self._was_mount or os.path.ismount(self.root))
        except OSError:
            return False

    def _check_health_sync(self) -> str | None:
        """Look at the layout, reopen it if it can be; -> why the store is unusable, or None.
        A change is logged once: a WARNING when the store goes, INFO when it is back."""
        if self._lock_fd is None:  # never opened, or closed: nothing to watch
            return "chunk store is not open"
        if self.fault is None and self._layout_fault() is None:
            return None
        with self._health_lock:
            was = self.fault
            fault = self._layout_fault()
            if fault is None:
                if was is not None:
                    self.fault, self.is_open = None, True
                    log.info("chunk store available again data_dir=%s", self.root)
                return None
            self.is_open = False
            if self._can_reopen():
                try:
                    self._release_dir_lock()
                    self._open_layout()
                except OSError as exc:
                    fault = f"{fault}; reopening it failed: {exc}"
                else:
                    if was is None:
                        log.warning(
                            "chunk store layout reopened data_dir=%s reason=%s chunks=%d",
                            self.root,
                            fault,
                            self._chunk_count,
                        )
                    else:
                        log.info(
                            "chunk store available again data_dir=%s was=%s chunks=%d",
                            self.root,
                            was,
                            self._chunk_count,
                        )
                    return None
            self.fault = fault
            if was is None:
                log.warning("chunk store unavailable data_dir=%s reason=%s", self.root, fault)
            return fault

    async def health(self) -> str | None:
        """Why the store cannot be used now (its volume gone), or None; recovers if it can."""
        return await asyncio.to_thread(self._check_health_sync)

    def _guard(self) -> None:
        fault = self._check_health_sync()
        if fault is not None:
            raise StoreUnavailable(f"chunk store unavailable: {fault}")

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on a usable store: a vanished volume is StoreUnavailable, a full one
        InsufficientStorage, before or during ``fn``."""
        self._guard()
        try:
            return fn(*args)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise InsufficientStorage(f"no space left on the volume to {what}") from exc
            self._guard()  # the volume went away meanwhile: say so, not the raw error
            raise

    def _leaf_dirs(self) -> Iterator[Path]:
        """chunks/ab/cd directories, skipping anything not named like a fan-out level."""
        for first in sorted(os.listdir(self.chunks_dir)):
            if first not in _HEX2 or not (self.chunks_dir / first).is_dir():
                continue
            for second in sorted(os.listdir(self.chunks_dir / first)):
                leaf = self.chunks_dir / first / second
                if second in _HEX2 and leaf.is_dir():
                    yield leaf

    # -- stats ------------------------------------------------------------------------------

    @property
    def stored_bytes(self) -> int:
        return self._stored_bytes

    @property
    def chunk_count(self) -> int:
        return self._chunk_count

    def _account(self, *, bytes_delta: int, count_delta: int, written: int | None = None) -> None:
        """Stored bytes and chunks change; ``written``: bytes of a chunk just written."""
        with self._stats_lock:
            self._stored_bytes += bytes_delta
            self._chunk_count += count_delta
            if written is not None:
                self.received_chunks += 1
                self.received_bytes += written

    async def stats(self) -> StoreStats:
        free: int = await asyncio.to_thread(self._guarded, "measure it", self._free_bytes)
        return StoreStats(
            stored_bytes=self._stored_bytes, chunk_count=self._chunk_count, free_bytes=free
        )

    def _free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    async def writable(self) -> bool:
        """Open and the chunk directory accepts writes (a read-only remount fails this)."""
        return (
            await self.health() is None
            and self.is_open
            and await asyncio.to_thread(os.access, self.chunks_dir, os.W_OK)
            and await asyncio.to_thread(os.access, self.packs_dir, os.W_OK)
        )

    # -- writes -----------------------------------------------------------------------------

    async def put(self, chunk_hash: ChunkHash, data: bytes) -> bool:
        """Store ``data`` durably under its hash; False if it was already held (then touched)."""
        return await asyncio.to_thread(self._put_sync, chunk_hash, data)

    def _put_sync(self, chunk_hash: ChunkHash, data: bytes) -> bool:
        stored: bool = self._guarded(
            f"store chunk {chunk_hash}", self._put_checked, chunk_hash, data
        )
        return stored

    def _put_checked(self, chunk_hash: ChunkHash, data: bytes) -> bool:
        if _sha256(data) != chunk_hash:
            raise IntegrityError(f"bytes do not hash to chunk {chunk_hash}", hash=chunk_hash)
        if self.packed(len(data)):
            return self._put_packed([(chunk_hash, data)])[chunk_hash]
        path = self.path_of(chunk_hash)
        if self._held_durably(chunk_hash, path, len(data)):
            return False
        if self._free_bytes() - len(data) < self.reserve_bytes:
            raise InsufficientStorage(
                f"storing chunk {chunk_hash} would leave less than {self.reserve_bytes} bytes free"
            )
        self._ensure_dirs(chunk_hash)
        tmp = path.parent / f"{TEMP_PREFIX}{chunk_hash}-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb", closefd=True) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            with self._lock(chunk_hash):
                # Re-check under the lock: a concurrent writer of the same chunk may have won.
                if self._held_durably(chunk_hash, path, len(data)):
                    return False
                old = self._size_or_none(path)
                os.replace(tmp, path)
                fsync_dir(path.parent)
                self._account(
                    bytes_delta=len(data) - (old or 0),
                    count_delta=0 if old is not None else 1,
                    written=len(data),
                )
                self._corrupt.discard(chunk_hash)
        finally:
            # Gone after the rename; only a failed or redundant write leaves it behind.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        log.debug("chunk stored hash=%s length=%d", chunk_hash, len(data))
        return True

    async def put_many(self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]) -> list[bool]:
        """Store a batch durably; per item, True if it was new. All hashes are checked before
        anything is written, so a batch with one bad chunk stores nothing."""
        return await asyncio.to_thread(self._put_many_sync, items)

    def _put_many_sync(self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]) -> list[bool]:
        stored: list[bool] = self._guarded(
            f"store {len(items)} chunks", self._put_many_checked, items
        )
        return stored

    def _put_many_checked(
        self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]
    ) -> list[bool]:
        for chunk_hash, data in items:
            if _sha256(data) != chunk_hash:
                raise IntegrityError(f"bytes do not hash to chunk {chunk_hash}", hash=chunk_hash)
        packed = [(h, d) for h, d in items if self.packed(len(d))]
        files = [(h, d) for h, d in items if not self.packed(len(d))]
        created: dict[ChunkHash, bool] = {}
        if packed:
            created.update(self._put_packed(packed))
        if files:
            created.update(self._put_files(files))
        log.debug("chunks stored batch=%d new=%d", len(items), sum(created.values()))
        # A duplicate within the batch counts as new only at its first position.
        seen: set[ChunkHash] = set()
        out: list[bool] = []
        for chunk_hash, _ in items:
            out.append(created[chunk_hash] and chunk_hash not in seen)
            seen.add(chunk_hash)
        return out

    def _put_packed(
        self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]
    ) -> dict[ChunkHash, bool]:
        """Append verified chunks to the active pack (one sync); -> per hash, True if new."""
        created: dict[ChunkHash, bool] = {}
        fresh: list[tuple[ChunkHash, bytes | memoryview]] = []
        for chunk_hash, data in items:
            if chunk_hash in created:
                continue
            # A copy of the old layout (a file) counts as held.
            if self._held_durably(chunk_hash, self.path_of(chunk_hash), len(data)):
                created[chunk_hash] = False
            else:
                created[chunk_hash] = False
                fresh.append((chunk_hash, data))
        needed = sum(len(d) for _, d in fresh)
        if fresh and self._free_bytes() - needed < self.reserve_bytes:
            raise InsufficientStorage(
                f"storing {len(fresh)} chunks would leave less than {self.reserve_bytes} bytes free"
            )
        for (chunk_hash, data), new in zip(fresh, self.packs.put_many(fresh), strict=True):
            if new:
                self._account(bytes_delta=len(data), count_delta=1, written=len(data))
                self._corrupt.discard(chunk_hash)
                created[chunk_hash] = True
        return created

    def _put_files(
        self, items: Sequence[tuple[ChunkHash, bytes | memoryview]]
    ) -> dict[ChunkHash, bool]:
        created: dict[ChunkHash, bool] = {}
        todo: dict[ChunkHash, bytes | memoryview] = {}
        for chunk_hash, data in items:
            if chunk_hash in created or chunk_hash in todo:
                continue
            if self._held_durably(chunk_hash, self.path_of(chunk_hash), len(data)):
                created[chunk_hash] = False
            else:
                todo[chunk_hash] = data
        needed = sum(len(d) for d in todo.values())
        if todo and self._free_bytes() - needed < self.reserve_bytes:
            raise InsufficientStorage(
                f"storing {len(todo)} chunks would leave less than {self.reserve_bytes} bytes free"
            )
        temps: dict[ChunkHash, Path] = {}
        # Every file written and made durable first, then every rename, then the directories:
        # the same durability as single puts. Big enough batches sync the filesystem once per
        # step; smaller ones fsync each file and directory, on several threads, since
        # concurrent fsyncs share journal commits.
        whole_fs = len(todo) >= SYNCFS_MIN_BATCH and have_syncfs()
        try:
            new_dirs: set[str] = set()
            parents: set[Path] = set()
            for chunk_hash in todo:
                path = self.path_of(chunk_hash)
                new_dirs |= self._make_dirs(chunk_hash, parents)
                temps[chunk_hash] = path.parent / f"{TEMP_PREFIX}{chunk_hash}-{uuid.uuid4().hex}"
            writes = list(zip(temps.values(), todo.values(), strict=True))
            if whole_fs:
                self._all(write_unsynced, writes)
                sync_filesystem(self.chunks_dir)
            else:
                self._all(write_synced, writes)
            dirs: set[Path] = set()
            for chunk_hash, data in todo.items():
                path = self.path_of(chunk_hash)
                with self._lock(chunk_hash):
                    if self._held_durably(chunk_hash, path, len(data)):
                        created[chunk_hash] = False
                        continue
                    old = self._size_or_none(path)
                    os.replace(temps.pop(chunk_hash), path)
                    self._unsynced.add(chunk_hash)
                    dirs.add(path.parent)
                    self._account(
                        bytes_delta=len(data) - (old or 0),
                        count_delta=0 if old is not None else 1,
                        written=len(data),
                    )
                    self._corrupt.discard(chunk_hash)
                    created[chunk_hash] = True
            if whole_fs:
                sync_filesystem(self.chunks_dir)
            else:
                # New fan-out directories' parents too, each once for the whole batch.
                self._all(fsync_dir, [(d,) for d in sorted(dirs | parents)])
            self._durable_dirs |= new_dirs
            self._unsynced.difference_update(h for h, new in created.items() if new)
        finally:
            for tmp in temps.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return created

    def _all(self, fn: Callable[..., None], calls: list[tuple[Any, ...]]) -> None:
        """Run every call on the I/O threads; wait for all of them (so nothing is still writing
        when the caller cleans up), then raise the first failure."""
        futures = [self._io.submit(fn, *args) for args in calls]
        concurrent.futures.wait(futures)
        for future in futures:
            future.result()

    @staticmethod
    def _size_or_none(path: Path) -> int | None:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    def _held_durably(self, chunk_hash: ChunkHash, path: Path, length: int) -> bool:
        """True if the chunk is held (touched) and its directory entry is on disk."""
        if not self._touch_if_held(path, length):
            return False
        if chunk_hash in self._unsynced:
            fsync_dir(path.parent)
        return True

    def _touch_if_held(self, path: Path, length: int) -> bool:
        """True if a file of the right length is there (it is touched); a wrong length is rot."""
        size = self._size_or_none(path)
        if size != length:
            return False
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        return True

    def _make_dirs(self, chunk_hash: ChunkHash, parents: set[Path]) -> set[str]:
        """Make the chunk's fan-out directories where missing; add to ``parents`` the
        directories to fsync before they count as durable; -> their keys, to mark durable then.
        """
        top = self.chunks_dir / chunk_hash[:2]
        pending: set[str] = set()
        for key, directory in (
            (chunk_hash[:2], top),
            (f"{chunk_hash[:2]}/{chunk_hash[2:4]}", top / chunk_hash[2:4]),
        ):
            if key in self._durable_dirs:
                continue
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory)
            # Made here or by a writer that may not have synced it yet: sync it ourselves.
            parents.add(directory.parent)
            pending.add(key)
        return pending

    def _ensure_dirs(self, chunk_hash: ChunkHash) -> None:
        """The chunk's directory exists and its entry would survive a crash."""
        parents: set[Path] = set()
        pending = self._make_dirs(chunk_hash, parents)
        for directory in sorted(parents):
            fsync_dir(directory)
        self._durable_dirs |= pending

    # -- reads ------------------------------------------------------------------------------

    async def get(self, chunk_hash: ChunkHash) -> bytes:
        """The chunk's bytes, verified; NotFound, or IntegrityError (then quarantined)."""
        return await asyncio.to_thread(self._get_sync, chunk_hash)

    def _get_sync(self, chunk_hash: ChunkHash) -> bytes:
        try:
            found = self.packs.read(chunk_hash)
        except OSError:
            # Its pack gone under the index: a wiped or vanished volume is found (and a wiped
            # store reopened empty) before the chunk is looked up again.
            self._guard()
            found = self.packs.read(chunk_hash)
        if found is not None:
            data, at = found
            if _sha256(data) != chunk_hash:
                self._quarantine_packed(chunk_hash, data, at)
                raise IntegrityError(f"chunk {chunk_hash} is corrupt on this node", hash=chunk_hash)
            return data
        path = self.path_of(chunk_hash)
        try:
            with open(path, "rb") as fh:
                ident = os.fstat(fh.fileno()).st_ino
                data = fh.read()
        except FileNotFoundError:
            self._guard()  # absent because the whole volume is gone is not "not here"
            if chunk_hash in self._corrupt:
                raise IntegrityError(
                    f"chunk {chunk_hash} was found corrupt on this node", hash=chunk_hash
                ) from None
            raise NotFound(f"chunk {chunk_hash} is not on this node", hash=chunk_hash) from None
        if _sha256(data) != chunk_hash:
            self._quarantine(chunk_hash, ident)
            raise IntegrityError(f"chunk {chunk_hash} is corrupt on this node", hash=chunk_hash)
        return data

    async def get_many(
        self, hashes: Sequence[ChunkHash], *, max_bytes: int
    ) -> list[tuple[ChunkHash, bytes]]:
        """The verified bytes of those ``hashes`` held intact, in order, stopping before
        ``max_bytes`` would be passed (at least one chunk if any is held)."""
        return await asyncio.to_thread(self._get_many_sync, hashes, max_bytes)

    def _get_many_sync(
        self, hashes: Sequence[ChunkHash], max_bytes: int
    ) -> list[tuple[ChunkHash, bytes]]:
        out: list[tuple[ChunkHash, bytes]] = []
        total = 0
        for chunk_hash in dict.fromkeys(hashes):
            try:
                data = self._get_sync(chunk_hash)
            except (NotFound, IntegrityError):
                continue
            if out and total + len(data) > max_bytes:
                break
            out.append((chunk_hash, data))
            total += len(data)
        return out

    def _verify_sync(self, chunk_hash: ChunkHash) -> bool | None:
        """True if intact, False if corrupt (quarantined now), None if absent."""
        try:
            self._get_sync(chunk_hash)
        except NotFound:
            return None
        except IntegrityError:
            return False
        return True

    def _quarantine(
        self, chunk_hash: ChunkHash, ident: int, *, reason: str = "bytes do not match the hash"
    ) -> None:
        """Move a corrupt file aside, so a later put or pull can store a good copy."""
        path = self.path_of(chunk_hash)
        with self._lock(chunk_hash):
            try:
                st = path.stat()
            except FileNotFoundError:
                return
            if st.st_ino != ident:  # replaced by a good copy meanwhile
                return
            target = self.quarantine_dir / f"{chunk_hash}.{time.time_ns()}"
            os.replace(path, target)
            self._account(bytes_delta=-st.st_size, count_delta=-1)
            self._corrupt.add(chunk_hash)
        log.warning(
            "corrupt chunk quarantined hash=%s reason=%s moved_to=%s", chunk_hash, reason, target
        )

    def _quarantine_packed(self, chunk_hash: ChunkHash, data: bytes, at: tuple[int, int]) -> None:
        """A packed copy whose bytes do not match: its bytes kept aside, its index row dropped
        (the record stays in the pack as garbage), reported corrupt until a good copy comes."""
        target = self.quarantine_dir / f"{chunk_hash}.{time.time_ns()}"
        try:
            target.write_bytes(data)
        except OSError as exc:  # the finding matters more than the evidence
            log.warning("corrupt bytes not kept hash=%s error=%s", chunk_hash, exc)
        with self._lock(chunk_hash):
            length = self.packs.forget(chunk_hash, at)
            if length is None:  # moved or replaced meanwhile
                return
            self._account(bytes_delta=-length, count_delta=-1)
            self._corrupt.add(chunk_hash)
        log.warning(
            "corrupt chunk quarantined hash=%s reason=bytes do not match the hash pack=%d "
            "offset=%d moved_to=%s",
            chunk_hash,
            at[0],
            at[1],
            target,
        )

    def _sized(self, chunk_hash: ChunkHash, length: int | None) -> bool | None:
        """True if held at the expected size, False if its size is wrong (quarantined now),
        None if absent. Without ``length`` only an empty file is known wrong (for any chunk
        but the empty one)."""
        packed = self.packs.lookup(chunk_hash)
        if packed is not None:
            if length is None or packed[2] == length:
                return True
            found = self.packs.read(chunk_hash)
            if found is not None:
                self._quarantine_packed(chunk_hash, found[0], found[1])
            return False
        try:
            st = self.path_of(chunk_hash).stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if length is None:
            wrong = st.st_size == 0 and chunk_hash != EMPTY_CHUNK
        else:
            wrong = st.st_size != length
        if wrong:
            expected = "a non-empty chunk" if length is None else f"expected {length}"
            self._quarantine(chunk_hash, st.st_ino, reason=f"size {st.st_size} bytes, {expected}")
            return False
        return True

    async def has(self, chunk_hash: ChunkHash) -> bool:
        return await asyncio.to_thread(self._has_sync, chunk_hash)

    def _has_sync(self, chunk_hash: ChunkHash) -> bool:
        return self.packs.lookup(chunk_hash) is not None or self.path_of(chunk_hash).is_file()

    async def touch(self, chunk_hash: ChunkHash) -> bool:
        """Mark the chunk recently used (GC spares it); False if absent."""
        return await asyncio.to_thread(self._touch_sync, chunk_hash)

    def _touch_sync(self, chunk_hash: ChunkHash) -> bool:
        if self.packs.touch([chunk_hash]):
            return True
        try:
            os.utime(self.path_of(chunk_hash))
        except FileNotFoundError:
            return False
        return True

    async def check(
        self,
        hashes: Iterable[ChunkHash],
        *,
        lengths: Sequence[int] | None = None,
        verify: bool = False,
        touch: bool = False,
    ) -> CheckResult:
        """Sort ``hashes`` into present, missing and corrupt (verify re-reads and re-hashes;
        ``lengths``, parallel to ``hashes``: a copy of another size is corrupt)."""
        wanted = list(hashes)
        sizes: dict[ChunkHash, int] = (
            {} if lengths is None else dict(zip(wanted, lengths, strict=True))
        )
        result: CheckResult = await asyncio.to_thread(
            self._guarded, "check chunks", self._check_sync, wanted, sizes, verify, touch
        )
        return result

    def _check_sync(
        self, hashes: list[ChunkHash], sizes: dict[ChunkHash, int], verify: bool, touch: bool
    ) -> CheckResult:
        result = CheckResult()
        packed: list[ChunkHash] = []
        for h in dict.fromkeys(hashes):
            state = self._verify_sync(h) if verify else self._sized(h, sizes.get(h))
            if state is True:
                if touch:
                    if self.packs.lookup(h) is not None:
                        packed.append(h)  # touched below, in one transaction
                    else:
                        self._touch_sync(h)
                if h in self._unsynced:
                    # Reported present means durable: a commit rests on this answer.
                    fsync_dir(self.path_of(h).parent)
                result.present.append(h)
            elif state is False or h in self._corrupt:
                result.corrupt.append(h)
            else:
                result.missing.append(h)
        if packed:
            self.packs.touch(packed)
        return result

    async def inventory(self, *, before: float | None = None) -> list[InventoryEntry]:
        """Every chunk held, or those last written or touched before ``before`` (unix s)."""
        entries: list[InventoryEntry] = await asyncio.to_thread(
            self._guarded, "list chunks", lambda: list(self.iter_inventory(before=before))
        )
        return entries

    def iter_inventory(self, *, before: float | None = None) -> Iterator[InventoryEntry]:
        for chunk_hash, length, used in self.packs.inventory(before=before):
            yield InventoryEntry(chunk_hash, length, used)
        for directory in self._leaf_dirs():
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not is_chunk_hash(entry.name):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if before is None or st.st_mtime < before:
                        yield InventoryEntry(ChunkHash(entry.name), st.st_size, st.st_mtime)

    async def manifests(self) -> list[InventoryEntry]:
        """Every chunk whose bytes start like a manifest (only that prefix is read; nothing
        is verified here: the reader decodes and checks the hash)."""
        entries: list[InventoryEntry] = await asyncio.to_thread(
            self._guarded, "list manifests", lambda: list(self._iter_manifests())
        )
        return entries

    def _iter_manifests(self) -> Iterator[InventoryEntry]:
        for entry in self.iter_inventory():
            packed = self.packs.read(entry.hash, limit=len(MANIFEST_PREFIX))
            if packed is not None:
                if packed[0] == MANIFEST_PREFIX:
                    yield entry
                continue
            try:
                with open(self.path_of(entry.hash), "rb") as fh:
                    head = fh.read(len(MANIFEST_PREFIX))
            except FileNotFoundError:  # deleted meanwhile
                continue
            if head == MANIFEST_PREFIX:
                yield entry

    # -- deletes ----------------------------------------------------------------------------

    async def delete(self, chunk_hash: ChunkHash) -> int:
        """Remove one chunk; the bytes freed (0 if it was not held)."""
        _, freed = await self.delete_many([chunk_hash])
        return freed

    async def delete_many(self, hashes: Iterable[ChunkHash]) -> tuple[int, int]:
        """Remove chunks; (number deleted, bytes freed)."""
        done: tuple[int, int] = await asyncio.to_thread(
            self._guarded, "delete chunks", self._delete_sync, list(hashes)
        )
        return done

    def _delete_sync(self, hashes: list[ChunkHash]) -> tuple[int, int]:
        deleted = freed = 0
        for _, length in self.packs.delete_many(hashes):
            self._account(bytes_delta=-length, count_delta=-1)
            deleted += 1
            freed += length
        for h in dict.fromkeys(hashes):
            path = self.path_of(h)
            with self._lock(h):
                try:
                    size = path.stat().st_size
                    os.unlink(path)
                except FileNotFoundError:
                    size = None
                if size is not None:
                    self._account(bytes_delta=-size, count_delta=-1)
                    deleted += 1
                    freed += size
                if h in self._corrupt:
                    self._corrupt.discard(h)
                    for stale in self.quarantine_dir.glob(f"{h}.*"):
                        stale.unlink(missing_ok=True)
        return deleted, freed

    # -- packs: listing and compaction --------------------------------------------------------

    def pack_stats(self) -> PackStats:
        return self.packs.stats()

    def next_packed(self, *, after: str, limit: int) -> list[tuple[ChunkHash, int]]:
        """Up to ``limit`` packed chunks with a hash above ``after``, in hash order."""
        return self.packs.iter_hashes(after=after, limit=limit)

    async def compact(self) -> int:
        """Rewrite the packs whose garbage is over the configured fraction; -> packs done."""
        done: int = await asyncio.to_thread(self._guarded, "compact packs", self._compact_sync)
        return done

    def _compact_sync(self) -> int:
        config = self.pack_config

        def pace(nbytes: int) -> None:
            wait = self._compact_pacer.take(nbytes)
            if self._stop.wait(wait) if wait > 0 else self._stop.is_set():
                raise _Stopped

        done = 0
        with self._compact_lock:
            if self._stop.is_set():
                return 0
            for pack_id in self.packs.compaction_candidates(config.compact_garbage_fraction):
                try:
                    self.packs.compact(
                        pack_id,
                        step_bytes=COMPACT_STEP_BYTES,
                        pace=pace,
                        on_rot=self._quarantine_packed,
                    )
                except _Stopped:
                    break
                done += 1
        return done


class _Stopped(Exception):
    """The store is closing: compaction stops between two steps."""


def stored_chunks(data_dir: Path) -> dict[ChunkHash, Location]:
    """Every chunk a node's data dir holds, and where its bytes are, read from outside the node
    (the pack index read-only, the chunk files listed): for tools and tests."""
    root = Path(data_dir)
    found: dict[ChunkHash, Location] = {}
    chunks = root / "chunks"
    if chunks.is_dir():
        for path in chunks.rglob("*"):
            if is_chunk_hash(path.name) and path.is_file():
                found[ChunkHash(path.name)] = Location(path, 0, path.stat().st_size)
    found.update(read_index(root / "packs"))
    return found
