"""Restoring: fetch a version's chunks from the nodes holding them, verify, write in order.

Each chunk comes from the first of its nodes that returns the right bytes (nodes are listed
best first; a node that fails, lacks the chunk or returns bytes that do not hash right is
skipped). Files are written to a temp file beside the destination, fsynced, given their mode
and mtime, then renamed, so a destination is never half-written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cofre.chunks import hash_bytes
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError, UsageError
from cofre.cli.http import Clients
from cofre.cli.progress import TransferProgress
from cofre.durable import fsync_dir
from cofre.errors import CofreError, IntegrityError, Unavailable
from cofre.protocol.manager_api import ChunkLocation

log = logging.getLogger(__name__)

# Permission bits only: a restored file never becomes setuid/setgid because a manifest says so.
MODE_MASK = 0o777


@dataclass(frozen=True, slots=True)
class GetResult:
    name: str
    version: int
    size: int
    dest: str


async def fetch_chunk(clients: Clients, chunk: ChunkLocation) -> bytes:
    """The bytes of one manifest chunk from the first node that has them intact."""
    chunk_hash, length, nodes = chunk.hash, chunk.length, chunk.nodes
    failures: list[str] = []
    corrupt = False
    for url in nodes:
        try:
            data = await clients.get_chunk(url, chunk_hash)
        except CofreError as exc:
            corrupt = corrupt or isinstance(exc, IntegrityError)
            failures.append(f"{url}: {exc.detail}")
        else:
            if len(data) == length and await asyncio.to_thread(hash_bytes, data) == chunk_hash:
                return data
            corrupt = True
            failures.append(f"{url}: bytes do not match the hash")
        log.debug("chunk fetch failed, trying the next copy hash=%s %s", chunk_hash, failures[-1])
    log.debug("chunk unavailable hash=%s failures=%s", chunk_hash, failures)
    detail = "; ".join(failures) if failures else "no node holds it"
    if corrupt:
        raise IntegrityError(f"chunk {chunk_hash[:16]} has no intact copy ({detail})")
    raise Unavailable(f"chunk {chunk_hash[:16]} cannot be fetched ({detail})")


async def stream_chunks(
    clients: Clients,
    chunks: list[ChunkLocation],
    *,
    budget: Budget,
    write: Callable[[bytes], Awaitable[None]],
) -> int:
    """Fetch chunks a few at a time, hand them to ``write`` in order; returns bytes written."""
    window: collections.deque[tuple[int, asyncio.Task[bytes]]] = collections.deque()
    written = 0

    async def fetch(chunk: ChunkLocation, length: int) -> bytes:
        async with budget.requests:
            await budget.in_flight.acquire(length)
            try:
                return await fetch_chunk(clients, chunk)
            finally:
                budget.in_flight.release(length)

    async def write_oldest() -> None:
        nonlocal written
        length, task = window.popleft()
        try:
            data = await task
            await write(data)
            written += len(data)
        except BaseException:
            task.cancel()
            raise
        finally:
            budget.memory.release(length)

    try:
        for index, listed in enumerate(chunks):
            chunk = spread_nodes(listed, index)
            length = chunk.length
            # Never block on memory while holding fetched chunks that only we can release.
            while window and (len(window) >= budget.batch or budget.memory.would_block(length)):
                await write_oldest()
            await budget.memory.acquire(length)
            window.append((length, asyncio.create_task(fetch(chunk, length))))
        while window:
            await write_oldest()
    except BaseException:
        for length, task in window:
            task.cancel()
            budget.memory.release(length)
        await asyncio.gather(*(task for _, task in window), return_exceptions=True)
        raise
    return written


def rotated(nodes: list[str], index: int) -> list[str]:
    """``nodes`` rotated by ``index``: consecutive chunks are read from different copies, so
    every holder serves (and hashes) a share; the others stay as fallbacks."""
    if len(nodes) < 2:
        return nodes
    k = index % len(nodes)
    return nodes[k:] + nodes[:k]


def spread_nodes(chunk: ChunkLocation, index: int) -> ChunkLocation:
    """The chunk with its nodes ``rotated`` by ``index``."""
    if len(chunk.nodes) < 2:
        return chunk
    return chunk.model_copy(update={"nodes": rotated(chunk.nodes, index)})


def default_dest(name: str) -> Path:
    """The current dir plus the last part of NAME: names are data, never paths to follow."""
    base = PurePosixPath(name).name
    if base in ("", ".", ".."):
        raise UsageError(f"cannot make a file name from {name!r}; pass -o DEST")
    return Path(base)


def dest_under(root: Path, name: str) -> Path:
    """Where NAME goes below ``root`` when restoring many: refuses names leaving ``root``."""
    parts = PurePosixPath(name).parts
    if not parts or parts[0] == "/" or any(p in ("..", ".") for p in parts):
        raise UsageError(f"name {name!r} cannot be restored below a directory; use cofre get -o")
    target = root.joinpath(*parts)
    existing = target.parent
    while existing != root and not existing.exists():
        existing = existing.parent
    # A symlinked directory inside ``root`` must not carry the restore elsewhere.
    if existing.exists() and not existing.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"name {name!r} would be restored outside {root}")
    return target


async def get_to_path(
    clients: Clients,
    *,
    name: str,
    version: int | None,
    dest: Path,
    force: bool,
    budget: Budget,
    progress: TransferProgress | None = None,
    make_parents: bool = False,
) -> GetResult:
    """Restore NAME to ``dest``; bytes written are reported to ``progress`` as they go (the
    caller reports the file finished, with the result)."""
    manifest = await clients.manifest(name, version=version)
    dest = prepare_dest(dest, name=name, force=force, make_parents=make_parents)
    size, mode, mtime = manifest.size, manifest.mode, manifest.mtime
    if progress is None:
        progress = TransferProgress.silent("get")
    progress.started(name, size)
    with part_file(dest, mode=mode, mtime=mtime) as (f, tmp):
        written = await stream_chunks(
            clients, manifest.chunks, budget=budget, write=_file_writer(f, progress, name, dest)
        )
        if written != size:
            raise IntegrityError(f"{name}: got {written} bytes, the manifest says {size}")
        await asyncio.to_thread(_sync, f)
    install(tmp, dest, force=force)
    return GetResult(name=name, version=manifest.version, size=size, dest=str(dest))


def prepare_dest(dest: Path, *, name: str, force: bool, make_parents: bool) -> Path:
    """Where NAME is restored: ``dest``, or NAME's last part inside it when it is a directory;
    refused when it exists (unless ``force``), parent directories made on request."""
    if dest.is_dir():
        dest = dest / default_dest(name)
    if (dest.exists() or dest.is_symlink()) and not force:
        raise _exists(dest)
    if make_parents:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalFileError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc
    return dest


def cannot_write(dest: Path, exc: OSError) -> LocalFileError:
    return LocalFileError(f"cannot write {dest}: {exc.strerror or exc}")


def _exists(dest: Path) -> LocalFileError:
    return LocalFileError(f"{dest} already exists; use --force to overwrite it")


@contextlib.contextmanager
def part_file(dest: Path, *, mode: int, mtime: float) -> Iterator[tuple[BinaryIO, str]]:
    """A temp file beside ``dest`` and its name, for the restored bytes; once written, given
    ``mode`` (permission bits only) and ``mtime``. Removed if anything fails."""
    try:
        fd, tmp = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{dest.name[:80]}.", suffix=".cofre-part"
        )
    except OSError as exc:
        raise cannot_write(dest, exc) from exc
    with _removed_on_failure(tmp, dest):
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            os.fchmod(f.fileno(), mode & MODE_MASK)
        os.utime(tmp, (mtime, mtime))


def install(tmp: str, dest: Path, *, force: bool, sync_dir: bool = True) -> None:
    """Put the finished file in place; without ``force`` never replace what appeared meanwhile.
    The temp file is removed if that fails. ``sync_dir=False`` leaves the directory's fsync to
    the caller (one for many files)."""
    with _removed_on_failure(tmp, dest):
        if force:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise _exists(dest) from None
            os.unlink(tmp)
    if sync_dir:
        with contextlib.suppress(OSError):
            fsync_dir(dest.parent)


@contextlib.contextmanager
def _removed_on_failure(tmp: str, dest: Path) -> Iterator[None]:
    """The temp file is removed if the body fails; an OSError becomes a LocalFileError."""
    try:
        yield
    except OSError as exc:
        discard(tmp)
        raise cannot_write(dest, exc) from exc
    except BaseException:
        discard(tmp)
        raise


def discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


async def get_to_stdout(
    clients: Clients,
    *,
    name: str,
    version: int | None,
    budget: Budget,
    progress: TransferProgress | None = None,
) -> GetResult:
    manifest = await clients.manifest(name, version=version)
    out = sys.stdout.buffer
    if progress is None:
        progress = TransferProgress.silent("get")
    progress.started(name, manifest.size)
    written = await stream_chunks(
        clients, manifest.chunks, budget=budget, write=_file_writer(out, progress, name, Path("-"))
    )
    out.flush()
    if written != manifest.size:
        raise IntegrityError(f"{name}: got {written} bytes, the manifest says {manifest.size}")
    return GetResult(name=name, version=manifest.version, size=written, dest="-")


def _file_writer(
    f: BinaryIO, progress: TransferProgress, name: str, dest: Path
) -> Callable[[bytes], Awaitable[None]]:
    async def write(data: bytes) -> None:
        try:
            await asyncio.to_thread(f.write, data)
        except BrokenPipeError as exc:
            raise LocalFileError("output closed before the restore finished") from exc
        except OSError as exc:
            raise cannot_write(dest, exc) from exc
        progress.advance(name, len(data), moved=True)

    return write


def _sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
