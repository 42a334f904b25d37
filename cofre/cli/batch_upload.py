"""Backing up many files: small ones in batches of one upload session, one relay request and one
commit each; larger ones streamed one by one (cofre.cli.upload).

Per file, the streaming path costs a session, a `missing` round trip, a chunk request (and a
directory fsync on every copy) and a commit. Small files are instead read whole, grouped into
batches (at most BATCH_FILES files and BATCH_BYTES bytes), and each batch makes one upload that
declares all its files, one `missing` call, framed chunk requests (cofre.protocol.framing) that
the primary relays as one write per replica, and one commit of every manifest in one catalog
transaction. The guarantees are the streaming path's: nothing is committed before every chunk
and manifest has its durable copies, and a file that changed while read is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cofre.chunks import iter_chunks
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.packing import pack
from cofre.cli.progress import TransferProgress
from cofre.cli.sending import (
    PutResult,
    Session,
    changed,
    check_unchanged,
    committing,
    open_regular,
    open_session,
    send_frames,
    unreadable,
)
from cofre.cli.upload import put_file
from cofre.errors import BadRequest
from cofre.models import ChunkHash, Manifest, validate_name
from cofre.protocol.manager_api import FileDecl

# Files up to this size travel in batches; larger ones stream.
SMALL_FILE_BYTES = 1024 * 1024
BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SmallFile:
    path: Path
    name: str
    size: int  # as stat saw it when planning; a file that differs when read is left out


@dataclass(frozen=True, slots=True)
class _Read:
    file: SmallFile
    data: bytes
    mode: int
    mtime: float


async def put_many(
    clients: Clients,
    items: list[tuple[Path, str]],
    *,
    budget: Budget,
    progress: TransferProgress,
    on_result: Callable[[str, PutResult | Exception], None],
) -> None:
    """Back up several files, a few at once, reporting each as it ends (to ``on_result`` and
    ``progress``); one failure does not stop the others. Small files travel in batches, large
    ones stream (cofre.cli.upload)."""
    sizes = await asyncio.to_thread(_sizes, items)
    for (_, name), size in zip(items, sizes, strict=True):
        progress.expect(name, size or 0)

    def done(name: str, result: PutResult | Exception) -> None:
        if isinstance(result, PutResult):
            progress.finished(name, size=result.size, moved=result.sent_bytes)
        else:
            progress.finished(name, error=True)
        on_result(name, result)

    small: list[SmallFile] = []
    large: list[tuple[Path, str]] = []
    for (path, name), size in zip(items, sizes, strict=True):
        if size is None or size > SMALL_FILE_BYTES or len(items) == 1:
            large.append((path, name))
            continue
        try:
            validate_name(name)
        except BadRequest as exc:
            done(name, exc)
            continue
        small.append(SmallFile(path=path, name=name, size=size))
    batches = asyncio.Semaphore(budget.parallelism)

    async def one(path: Path, name: str) -> None:
        async with budget.files:
            try:
                result: PutResult | Exception = await put_file(
                    clients, path=path, name=name, budget=budget, progress=progress
                )
            except Exception as exc:
                result = exc
        done(name, result)

    async def batch(files: list[SmallFile]) -> None:
        async with batches:
            await put_batch(clients, files, budget=budget, on_result=done)

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


def plan_batches(files: list[SmallFile]) -> list[list[SmallFile]]:
    """Consecutive groups of at most BATCH_FILES files and BATCH_BYTES bytes."""
    return pack(files, size=lambda f: f.size, max_items=BATCH_FILES, max_bytes=BATCH_BYTES)


def _read_one(f: SmallFile) -> _Read:
    fh, st = open_regular(f.path)
    with fh:
        if st.st_size != f.size:
            raise changed(f.path)
        try:
            data = fh.read(f.size + 1)
        except OSError as exc:
            raise unreadable(f.path, exc) from exc
        if len(data) != f.size:
            raise changed(f.path)
        check_unchanged(fh, st, f.path)
    return _Read(file=f, data=data, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime)


def _read_all(files: list[SmallFile]) -> list[_Read | LocalFileError]:
    out: list[_Read | LocalFileError] = []
    for f in files:
        try:
            out.append(_read_one(f))
        except LocalFileError as exc:
            out.append(exc)
    return out


async def put_batch(
    clients: Clients,
    files: list[SmallFile],
    *,
    budget: Budget,
    on_result: Callable[[str, PutResult | Exception], None],
) -> None:
    """Back up ``files`` as one upload; each file's result (or error) goes to ``on_result``."""
    held = sum(f.size for f in files)
    await budget.memory.acquire(held)
    try:
        read = await asyncio.to_thread(_read_all, files)
        good: list[_Read] = []
        for f, r in zip(files, read, strict=True):
            if isinstance(r, LocalFileError):
                on_result(f.name, r)
            else:
                good.append(r)
        if not good:
            return
        try:
            results = await _send_batch(clients, good)
        except Exception as exc:
            for r in good:
                on_result(r.file.name, exc)
            return
    finally:
        budget.memory.release(held)
    for result in results:
        on_result(result.name, result)


async def _send_batch(clients: Clients, files: list[_Read]) -> list[PutResult]:
    upload = await clients.manager.create_batch_upload(
        [FileDecl(name=r.file.name, size=r.file.size, mode=r.mode, mtime=r.mtime) for r in files]
    )
    async with open_session(clients, upload) as session:
        return await _fill_and_commit(clients, files, session)


async def _fill_and_commit(
    clients: Clients, files: list[_Read], session: Session
) -> list[PutResult]:
    chunk_size = session.chunk_size
    pieces = await asyncio.to_thread(
        lambda: [list(iter_chunks(io.BytesIO(r.data), chunk_size)) for r in files]
    )
    now = time.time()
    frames: dict[ChunkHash, bytes] = {}
    manifests: list[Manifest] = []
    for r, parts in zip(files, pieces, strict=True):
        manifest = Manifest(
            name=r.file.name,
            size=r.file.size,
            mode=r.mode,
            mtime=r.mtime,
            created=now,
            chunks=tuple(ref for ref, _ in parts),
        )
        manifests.append(manifest)
        for ref, data in parts:
            frames.setdefault(ref.hash, data)
        frames.setdefault(manifest.hash, manifest.encode())
    unsent = await send_frames(clients, session, frames)
    committed = await committing(
        lambda: clients.manager.commit_batch(session.upload_id, manifests),
        what=f"{len(manifests)} files from {manifests[0].name!r}",
    )
    by_name = {c.name: c for c in committed}
    results = []
    for manifest in manifests:
        answer = by_name[manifest.name]
        # A chunk two files share counts as sent for the first of them.
        sent = sum(c.length for c in manifest.chunks if c.hash in unsent)
        unsent.difference_update(c.hash for c in manifest.chunks)
        results.append(
            PutResult(
                name=manifest.name,
                version=answer.version,
                size=manifest.size,
                chunks=len(manifest.chunks),
                sent_bytes=sent,
            )
        )
    return results
