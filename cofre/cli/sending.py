"""What streaming one file (cofre.cli.upload) and sending a batch (cofre.cli.batch_upload) share.

Opening a local file and noticing it changed while read, the upload session the manager hands
out (aborted when the transfer fails), which chunks to send, retries of chunk requests, and the
per-file result.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import aiohttp

from cofre.aio import within
from cofre.cli.exitcodes import CommitOutcomeUnknown, LocalFileError
from cofre.cli.http import Clients
from cofre.cli.output import human_size
from cofre.cli.packing import pack
from cofre.errors import CofreError, ReplicaFailed, Unavailable
from cofre.limits import MAX_CHUNK_SIZE, MAX_FRAMED_BYTES, MAX_FRAMED_CHUNKS, MAX_KNOWN_HASHES
from cofre.models import ChunkHash, UploadId
from cofre.protocol.client import NodeClient
from cofre.protocol.framing import Frame, encode_frames
from cofre.protocol.manager_api import UploadCreated

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S = 10.0
# seconds between attempts of one chunk request; a node that stays away fails the put soon.
RETRY_PAUSES_S = (0.2, 1.0)

# One framed request stays well under the nodes' limit (headers and manifests ride along).
_REQUEST_BYTES = MAX_FRAMED_BYTES // 2
_REQUEST_CHUNKS = MAX_FRAMED_CHUNKS // 2

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


def unreadable(path: Path, exc: OSError) -> LocalFileError:
    return LocalFileError(f"cannot read {path}: {exc.strerror or exc}")


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """``path`` open for reading, and its stat; LocalFileError unless it is a regular file."""
    try:
        # O_NONBLOCK: a FIFO swapped in for the file must not hang the open; no effect on files.
        f = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
    except OSError as exc:
        raise unreadable(path, exc) from exc
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise LocalFileError(f"{path} is not a regular file")
    except BaseException:
        f.close()
        raise
    return f, st


def changed(path: Path) -> LocalFileError:
    return LocalFileError(f"{path} changed while it was read; nothing was stored")


def check_unchanged(f: BinaryIO, st: os.stat_result, path: Path) -> None:
    """LocalFileError when the open file's size or mtime moved since ``st``."""
    after = os.fstat(f.fileno())
    if after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
        raise changed(path)


@dataclass(frozen=True, slots=True)
class Session:
    """An open upload: where its chunks go and the ticket that lets them in."""

    upload_id: UploadId
    ticket: str
    chunk_size: int
    primary: NodeClient


@contextlib.asynccontextmanager
async def open_session(clients: Clients, upload: UploadCreated) -> AsyncIterator[Session]:
    """The session of an upload the manager just created; aborted if the body fails."""
    upload_id = upload.upload_id
    try:
        chunk_size = upload.chunk_size
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise Unavailable(f"manager handed out an unusable chunk size {chunk_size}")
        primary = clients.node(upload.primary_url)
        yield Session(
            upload_id=upload_id, ticket=upload.ticket, chunk_size=chunk_size, primary=primary
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
    clients: Clients, session: Session, chunks: Mapping[ChunkHash, int]
) -> set[ChunkHash]:
    """Of ``chunks`` (hash -> length), those to send: those the upload's nodes lack (a copy of
    another size counts as lacking) and that are not already stored with every copy elsewhere
    (the manager's dedup across placement). Both are asked at once."""
    upload_id = session.upload_id
    hashes = list(chunks)
    lengths = [chunks[h] for h in hashes]

    async def known() -> set[ChunkHash]:
        found: set[ChunkHash] = set()
        for start in range(0, len(hashes), MAX_KNOWN_HASHES):
            group = hashes[start : start + MAX_KNOWN_HASHES]
            found |= await retrying(
                functools.partial(clients.manager.known, upload_id, group),
                what=f"known upload_id={upload_id}",
            )
        return found

    async def missing() -> list[ChunkHash]:
        return await retrying(
            lambda: session.primary.missing(
                upload_id, hashes, lengths=lengths, ticket=session.ticket
            ),
            what=f"missing upload_id={upload_id}",
        )

    try:
        async with asyncio.TaskGroup() as group:
            stored = group.create_task(known())
            lacking = group.create_task(missing())
    except BaseExceptionGroup as failed:
        # One line for the user: the cause, not "unhandled errors in a TaskGroup".
        raise first_cause(failed) from None
    return set(lacking.result()) - stored.result()


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed task group: its first CofreError, else its first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    return next((e for e in leaves if isinstance(e, CofreError)), leaves[0] if leaves else group)


def _never_sent(exc: Unavailable) -> bool:
    """Whether a request that failed with ``exc`` cannot have reached the manager: it was
    refused before connecting, or the manager answered (with an error)."""
    cause = exc.__cause__
    return cause is None or isinstance(cause, aiohttp.ClientConnectorError)


async def committing(op: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run a commit; CommitOutcomeUnknown when the connection failed once the request may
    have reached the manager (it died, or the answer was lost on the way back)."""
    try:
        return await op()
    except Unavailable as exc:
        if _never_sent(exc):
            raise
        raise CommitOutcomeUnknown(
            f"the commit of {what} was sent but no answer came back ({exc.detail}): it may or "
            "may not be stored; check with `cofre ls` before sending it again"
        ) from exc


def _requests(frames: list[Frame]) -> list[list[Frame]]:
    """Frames grouped into bounded framed requests."""
    return pack(
        frames, size=lambda f: len(f[1]), max_items=_REQUEST_CHUNKS, max_bytes=_REQUEST_BYTES
    )


async def _upload_group(session: Session, body: bytes) -> None:
    await retrying(
        lambda: session.primary.upload_chunks(session.upload_id, body, ticket=session.ticket),
        what=f"chunk batch upload_id={session.upload_id}",
    )


async def send_frames(
    clients: Clients, session: Session, frames: dict[ChunkHash, bytes]
) -> set[ChunkHash]:
    """Send those of ``frames`` (hash -> bytes) the upload's nodes lack and that are not
    stored with every copy already, in bounded framed requests; -> the hashes sent."""
    lacking = await to_send(clients, session, {h: len(data) for h, data in frames.items()})
    sending: list[Frame] = [(h, data) for h, data in frames.items() if h in lacking]
    for group in _requests(sending):
        await _upload_group(session, encode_frames(group))
    return {h for h, _ in sending}
