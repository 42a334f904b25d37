"""Backing up one local file: stream it in chunks to the primary node, then commit.

Follows docs/architecture.md: create the upload at the manager, ask the primary which chunks it
lacks, send those a few at a time, send the manifest as one more chunk, commit. The client only
talks to the manager and the primary it was given. At most ``Budget.slots`` chunks are in
memory at once, whatever the file size. Several files, small ones in batches: batch_upload.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cofre.chunks import hash_bytes
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.progress import TransferProgress
from cofre.cli.sending import (
    PutResult,
    Session,
    check_unchanged,
    committing,
    open_regular,
    open_session,
    retrying,
    to_send,
    unreadable,
)
from cofre.models import ChunkHash, ChunkRef, Manifest, validate_name

log = logging.getLogger(__name__)


async def put_file(
    clients: Clients,
    *,
    path: Path,
    name: str,
    budget: Budget,
    progress: TransferProgress | None = None,
) -> PutResult:
    """Back ``path`` up as ``name``; bytes done are reported to ``progress`` as they go (the
    caller reports the file finished, with the result)."""
    validate_name(name)
    f, st = open_regular(path)
    with f:
        if progress is None:
            progress = TransferProgress.silent("put")
        progress.started(name, st.st_size)
        upload = await clients.manager.create_upload(
            name=name, size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime
        )
        async with open_session(clients, upload) as session:
            log.debug("upload created name=%r upload_id=%s", name, session.upload_id)
            return await _send_file(
                clients,
                f=f,
                st=st,
                path=path,
                name=name,
                session=session,
                budget=budget,
                progress=progress,
            )


async def _send_file(
    clients: Clients,
    *,
    f: BinaryIO,
    st: os.stat_result,
    path: Path,
    name: str,
    session: Session,
    budget: Budget,
    progress: TransferProgress,
) -> PutResult:
    sender = ChunkSender(clients, session, budget=budget, progress=progress, name=name)
    manifests: list[Manifest] = []

    def seal(refs: list[ChunkRef]) -> tuple[ChunkRef, bytes]:
        """The manifest, built once the whole file was read unchanged."""
        check_unchanged(f, st, path)
        manifest = Manifest(
            name=name,
            size=st.st_size,
            mode=stat.S_IMODE(st.st_mode),
            mtime=st.st_mtime,
            created=time.time(),
            chunks=tuple(refs),
        )
        manifests.append(manifest)
        encoded = manifest.encode()
        return ChunkRef(manifest.hash, len(encoded)), encoded

    refs = await sender.send_stream(f, expected=st.st_size, path=path, seal=seal)
    committed = await committing(
        lambda: clients.manager.commit_upload(session.upload_id, manifests[0]), what=repr(name)
    )
    log.debug("upload committed name=%r version=%s", name, committed.version)
    return PutResult(
        name=name,
        version=committed.version,
        size=st.st_size,
        chunks=len(refs),
        sent_bytes=sender.sent_bytes,
    )


def _read_and_hash(f: BinaryIO, size: int) -> tuple[bytes, ChunkHash]:
    data = f.read(size)
    return data, hash_bytes(data)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A chunk read and waiting for its `missing` answer; holds ``held`` bytes of memory."""

    ref: ChunkRef
    data: bytes
    held: int
    counts: bool  # file bytes (progress, sent_bytes); False for the manifest


class ChunkSender:
    """Reads, asks which chunks are missing in batches, and sends those a few at a time.

    Every chunk read holds its bytes of ``budget.memory`` until it is sent or known present.
    """

    def __init__(
        self,
        clients: Clients,
        session: Session,
        *,
        budget: Budget,
        progress: TransferProgress,
        name: str,
    ) -> None:
        self.clients = clients
        self.session = session
        self.budget = budget
        self.progress = progress
        self.name = name
        self.sent_bytes = 0
        self._scheduled: set[ChunkHash] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[_Pending] = []

    async def send_stream(
        self,
        f: BinaryIO,
        *,
        expected: int,
        path: Path,
        seal: Callable[[list[ChunkRef]], tuple[ChunkRef, bytes]] | None,
    ) -> list[ChunkRef]:
        """Send the file's chunks, then the manifest ``seal`` builds from their references
        (none without ``seal``: a file of a tree snapshot has no manifest of its own).

        The manifest rides in the last batch: one `missing` round trip fewer per file.
        """
        refs: list[ChunkRef] = []
        total = 0
        try:
            while total < expected:
                want = min(self.session.chunk_size, expected - total)
                await self._reserve(want)
                try:
                    data, chunk_hash = await asyncio.to_thread(_read_and_hash, f, want)
                except OSError as exc:
                    self.budget.memory.release(want)
                    raise unreadable(path, exc) from exc
                except BaseException:
                    self.budget.memory.release(want)
                    raise
                if len(data) < want:
                    self.budget.memory.release(want)
                    raise LocalFileError(f"{path} shrank while it was read; nothing was stored")
                total += want
                ref = ChunkRef(chunk_hash, want)
                refs.append(ref)
                self._pending.append(_Pending(ref, data, held=want, counts=True))
            try:
                grew = await asyncio.to_thread(f.read, 1)
            except OSError as exc:
                raise unreadable(path, exc) from exc
            if grew:
                raise LocalFileError(f"{path} grew while it was read; nothing was stored")
            if seal is not None:
                manifest_ref, encoded = seal(refs)
                await self._reserve(len(encoded))
                self._pending.append(
                    _Pending(manifest_ref, encoded, held=len(encoded), counts=False)
                )
            await self._flush()
            while self._tasks:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
                self._raise_failures()
        except BaseException:
            for item in self._pending:
                self.budget.memory.release(item.held)
            self._pending = []
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        return refs

    async def _reserve(self, n: int) -> None:
        """Hold ``n`` bytes of memory, first sending what is pending when memory is short:
        other transfers may be waiting on what we hold."""
        self._raise_failures()
        if self._pending and (
            len(self._pending) >= self.budget.batch or self.budget.memory.would_block(n)
        ):
            await self._flush()
            self._raise_failures()
        await self.budget.memory.acquire(n)

    def _raise_failures(self) -> None:
        for task in [t for t in self._tasks if t.done()]:
            self._tasks.discard(task)
            task.result()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        chunks = {item.ref.hash: item.ref.length for item in batch}
        try:
            missing = await to_send(self.clients, self.session, chunks)
        except BaseException:
            for item in batch:
                self.budget.memory.release(item.held)
            raise
        for item in batch:
            if item.ref.hash in missing and item.ref.hash not in self._scheduled:
                self._scheduled.add(item.ref.hash)
                self._tasks.add(asyncio.create_task(self._send(item)))
            else:
                self.budget.memory.release(item.held)
                if item.counts:
                    self.progress.advance(self.name, item.ref.length)

    async def _send(self, item: _Pending) -> None:
        try:
            async with self.budget.requests:
                await self.budget.in_flight.acquire(item.held)
                try:
                    await retrying(
                        lambda: self.session.primary.upload_chunk(
                            self.session.upload_id,
                            item.ref.hash,
                            item.data,
                            ticket=self.session.ticket,
                        ),
                        what=f"chunk {item.ref.hash}",
                    )
                finally:
                    self.budget.in_flight.release(item.held)
            if item.counts:
                self.sent_bytes += item.ref.length
                self.progress.advance(self.name, item.ref.length, moved=True)
        finally:
            self.budget.memory.release(item.held)
