"""Backing up directories as one tree snapshot (`cofre put DIR...`).

The walk (cofre.cli.tree) yields entries a batch at a time on a thread. A file unchanged since
the parent snapshot (same size, mtime, ctime and inode: cofre.cli.parentindex) keeps the
parent's chunk list and is not read; every other file is read and its chunks go through the
ordinary upload path: small files in batches of one upload (batch_upload.send_frames), larger
ones streamed (upload.ChunkSender), each upload closed by committing its chunks into the open
snapshot instead of as per-name versions. Entries go to the manager in batches as they are
ready, and the snapshot is committed once all are sent, in one transaction. Memory stays
bounded: a batch of walked entries, the chunks in flight (cofre.cli.budget), and at most
MAX_ENTRY_BATCH entries waiting to be sent.

A file that cannot be read, or changed while it was read, is left out of the snapshot and
reported; anything else that fails (the manager, the nodes) aborts the snapshot.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cofre.aio import Tasks
from cofre.chunks import iter_chunks
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.parentindex import ParentFile, ParentIndex
from cofre.cli.progress import TransferProgress
from cofre.cli.sending import (
    changed,
    check_unchanged,
    open_regular,
    open_session,
    send_frames,
    unreadable,
)
from cofre.cli.tree import LocalEntry, check_sources, entry_of, walk
from cofre.cli.upload import ChunkSender
from cofre.limits import MAX_ENTRY_BATCH
from cofre.models import ChunkHash, ChunkRef, SnapshotId
from cofre.protocol.manager_api import FileDecl, SnapshotInfo, TreeEntry

log = logging.getLogger(__name__)

# Files up to this size are read whole and sent in batches of one upload; larger ones stream
# (as `cofre put FILE...` does).
SMALL_FILE_BYTES = 1024 * 1024
BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024
# Entries walked (and looked up in the parent) per trip to the walking thread.
WALK_BATCH = 512
ABORT_TIMEOUT_S = 10.0
# Batches of entries on their way to the manager at once: the walk goes on meanwhile.
ENTRY_SENDS = 2


@dataclass(slots=True)
class TreeCounts:
    """What a backup of a tree did; ``bytes_read`` counts file bytes read from disk,
    ``bytes_sent`` those that travelled to the nodes (not stored there already)."""

    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs: int = 0
    symlinks: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0

    @property
    def files(self) -> int:
        return self.files_new + self.files_changed + self.files_unchanged


@dataclass(slots=True)
class TreeResult:
    snapshot: SnapshotInfo
    parent: SnapshotInfo | None
    counts: TreeCounts
    errors: list[tuple[str, Exception]] = field(default_factory=list)


def tree_entry(e: LocalEntry, chunks: tuple[ChunkRef, ...] = ()) -> TreeEntry:
    """The wire form of a walked entry, with its file's chunks."""
    is_file = e.kind == "file"
    return TreeEntry(
        path=e.path,
        kind=e.kind,
        mode=e.mode,
        mtime_ns=e.mtime_ns,
        size=e.size,
        uid=e.uid,
        gid=e.gid,
        target=e.target,
        chunks=[(c.hash, c.length) for c in chunks],
        ctime_ns=e.ctime_ns if is_file else None,
        inode=e.inode if is_file else None,
        device=e.device if is_file else None,
    )


def split_tags(values: list[str] | None) -> list[str]:
    """``--tag a --tag b,c`` -> ``[a, b, c]``."""
    return [t for v in values or [] for t in v.split(",") if t]


def source_paths(sources: list[str]) -> list[str]:
    """What a snapshot records as its paths: each source's absolute path, once, in order."""
    return list(dict.fromkeys(os.path.abspath(s) for s in sources))


async def find_parent(
    clients: Clients, *, host: str, paths: list[str], ref: str | None
) -> SnapshotInfo | None:
    """The snapshot named ``ref``, else the latest of the same host and the same paths."""
    if ref is not None:
        return await clients.manager.get_snapshot(ref)
    same = [
        s
        for s in await clients.manager.list_snapshots(host=host)
        if sorted(s.paths) == sorted(paths)
    ]
    return same[-1] if same else None


async def load_parent(clients: Clients, parent: SnapshotInfo, index: ParentIndex) -> None:
    """The parent's files into ``index``, a page at a time."""
    async for page in clients.manager.iter_snapshot_entries(parent.snapshot_id):
        files = [
            ParentFile(
                path=e.path,
                size=e.size,
                mtime_ns=e.mtime_ns,
                ctime_ns=e.ctime_ns,
                inode=e.inode,
                chunks=tuple(ChunkRef(h, n) for h, n in e.chunks),
            )
            for e in page
            if e.kind == "file" and e.ctime_ns is not None and e.inode is not None
        ]
        await asyncio.to_thread(index.add, files)


@dataclass(frozen=True, slots=True)
class _Walked:
    """An entry as walked, and for a file the parent's chunks if it is unchanged."""

    entry: LocalEntry
    reuse: tuple[ChunkRef, ...] | None
    known: bool  # the parent has this path


def _take(entries: Iterator[LocalEntry], index: ParentIndex, force_read: bool) -> list[_Walked]:
    out: list[_Walked] = []
    for entry in entries:
        known, reuse = False, None
        if entry.kind == "file":
            known = index.knows(entry.path)
            reuse = index.reusable(entry) if known and not force_read else None
        out.append(_Walked(entry, reuse, known))
        if len(out) >= WALK_BATCH:
            break
    return out


class TreeBackup:
    """One `cofre put DIR...` run: walk, compare, send, commit."""

    def __init__(
        self,
        clients: Clients,
        *,
        budget: Budget,
        progress: TransferProgress,
        warn: Callable[[str], None],
        on_error: Callable[[str, Exception], None],
    ) -> None:
        self.clients = clients
        self.budget = budget
        self.progress = progress
        self.warn = warn
        self.on_error = on_error
        self.counts = TreeCounts()
        self.errors: list[tuple[str, Exception]] = []
        self._ready: list[TreeEntry] = []
        self._sent = 0
        self._tasks = Tasks()
        self._batches = asyncio.Semaphore(budget.parallelism)
        self._senders = asyncio.Semaphore(ENTRY_SENDS)
        self._snapshot = SnapshotId("")

    async def run(
        self,
        sources: list[str],
        *,
        host: str,
        tags: list[str],
        parent_ref: str | None,
        force_read: bool,
    ) -> TreeResult:
        await asyncio.to_thread(check_sources, sources)
        paths = source_paths(sources)
        parent = await find_parent(self.clients, host=host, paths=paths, ref=parent_ref)
        with ParentIndex() as index:
            if parent is not None:
                # With force_read too: a file read again is then counted as changed, not new.
                await load_parent(self.clients, parent, index)
            opened = await self.clients.manager.open_snapshot(
                time=time.time(),
                host=host,
                paths=paths,
                tags=tags,
                parent=parent.snapshot_id if parent is not None else None,
            )
            self._snapshot = opened.snapshot_id
            log.debug("snapshot opened snapshot_id=%s parent=%s", self._snapshot, parent)
            try:
                await self._walk_and_send(sources, index, force_read)
                snapshot = await self.clients.manager.commit_snapshot(
                    self._snapshot, entries=self._sent
                )
            except BaseException:
                await self._tasks.cancel()
                await self._abort()
                raise
        return TreeResult(snapshot, parent, self.counts, self.errors)

    async def _abort(self) -> None:
        """Drop the open snapshot; best effort, an open one also expires by itself."""
        try:
            async with asyncio.timeout(ABORT_TIMEOUT_S):
                await self.clients.manager.delete_snapshot(self._snapshot)
        except Exception as exc:  # the original failure is what the user needs to see
            log.debug("snapshot abort failed snapshot_id=%s error=%s", self._snapshot, exc)

    async def _walk_and_send(self, sources: list[str], index: ParentIndex, force: bool) -> None:
        warnings: list[str] = []
        entries = walk(sources, warn=warnings.append)
        small: list[_Walked] = []
        small_bytes = 0
        while True:
            batch = await asyncio.to_thread(_take, entries, index, force)
            for line in warnings:
                self.counts.skipped += 1
                self.warn(line)
            warnings.clear()
            if not batch:
                break
            for walked in batch:
                e = walked.entry
                if e.kind != "file":
                    self._count_other(e)
                    self._ready.append(tree_entry(e))
                elif walked.reuse is not None:
                    self.counts.files_unchanged += 1
                    self.counts.bytes += e.size
                    self._ready.append(tree_entry(e, walked.reuse))
                elif e.size == 0:
                    self._count_read(walked)
                    self._ready.append(tree_entry(e))
                elif e.size > SMALL_FILE_BYTES:
                    self.progress.expect(e.path, e.size)
                    await self.budget.files.acquire()
                    self._tasks.spawn(self._large(walked))
                else:
                    self.progress.expect(e.path, e.size)
                    if small and (len(small) >= BATCH_FILES or small_bytes + e.size > BATCH_BYTES):
                        await self._batches.acquire()
                        self._tasks.spawn(self._small(small))
                        small, small_bytes = [], 0
                    small.append(walked)
                    small_bytes += e.size
            await self._send_ready(full_only=True)
        if small:
            await self._batches.acquire()
            self._tasks.spawn(self._small(small))
        while self._tasks:
            await self._tasks.wait()
            await self._send_ready(full_only=True)
        await self._send_ready(full_only=False)
        await self._tasks.drain()

    def _count_other(self, e: LocalEntry) -> None:
        if e.kind == "dir":
            self.counts.dirs += 1
        else:
            self.counts.symlinks += 1

    def _count_read(self, walked: _Walked) -> None:
        if walked.known:
            self.counts.files_changed += 1
        else:
            self.counts.files_new += 1
        self.counts.bytes += walked.entry.size

    async def _send_ready(self, *, full_only: bool) -> None:
        """Send the entries ready, a full batch at a time (all with ``full_only=False``); up
        to ENTRY_SENDS batches travel while the walk goes on."""
        while len(self._ready) >= MAX_ENTRY_BATCH or (self._ready and not full_only):
            batch, self._ready = self._ready[:MAX_ENTRY_BATCH], self._ready[MAX_ENTRY_BATCH:]
            await self._senders.acquire()
            self._tasks.spawn(self._send_entries(batch))

    async def _send_entries(self, batch: list[TreeEntry]) -> None:
        try:
            await self.clients.manager.add_snapshot_entries(self._snapshot, batch)
            self._sent += len(batch)
        finally:
            self._senders.release()

    def _failed(self, path: str, exc: LocalFileError) -> None:
        self.counts.failed += 1
        self.errors.append((path, exc))
        self.progress.finished(path, error=True)
        self.on_error(path, exc)

    # --- files that are read ------------------------------------------------------------

    async def _small(self, files: list[_Walked]) -> None:
        held = sum(w.entry.size for w in files)
        try:
            await self.budget.memory.acquire(held)
            try:
                read = await asyncio.to_thread(_read_all, [w.entry for w in files])
                good: list[tuple[bool, LocalEntry, bytes]] = []
                for w, r in zip(files, read, strict=True):
                    if isinstance(r, LocalFileError):
                        self._failed(w.entry.path, r)
                    else:
                        good.append((w.known, *r))
                if good:
                    await self._send_small(good)
            finally:
                self.budget.memory.release(held)
        finally:
            self._batches.release()

    async def _send_small(self, files: list[tuple[bool, LocalEntry, bytes]]) -> None:
        upload = await self.clients.manager.create_batch_upload(
            [
                FileDecl(name=e.path, size=e.size, mode=e.mode, mtime=e.mtime_ns / 1e9)
                for _, e, _ in files
            ]
        )
        async with open_session(self.clients, upload) as session:
            size = session.chunk_size
            pieces = await asyncio.to_thread(
                lambda: [list(iter_chunks(io.BytesIO(d), size)) for _, _, d in files]
            )
            frames: dict[ChunkHash, bytes] = {}
            for parts in pieces:
                for ref, data in parts:
                    frames.setdefault(ref.hash, data)
            sent = await send_frames(self.clients, session, frames)
            await self.clients.manager.commit_snapshot_chunks(
                self._snapshot, session.upload_id, [ChunkRef(h, len(d)) for h, d in frames.items()]
            )
        self.counts.bytes_sent += sum(len(frames[h]) for h in sent)
        unsent = set(sent)
        for (known, e, _), parts in zip(files, pieces, strict=True):
            # A chunk two files share counts as sent for the first of them.
            moved = sum(ref.length for ref, _ in parts if ref.hash in unsent)
            unsent.difference_update(ref.hash for ref, _ in parts)
            self.counts.bytes_read += e.size
            self._count_read(_Walked(e, None, known))
            self.progress.finished(e.path, size=e.size, moved=moved)
            self._ready.append(tree_entry(e, tuple(ref for ref, _ in parts)))

    async def _large(self, walked: _Walked) -> None:
        e = walked.entry
        try:
            try:
                got = await self._stream(e)
            except LocalFileError as exc:
                self._failed(e.path, exc)
                return
        finally:
            self.budget.files.release()
        now, refs, sent = got
        self.counts.bytes_read += now.size
        self.counts.bytes_sent += sent
        self._count_read(_Walked(now, None, walked.known))
        self.progress.finished(e.path, size=now.size, moved=sent)
        self._ready.append(tree_entry(now, refs))

    async def _stream(self, e: LocalEntry) -> tuple[LocalEntry, tuple[ChunkRef, ...], int]:
        path = Path(e.source)
        f, st = await asyncio.to_thread(open_regular, path)
        with f:
            now = _same_file(e, st, path)
            self.progress.started(e.path, now.size)
            upload = await self.clients.manager.create_upload(
                name=e.path, size=now.size, mode=now.mode, mtime=now.mtime_ns / 1e9
            )
            async with open_session(self.clients, upload) as session:
                sender = ChunkSender(
                    self.clients,
                    session,
                    budget=self.budget,
                    progress=self.progress,
                    name=e.path,
                )
                refs = await sender.send_stream(f, expected=now.size, path=path, seal=None)
                check_unchanged(f, st, path)
                await self.clients.manager.commit_snapshot_chunks(
                    self._snapshot, session.upload_id, list(dict.fromkeys(refs))
                )
        return now, tuple(refs), sender.sent_bytes


def _same_file(e: LocalEntry, st: os.stat_result, path: Path) -> LocalEntry:
    """The entry as the open file's stat says (what is recorded is what is read), refused when
    another file took the walked one's place."""
    if st.st_ino != e.inode or st.st_dev != e.device:
        raise changed(path)
    now = entry_of(e.path, e.source, st)
    assert now is not None and now.kind == "file"
    return now


def _read_one(e: LocalEntry) -> tuple[LocalEntry, bytes]:
    path = Path(e.source)
    fh, st = open_regular(path)
    with fh:
        now = _same_file(e, st, path)
        try:
            data = fh.read(now.size + 1)
        except OSError as exc:
            raise unreadable(path, exc) from exc
        if len(data) != now.size:
            raise changed(path)
        check_unchanged(fh, st, path)
    return now, data


def _read_all(files: list[LocalEntry]) -> list[tuple[LocalEntry, bytes] | LocalFileError]:
    out: list[tuple[LocalEntry, bytes] | LocalFileError] = []
    for e in files:
        try:
            out.append(_read_one(e))
        except LocalFileError as exc:
            out.append(exc)
    return out
