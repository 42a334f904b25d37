"""Backing up many small files: one upload session, one relay request and one commit per batch.

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
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cofre.chunks import MAX_CHUNK_SIZE, hash_bytes
from cofre.cli.budget import Budget
from cofre.cli.exitcodes import LocalFileError
from cofre.cli.http import Clients
from cofre.cli.upload import PutResult, abort_upload, retrying, to_send
from cofre.errors import Unavailable
from cofre.models import ChunkHash, ChunkRef, Manifest, UploadId
from cofre.protocol.client import NodeClient
from cofre.protocol.framing import MAX_FRAMED_BYTES, MAX_FRAMED_CHUNKS, Frame, encode_frames

BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024
# One framed request stays well under the nodes' limit (headers and manifests ride along).
_REQUEST_BYTES = MAX_FRAMED_BYTES // 2
_REQUEST_CHUNKS = MAX_FRAMED_CHUNKS // 2


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


def plan_batches(files: list[SmallFile]) -> list[list[SmallFile]]:
    """Consecutive groups of at most BATCH_FILES files and BATCH_BYTES bytes."""
    batches: list[list[SmallFile]] = []
    current: list[SmallFile] = []
    size = 0
    for f in files:
        if current and (len(current) >= BATCH_FILES or size + f.size > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        batches.append(current)
    return batches


def _read_one(f: SmallFile) -> _Read:
    try:
        # O_NONBLOCK: a FIFO swapped in for the file must not hang the open.
        fd = os.open(f.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise LocalFileError(f"cannot read {f.path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise LocalFileError(f"{f.path} is not a regular file")
        if st.st_size != f.size:
            raise LocalFileError(f"{f.path} changed while it was read; nothing was stored")
        try:
            data = fh.read(f.size + 1)
        except OSError as exc:
            raise LocalFileError(f"cannot read {f.path}: {exc.strerror or exc}") from exc
        after = os.fstat(fh.fileno())
        if (
            len(data) != f.size
            or after.st_size != st.st_size
            or after.st_mtime_ns != st.st_mtime_ns
        ):
            raise LocalFileError(f"{f.path} changed while it was read; nothing was stored")
    return _Read(file=f, data=data, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime)


def _read_all(files: list[SmallFile]) -> list[_Read | LocalFileError]:
    out: list[_Read | LocalFileError] = []
    for f in files:
        try:
            out.append(_read_one(f))
        except LocalFileError as exc:
            out.append(exc)
    return out


def _split(data: bytes, chunk_size: int) -> list[tuple[ChunkRef, bytes]]:
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    return [(ChunkRef(hash_bytes(p), len(p)), p) for p in pieces]


def _requests(frames: list[Frame]) -> list[list[Frame]]:
    """Frames grouped into bounded framed requests."""
    groups: list[list[Frame]] = []
    current: list[Frame] = []
    size = 0
    for frame in frames:
        n = len(frame[1])
        if current and (len(current) >= _REQUEST_CHUNKS or size + n > _REQUEST_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(frame)
        size += n
    if current:
        groups.append(current)
    return groups


async def _upload_group(
    primary: NodeClient, upload_id: UploadId, body: bytes, *, ticket: str
) -> None:
    await retrying(
        lambda: primary.upload_chunks(upload_id, body, ticket=ticket),
        what=f"chunk batch upload_id={upload_id}",
    )


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
        [
            {"name": r.file.name, "size": r.file.size, "mode": r.mode, "mtime": r.mtime}
            for r in files
        ]
    )
    upload_id = UploadId(str(upload["upload_id"]))
    try:
        return await _fill_and_commit(clients, files, upload, upload_id)
    except BaseException:
        await abort_upload(clients, upload_id)
        raise


async def _fill_and_commit(
    clients: Clients, files: list[_Read], upload: dict[str, object], upload_id: UploadId
) -> list[PutResult]:
    ticket = str(upload["ticket"])
    chunk_size = int(str(upload["chunk_size"]))
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise Unavailable(f"manager handed out an unusable chunk size {chunk_size}")
    primary = clients.node(str(upload["primary_url"]))
    pieces = await asyncio.to_thread(lambda: [_split(r.data, chunk_size) for r in files])
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
    lacking = await to_send(clients, primary, upload_id, list(frames), ticket=ticket)
    sending: list[Frame] = [(h, data) for h, data in frames.items() if h in lacking]
    for group in _requests(sending):
        await _upload_group(primary, upload_id, encode_frames(group), ticket=ticket)
    unsent = {h for h, _ in sending}
    committed = await clients.manager.commit_batch(upload_id, manifests)
    by_name = {str(c["name"]): c for c in committed}
    results = []
    for manifest in manifests:
        answer = by_name[manifest.name]
        # A chunk two files share counts as sent for the first of them.
        sent = sum(c.length for c in manifest.chunks if c.hash in unsent)
        unsent.difference_update(c.hash for c in manifest.chunks)
        results.append(
            PutResult(
                name=manifest.name,
                version=int(answer["version"]),
                size=manifest.size,
                chunks=len(manifest.chunks),
                sent_bytes=sent,
            )
        )
    return results
