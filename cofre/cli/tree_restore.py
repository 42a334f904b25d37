"""Restoring a tree snapshot, or part of it, below a target directory (`cofre restore`).

Entries come from the manager a page at a time, in path order, so a directory comes before
what it holds. Directories and symlinks are made at once, files are fetched and written by
tasks: small ones in batches (one framed read per node and round), large ones streamed chunk by
chunk (cofre.cli.download.stream_chunks). Every chunk is checked against its hash and every
file against its size before it is renamed into place. All writes go through
cofre.cli.restorefs, which refuses paths that would leave the target or pass through a
symlink. Directories get their mode, owner and mtime last, deepest first; the written files are
made durable with one syncfs at the end (an fsync per file where syncfs is missing).

A snapshot's entries carry chunk hashes; where each chunk is comes from the manager
(`POST /v1/chunks/locate`, nodes best first), for a page of small files at once and for a large
file when its turn comes. Consecutive chunks start at different copies, so every holder serves
a share, and a node that does not send a chunk intact passes it to the next holder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cofre.aio import Tasks
from cofre.cli.budget import Budget
from cofre.cli.download import rotated, stream_chunks
from cofre.cli.exitcodes import LocalFileError, UsageError
from cofre.cli.http import Clients
from cofre.cli.packing import pack
from cofre.cli.progress import TransferProgress
from cofre.cli.restorefs import Meta, RestoreRoot
from cofre.durable import have_syncfs, sync_filesystem
from cofre.errors import CofreError, IntegrityError
from cofre.limits import MAX_FRAMED_CHUNKS, MAX_KNOWN_HASHES, MAX_READ_BYTES
from cofre.models import ChunkHash, SnapshotId, tree_path_problem
from cofre.protocol.manager_api import ChunkLocation, EntryView, SnapshotInfo

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 1024 * 1024
BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class RestoreCounts:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    failed: int = 0


@dataclass(slots=True)
class RestoreResult:
    snapshot: SnapshotInfo
    target: Path
    counts: RestoreCounts
    errors: list[tuple[str, Exception]] = field(default_factory=list)


def restore_path(text: str) -> str:
    """A ``--path`` as a path in a snapshot: ``/srv/data/`` and ``srv/data`` are the same."""
    path = text.strip("/")
    problem = tree_path_problem(path)
    if problem:
        raise UsageError(f"--path {text!r}: {problem}")
    return path


def meta_of(e: EntryView) -> Meta:
    # -1: an owner the snapshot does not hold is left as it is (fchown's "no change").
    uid = -1 if e.uid is None else e.uid
    gid = -1 if e.gid is None else e.gid
    return Meta(mode=e.mode, mtime_ns=e.mtime_ns, uid=uid, gid=gid)


async def locate(clients: Clients, hashes: list[ChunkHash]) -> dict[ChunkHash, ChunkLocation]:
    """Where each chunk is (the catalog's copies, best first); unknown ones are left out."""
    found: dict[ChunkHash, ChunkLocation] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), MAX_KNOWN_HASHES):
        group = unique[start : start + MAX_KNOWN_HASHES]
        for loc in await clients.locate(group):
            found[loc.hash] = loc
    return found


def _unknown(path: str, chunk_hash: str) -> IntegrityError:
    return IntegrityError(f"chunk {chunk_hash[:16]} of {path} has no copy the catalog knows")


class TreeRestore:
    """One `cofre restore` run."""

    def __init__(
        self,
        clients: Clients,
        root: RestoreRoot,
        *,
        budget: Budget,
        progress: TransferProgress,
        on_error: Callable[[str, Exception], None],
    ) -> None:
        self.clients = clients
        self.root = root
        self.budget = budget
        self.progress = progress
        self.on_error = on_error
        self.counts = RestoreCounts()
        self.errors: list[tuple[str, Exception]] = []
        self._tasks = Tasks()
        self._batches = asyncio.Semaphore(budget.parallelism)
        self._fsync = not have_syncfs()

    def _failed(self, path: str, exc: Exception) -> None:
        self.counts.failed += 1
        self.errors.append((path, exc))
        self.on_error(path, exc)

    async def run(self, snapshot_id: SnapshotId, paths: list[str] | None) -> None:
        wanted: list[str | None] = list(paths) if paths else [None]
        try:
            for path in wanted:
                found = await self._entries(snapshot_id, path)
                if not found and path is not None:
                    raise UsageError(f"the snapshot holds no {path!r}")
            await self._tasks.drain()
        except BaseException:
            await self._tasks.cancel()
            raise
        for exc in await asyncio.to_thread(self.root.finish):
            self._failed("(directory)", exc)
        if not self._fsync:
            try:
                await asyncio.to_thread(sync_filesystem, self.root.target)
            except OSError as exc:
                raise LocalFileError(f"cannot sync the restored files: {exc}") from exc

    async def _entries(self, snapshot_id: SnapshotId, path: str | None) -> int:
        found = 0
        small: list[EntryView] = []
        small_bytes = 0
        async for page in self.clients.manager.iter_snapshot_entries(snapshot_id, path=path):
            found += len(page)
            for e in page:
                if e.kind == "file" and e.size > SMALL_FILE_BYTES:
                    self.progress.expect(e.path, e.size)
                    await self.budget.files.acquire()
                    self._tasks.spawn(self._large(e))
                elif e.kind == "file" and e.size > 0:
                    self.progress.expect(e.path, e.size)
                    if small and (len(small) >= BATCH_FILES or small_bytes + e.size > BATCH_BYTES):
                        await self._batches.acquire()
                        self._tasks.spawn(self._small(small))
                        small, small_bytes = [], 0
                    small.append(e)
                    small_bytes += e.size
                else:
                    await asyncio.to_thread(self._make, e)
        if small:
            await self._batches.acquire()
            self._tasks.spawn(self._small(small))
        return found

    def _make(self, e: EntryView) -> None:
        """A directory, a symlink or an empty file."""
        try:
            if e.kind == "dir":
                self.root.make_dir(e.path, meta_of(e))
                self.counts.dirs += 1
            elif e.kind == "symlink":
                assert e.target is not None
                self.root.symlink(e.path, e.target, meta_of(e))
                self.counts.symlinks += 1
            else:
                with self.root.file(e.path, meta_of(e), fsync=self._fsync):
                    pass
                self.counts.files += 1
        except LocalFileError as exc:
            self._failed(e.path, exc)

    # --- files ----------------------------------------------------------------------------

    async def _large(self, e: EntryView) -> None:
        try:
            self.progress.started(e.path, e.size)
            try:
                where = await locate(self.clients, [ChunkHash(h) for h, _ in e.chunks])
                chunks = []
                for h, n in e.chunks:
                    loc = where.get(ChunkHash(h))
                    if loc is None or loc.length != n:
                        raise _unknown(e.path, h)
                    chunks.append(loc)
                with self.root.file(e.path, meta_of(e), fsync=self._fsync) as fd:

                    async def write(data: bytes) -> None:
                        await asyncio.to_thread(_write_fd, fd, data)
                        self.progress.advance(e.path, len(data), moved=True)

                    written = await stream_chunks(
                        self.clients, chunks, budget=self.budget, write=write
                    )
                    if written != e.size:
                        raise IntegrityError(f"{e.path}: got {written} bytes of {e.size}")
            except (LocalFileError, CofreError) as exc:
                self.progress.finished(e.path, error=True)
                self._failed(e.path, exc)
                return
            self.counts.files += 1
            self.counts.bytes += e.size
            self.progress.finished(e.path, size=e.size)
        finally:
            self.budget.files.release()

    async def _small(self, files: list[EntryView]) -> None:
        held = sum(e.size for e in files)
        try:
            await self.budget.memory.acquire(held)
            try:
                where = await locate(
                    self.clients, [ChunkHash(h) for e in files for h, _ in e.chunks]
                )
                got = await self._fetch(where)
                results = await asyncio.to_thread(self._write_small, files, got)
            finally:
                self.budget.memory.release(held)
        finally:
            self._batches.release()
        for e, error in zip(files, results, strict=True):
            if error is None:
                self.counts.files += 1
                self.counts.bytes += e.size
                self.progress.finished(e.path, size=e.size)
            else:
                self.progress.finished(e.path, error=True)
                self._failed(e.path, error)

    async def _fetch(self, where: dict[ChunkHash, ChunkLocation]) -> dict[ChunkHash, bytes]:
        """The chunks of ``where`` the nodes send intact: in each round every chunk still
        missing is asked of its next holder, one framed read per node."""
        got: dict[ChunkHash, bytes] = {}
        wanted = {h: loc.length for h, loc in where.items()}
        # Rotated lists, not model copies: one per chunk of a batch.
        order = {h: rotated(loc.nodes, i) for i, (h, loc) in enumerate(where.items())}
        for turn in range(max((len(n) for n in order.values()), default=0)):
            by_node: dict[str, list[ChunkHash]] = {}
            for h, nodes in order.items():
                if h not in got and turn < len(nodes):
                    by_node.setdefault(nodes[turn], []).append(h)
            if not by_node:
                break
            await asyncio.gather(
                *(self._read_from(url, hs, wanted, got) for url, hs in by_node.items())
            )
        return got

    async def _read_from(
        self,
        url: str,
        hashes: list[ChunkHash],
        wanted: dict[ChunkHash, int],
        got: dict[ChunkHash, bytes],
    ) -> None:
        groups = pack(
            hashes,
            size=lambda h: wanted[h],
            max_items=MAX_FRAMED_CHUNKS,
            max_bytes=MAX_READ_BYTES,
        )
        for group in groups:
            async with self.budget.requests:
                try:
                    frames = await self.clients.node(url).read_chunks(
                        group, ticket=self.clients.read_ticket(url)
                    )
                except CofreError as exc:
                    log.debug("batched read failed url=%s error=%s", url, exc.detail)
                    return
            got.update(await asyncio.to_thread(_verified, frames, wanted))

    def _write_small(
        self, files: list[EntryView], got: dict[ChunkHash, bytes]
    ) -> list[Exception | None]:
        out: list[Exception | None] = []
        for e in files:
            try:
                parts = []
                for h, n in e.chunks:
                    data = got.get(ChunkHash(h))
                    if data is None or len(data) != n:
                        raise IntegrityError(
                            f"chunk {h[:16]} of {e.path} has no intact copy on its nodes"
                        )
                    parts.append(data)
                with self.root.file(e.path, meta_of(e), fsync=self._fsync) as fd:
                    for part in parts:
                        _write_fd(fd, part)
            except (LocalFileError, CofreError) as exc:
                out.append(exc)
            else:
                out.append(None)
        return out


def _verified(
    frames: list[tuple[ChunkHash, memoryview]], wanted: dict[ChunkHash, int]
) -> dict[ChunkHash, bytes]:
    good: dict[ChunkHash, bytes] = {}
    for h, data in frames:
        if wanted.get(h) == len(data) and hashlib.sha256(data).hexdigest() == h:
            good[h] = bytes(data)
    return good


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
