"""Restoring many small files: manifests in batches, chunks in framed batches per node.

Per file, the one-by-one path costs a manifest request and a chunk request. Here a batch of
files costs one manifest request (`POST /v1/files/manifests`) and, per node, one framed read
(`POST /v1/chunks/read`) of the chunks it is listed first for. Every chunk is still checked
against its hash; one a node did not send (absent, corrupt, over the size limit) or sent wrong
is fetched on its own from the next copy, as the one-by-one path does. Files are written as
there: a temp file beside the destination, given mode and mtime, made durable, then renamed.
A batch of 8 or more files syncs each filesystem once after the writes and once after the
renames; a smaller one fsyncs each file and directory, on several threads so the fsyncs overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cofre.cli.budget import Budget
from cofre.cli.download import (
    GetResult,
    dest_under,
    discard,
    fetch_chunk,
    install,
    part_file,
    prepare_dest,
    spread_nodes,
)
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.packing import pack
from cofre.durable import fsync_dir, have_syncfs, sync_filesystem
from cofre.errors import CofreError, IntegrityError, NotFound
from cofre.limits import MAX_FRAMED_CHUNKS
from cofre.models import ChunkHash
from cofre.protocol.manager_api import ChunkLocation, ManifestView

log = logging.getLogger(__name__)

# Files up to this size are restored in batches; larger ones stream chunk by chunk.
SMALL_FILE_BYTES = 1024 * 1024
BATCH_FILES = 256
BATCH_BYTES = 16 * 1024 * 1024
# Threads writing one batch's files: concurrent fsyncs share the file system's journal commits.
# With `parallelism` (4) batches at once that is 16 writers, the best rate measured here.
WRITE_THREADS = 4
# Files in a batch from which one syncfs per step beats an fsync per file and directory.
SYNCFS_MIN_FILES = 8

OnResult = Callable[[str, GetResult | Exception], None]


def plan_batches(files: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """(name, size) grouped into batches of at most BATCH_FILES files and BATCH_BYTES bytes."""
    return pack(files, size=lambda f: f[1], max_items=BATCH_FILES, max_bytes=BATCH_BYTES)


async def get_batch(
    clients: Clients,
    files: list[tuple[str, int]],
    *,
    root: Path,
    force: bool,
    budget: Budget,
    on_result: OnResult,
) -> None:
    """Restore the latest version of each (name, size) below ``root``; one result per name."""
    held = sum(n for _, n in files)
    await budget.memory.acquire(held)
    try:
        try:
            manifests = await clients.manifests([name for name, _ in files])
        except Exception as exc:
            for name, _ in files:
                on_result(name, exc)
            return
        found = {m.name for m in manifests}
        for name, _ in files:
            if name not in found:
                on_result(name, NotFound(f"no live {name!r}"))
        if not manifests:
            return
        chunks = await _fetch_all(clients, manifests, budget=budget)
        results = await asyncio.to_thread(_write_all, manifests, chunks, root, force)
    finally:
        budget.memory.release(held)
    for manifest, result in zip(manifests, results, strict=True):
        on_result(manifest.name, result)


async def _fetch_all(
    clients: Clients, manifests: list[ManifestView], *, budget: Budget
) -> dict[ChunkHash, bytes | Exception]:
    wanted: dict[ChunkHash, ChunkLocation] = {}
    for manifest in manifests:
        for chunk in manifest.chunks:
            if chunk.hash not in wanted:
                wanted[chunk.hash] = spread_nodes(chunk, len(wanted))
    by_node: dict[str, list[ChunkHash]] = {}
    for chunk_hash, chunk in wanted.items():
        if chunk.nodes:
            by_node.setdefault(chunk.nodes[0], []).append(chunk_hash)
    got: dict[ChunkHash, bytes | Exception] = {}

    async def from_node(url: str, hashes: list[ChunkHash]) -> None:
        left = list(hashes)
        while left:
            ask = left[:MAX_FRAMED_CHUNKS]
            async with budget.requests:
                try:
                    frames = await clients.node(url).read_chunks(
                        ask, ticket=clients.read_ticket(url)
                    )
                except CofreError as exc:
                    log.debug("batched read failed url=%s error=%s", url, exc.detail)
                    return
            good = await asyncio.to_thread(_verified, frames, wanted)
            got.update(good)
            if not good:
                return  # nothing more from this node: the rest go one by one
            left = [h for h in left if h not in got]

    await asyncio.gather(*(from_node(u, hs) for u, hs in by_node.items()))

    async def one_by_one(chunk_hash: ChunkHash) -> None:
        async with budget.requests:
            try:
                got[chunk_hash] = await fetch_chunk(clients, wanted[chunk_hash])
            except CofreError as exc:
                got[chunk_hash] = exc

    await asyncio.gather(*(one_by_one(h) for h in wanted if h not in got))
    return got


def _verified(
    frames: list[tuple[ChunkHash, memoryview]], wanted: dict[ChunkHash, ChunkLocation]
) -> dict[ChunkHash, bytes]:
    good: dict[ChunkHash, bytes] = {}
    for chunk_hash, data in frames:
        chunk = wanted.get(chunk_hash)
        if chunk is None or len(data) != chunk.length:
            continue
        if hashlib.sha256(data).hexdigest() == chunk_hash:
            good[chunk_hash] = bytes(data)
    return good


@dataclass(frozen=True, slots=True)
class _Staged:
    """A restored file written to its temp name, not yet in place."""

    tmp: str
    dest: Path
    result: GetResult


def _write_all(
    manifests: list[ManifestView],
    chunks: dict[ChunkHash, bytes | Exception],
    root: Path,
    force: bool,
) -> list[GetResult | Exception]:
    """Write every file to a temp name, make the bytes durable, rename them into place, make
    the renames durable; -> per manifest its result. A big batch syncs each filesystem once per
    step (cofre.durable); a small one fsyncs each file and directory."""
    whole_fs = len(manifests) >= SYNCFS_MIN_FILES and have_syncfs()
    with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="restore") as pool:

        def stage(manifest: ManifestView) -> _Staged | Exception:
            try:
                return _stage(manifest, chunks, root, force, fsync=not whole_fs)
            except Exception as exc:  # reported per file; the others go on
                return exc

        staged = list(pool.map(stage, manifests))
        if whole_fs:
            failure = _sync_filesystems([s.dest.parent for s in staged if isinstance(s, _Staged)])
            if failure is not None:
                for s in staged:
                    if isinstance(s, _Staged):
                        discard(s.tmp)
                return [failure if isinstance(s, _Staged) else s for s in staged]
        out = [_install_staged(s, force) if isinstance(s, _Staged) else s for s in staged]
        # New directory entries made durable once for the batch, before any file of it is
        # reported restored.
        dirs = sorted({Path(r.dest).parent for r in out if isinstance(r, GetResult)})
        if whole_fs:
            failure = _sync_filesystems(dirs)
            synced = dict.fromkeys(dirs, failure)
        else:
            synced = dict(zip(dirs, pool.map(_sync_dir, dirs), strict=True))
    results: list[GetResult | Exception] = []
    for r in out:
        failure = synced[Path(r.dest).parent] if isinstance(r, GetResult) else None
        results.append(failure if failure is not None else r)
    return results


def _sync_filesystems(dirs: list[Path]) -> Exception | None:
    """syncfs once per filesystem the directories are on."""
    by_device: dict[int, Path] = {}
    try:
        for d in dirs:
            by_device.setdefault(os.stat(d).st_dev, d)
        for d in by_device.values():
            sync_filesystem(d)
    except OSError as exc:
        return LocalFileError(f"cannot sync the restored files: {exc.strerror or exc}")
    return None


def _sync_dir(path: Path) -> Exception | None:
    try:
        fsync_dir(path)
    except OSError as exc:
        return LocalFileError(f"cannot sync {path}: {exc.strerror or exc}")
    return None


def _install_staged(staged: _Staged, force: bool) -> GetResult | Exception:
    try:
        install(staged.tmp, staged.dest, force=force, sync_dir=False)
    except LocalFileError as exc:
        return exc
    return staged.result


def _stage(
    manifest: ManifestView,
    chunks: dict[ChunkHash, bytes | Exception],
    root: Path,
    force: bool,
    *,
    fsync: bool,
) -> _Staged:
    name = manifest.name
    parts: list[bytes] = []
    for chunk in manifest.chunks:
        data = chunks.get(chunk.hash)
        if isinstance(data, Exception):
            raise data
        if data is None:
            raise IntegrityError(f"{name}: chunk {chunk.hash[:16]} was not fetched")
        parts.append(data)
    size = manifest.size
    if sum(len(p) for p in parts) != size:
        raise IntegrityError(f"{name}: chunks add up to another size than the manifest's {size}")
    dest = prepare_dest(dest_under(root, name), name=name, force=force, make_parents=True)
    with part_file(dest, mode=manifest.mode, mtime=manifest.mtime) as (f, tmp):
        for part in parts:
            f.write(part)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    result = GetResult(name=name, version=manifest.version, size=size, dest=str(dest))
    return _Staged(tmp=tmp, dest=dest, result=result)
