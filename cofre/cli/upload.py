"""Backing up one local file: stream it in chunks to the primary node, then commit.

Follows docs/architecture.md: create the upload at the manager, ask the primary which chunks it
lacks, send those a few at a time, send the manifest as one more chunk, commit. The client only
talks to the manager and the primary it was given. At most ``Budget.slots`` chunks are in
memory at once, whatever the file size.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from cofre.aio import within
from cofre.chunks import MAX_CHUNK_SIZE, hash_bytes
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.output import human_size
from cofre.cli.progress import Progress
from cofre.errors import BadRequest, ReplicaFailed, Unavailable
from cofre.models import ChunkHash, ChunkRef, Manifest, UploadId, validate_name
from cofre.protocol.client import NodeClient

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S = 10.0
# seconds between attempts of one chunk request; a node that stays away fails the put soon.
RETRY_PAUSES_S = (0.2, 1.0)
# Files up to this size travel in batches (cofre.cli.batch_upload); larger ones stream.
SMALL_FILE_BYTES = 1024 * 1024
# Hashes per `known` request (the manager's limit).
KNOWN_BATCH = 4096

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PutResult:
    name: str
    version: int
    size: int
    chunks: int
    sent_bytes: int

    def summary(self) -> str:
        """``version N  SIZE``, and how much travelled when chunks were stored already."""
        text = f"version {self.version}  {human_size(self.size)}"
        if self.sent_bytes < self.size:
            text += f"  ({human_size(self.sent_bytes)} sent, the rest was stored already)"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "chunks": self.chunks,
            "sent_bytes": self.sent_bytes,
        }


async def put_file(
    clients: Clients, *, path: Path, name: str, budget: Budget, show_progress: bool = True
) -> PutResult:
    validate_name(name)
    try:
        # O_NONBLOCK: a FIFO swapped in for the file must not hang the open; no effect on files.
        f = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise LocalFileError(f"{path} is not a regular file")
        upload = await clients.manager.create_upload(
            name=name, size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime
        )
        upload_id = UploadId(str(upload["upload_id"]))
        log.debug("upload created name=%r upload_id=%s", name, upload_id)
        try:
            return await _send_file(
                clients,
                f=f,
                st=st,
                path=path,
                name=name,
                upload=upload,
                budget=budget,
                show_progress=show_progress,
            )
        except BaseException:
            await abort_upload(clients, upload_id)
            raise


async def abort_upload(clients: Clients, upload_id: UploadId) -> None:
    """Release the manager's reservation; best effort, the session also expires by itself."""
    try:
        await within(clients.manager.abort_upload(upload_id), ABORT_TIMEOUT_S)
    except Exception as exc:  # the original failure is what the user needs to see
        log.debug("abort failed upload_id=%s error=%s", upload_id, exc)


async def _send_file(
    clients: Clients,
    *,
    f: BinaryIO,
    st: os.stat_result,
    path: Path,
    name: str,
    upload: dict[str, object],
    budget: Budget,
    show_progress: bool,
) -> PutResult:
    upload_id = UploadId(str(upload["upload_id"]))
    ticket = str(upload["ticket"])
    chunk_size = int(str(upload["chunk_size"]))
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise Unavailable(f"manager handed out an unusable chunk size {chunk_size}")
    primary = clients.node(str(upload["primary_url"]))
    progress = Progress(label=name, total=st.st_size, enabled=None if show_progress else False)
    sender = _ChunkSender(
        clients, primary, upload_id=upload_id, ticket=ticket, budget=budget, progress=progress
    )
    manifests: list[Manifest] = []

    def seal(refs: list[ChunkRef]) -> tuple[ChunkRef, bytes]:
        """The manifest, built once the whole file was read unchanged."""
        after = os.fstat(f.fileno())
        if after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
            raise LocalFileError(f"{path} changed while it was read; nothing was stored")
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

    try:
        refs = await sender.send_stream(
            f, chunk_size=chunk_size, expected=st.st_size, path=path, seal=seal
        )
    finally:
        progress.finish()
    committed = await clients.manager.commit_upload(upload_id, manifests[0])
    log.debug("upload committed name=%r version=%s", name, committed.get("version"))
    return PutResult(
        name=name,
        version=int(committed["version"]),
        size=st.st_size,
        chunks=len(refs),
        sent_bytes=sender.sent_bytes,
    )


async def retrying(op: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run an idempotent chunk request, again after a pause if the primary or a replica
    blinked: one dropped connection should not fail a backup of many gigabytes."""
    for pause in RETRY_PAUSES_S:
        try:
            return await op()
        except (Unavailable, ReplicaFailed) as exc:
            log.debug("retrying %s after %.1fs: %s", what, pause, exc.detail)
        await asyncio.sleep(pause)
    return await op()


async def to_send(
    clients: Clients,
    primary: NodeClient,
    upload_id: UploadId,
    hashes: list[ChunkHash],
    *,
    ticket: str,
) -> set[ChunkHash]:
    """The chunks to send: those the upload's nodes lack and that are not already stored with
    every copy elsewhere (the manager's dedup across placement). Both are asked at once."""

    async def known() -> set[ChunkHash]:
        found: set[ChunkHash] = set()
        for start in range(0, len(hashes), KNOWN_BATCH):
            group = hashes[start : start + KNOWN_BATCH]
            found |= await retrying(
                functools.partial(clients.manager.known, upload_id, group),
                what=f"known upload_id={upload_id}",
            )
        return found

    async def missing() -> list[ChunkHash]:
        return await retrying(
            lambda: primary.missing(upload_id, hashes, ticket=ticket),
            what=f"missing upload_id={upload_id}",
        )

    async with asyncio.TaskGroup() as group:
        stored = group.create_task(known())
        lacking = group.create_task(missing())
    return set(lacking.result()) - stored.result()


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


class _ChunkSender:
    """Reads, asks which chunks are missing in batches, and sends those a few at a time.

    Every chunk read holds its bytes of ``budget.memory`` until it is sent or known present.
    """

    def __init__(
        self,
        clients: Clients,
        primary: NodeClient,
        *,
        upload_id: UploadId,
        ticket: str,
        budget: Budget,
        progress: Progress,
    ) -> None:
        self.clients = clients
        self.primary = primary
        self.upload_id = upload_id
        self.ticket = ticket
        self.budget = budget
        self.progress = progress
        self.sent_bytes = 0
        self._scheduled: set[ChunkHash] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[_Pending] = []

    async def send_stream(
        self,
        f: BinaryIO,
        *,
        chunk_size: int,
        expected: int,
        path: Path,
        seal: Callable[[list[ChunkRef]], tuple[ChunkRef, bytes]],
    ) -> list[ChunkRef]:
        """Send the file's chunks, then the manifest ``seal`` builds from their references.

        The manifest rides in the last batch: one `missing` round trip fewer per file.
        """
        refs: list[ChunkRef] = []
        total = 0
        try:
            while total < expected:
                want = min(chunk_size, expected - total)
                await self._reserve(want)
                try:
                    data, chunk_hash = await asyncio.to_thread(_read_and_hash, f, want)
                except OSError as exc:
                    self.budget.memory.release(want)
                    raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
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
                raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
            if grew:
                raise LocalFileError(f"{path} grew while it was read; nothing was stored")
            manifest_ref, encoded = seal(refs)
            await self._reserve(len(encoded))
            self._pending.append(_Pending(manifest_ref, encoded, held=len(encoded), counts=False))
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
        hashes = list(dict.fromkeys(item.ref.hash for item in batch))
        try:
            missing = await to_send(
                self.clients, self.primary, self.upload_id, hashes, ticket=self.ticket
            )
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
                    self.progress.advance(item.ref.length)

    async def _send(self, item: _Pending) -> None:
        try:
            async with self.budget.requests:
                await self.budget.in_flight.acquire(item.held)
                try:
                    await retrying(
                        lambda: self.primary.upload_chunk(
                            self.upload_id, item.ref.hash, item.data, ticket=self.ticket
                        ),
                        what=f"chunk {item.ref.hash}",
                    )
                finally:
                    self.budget.in_flight.release(item.held)
            if item.counts:
                self.sent_bytes += item.ref.length
                self.progress.advance(item.ref.length)
        finally:
            self.budget.memory.release(item.held)


async def put_many(
    clients: Clients,
    items: list[tuple[Path, str]],
    *,
    budget: Budget,
    show_progress: bool,
    on_result: Callable[[str, PutResult | Exception], None],
) -> None:
    """Back up several files, a few at once, reporting each as it ends; one failure does not
    stop the others. Small files travel in batches (cofre.cli.batch_upload), large ones stream."""
    # Imported here: batch_upload builds on this module.
    from cofre.cli.batch_upload import SmallFile, plan_batches, put_batch

    sizes = await asyncio.to_thread(_sizes, items)
    small: list[SmallFile] = []
    large: list[tuple[Path, str]] = []
    for (path, name), size in zip(items, sizes, strict=True):
        if size is None or size > SMALL_FILE_BYTES or len(items) == 1:
            large.append((path, name))
            continue
        try:
            validate_name(name)
        except BadRequest as exc:
            on_result(name, exc)
            continue
        small.append(SmallFile(path=path, name=name, size=size))
    batches = asyncio.Semaphore(budget.parallelism)

    async def one(path: Path, name: str) -> None:
        async with budget.files:
            try:
                result: PutResult | Exception = await put_file(
                    clients, path=path, name=name, budget=budget, show_progress=show_progress
                )
            except Exception as exc:
                result = exc
        on_result(name, result)

    async def batch(files: list[SmallFile]) -> None:
        async with batches:
            await put_batch(clients, files, budget=budget, on_result=on_result)

    tasks = [asyncio.create_task(batch(b)) for b in plan_batches(small)]
    tasks += [asyncio.create_task(one(p, n)) for p, n in large]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)


def _sizes(items: list[tuple[Path, str]]) -> list[int | None]:
    """Each regular file's size; None for anything else (the streaming path reports it)."""
    out: list[int | None] = []
    for path, _ in items:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append(st.st_size if stat.S_ISREG(st.st_mode) else None)
    return out
