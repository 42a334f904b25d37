"""The primary's relay: the client sends each chunk once, the primary fans it out to replicas.

The client only ever sees the primary; replica ids and URLs stay in this node's log and never
appear in an answer to the client. A relayed chunk is staged in memory only and dropped once
every replica acked, unless the session says the primary keeps a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from cofre.aio import Periodic, cancel_all, within
from cofre.errors import (
    BadRequest,
    CofreError,
    InsufficientStorage,
    IntegrityError,
    ReplicaFailed,
)
from cofre.limits import (
    MAX_CHUNK_SIZE,
    MAX_FRAMED_BYTES,
    MAX_NODE_JSON_BYTES,
    MAX_SESSION_TTL_S,
)
from cofre.models import ChunkHash, NodeId
from cofre.protocol.api import api_body, api_path, read_body, reply
from cofre.protocol.client import NodeClient, open_session
from cofre.protocol.framing import decode_frames
from cofre.protocol.node_api import (
    BatchRelayed,
    Missing,
    MissingRequest,
    OpenSession,
    Relayed,
    Replica,
    SessionChunkPath,
    SessionOpened,
    SessionPath,
)
from cofre.storage_node import keys
from cofre.storage_node.chunk_api import out_of_space, storing
from cofre.storage_node.inputs import verify_ticket
from cofre.storage_node.metrics import METRICS
from cofre.storage_node.operations import CHUNK, FRAMED, api
from cofre.storage_node.relay_sessions import RelaySession, SessionRegistry

log = logging.getLogger(__name__)

# Seconds shutdown waits for the sweeper; a cancelled sweeper stops at once.
STOP_TIMEOUT_S = 10.0

# The sweeper of expired sessions; tests run a sweep with ``await app[SWEEPER].run_once()``.
SWEEPER = web.AppKey("relay_sweeper", Periodic)


def _session_for(request: web.Request) -> RelaySession:
    """The session named in the path, after checking the client's ticket for it."""
    config = request.app[keys.CONFIG]
    upload_id = api_path(request, SessionPath).upload_id
    verify_ticket(request, token=config.token, node_id=NodeId(config.node_id), upload_id=upload_id)
    return request.app[keys.SESSIONS].get(upload_id)


def _replica_client(request: web.Request, replica: Replica) -> NodeClient:
    return NodeClient(request.app[keys.HTTP], replica.url, request.app[keys.CONFIG].token)


@api.post(
    "/v1/sessions",
    summary="Manager -> primary: open an upload's relay (its replicas and their ticket)",
    body=OpenSession,
    replies={201: SessionOpened},
)
async def register_session(request: web.Request) -> web.Response:
    session = await api_body(request, OpenSession, limit=MAX_NODE_JSON_BYTES)
    if session.expires > time.time() + MAX_SESSION_TTL_S:
        raise BadRequest(
            f"body.expires: a session may last at most {MAX_SESSION_TTL_S} s from now",
            errors=[{"loc": "body.expires", "message": "too far ahead", "type": "too_late"}],
        )
    request.app[keys.SESSIONS].add(session)
    log.info(
        "relay session opened upload=%s replicas=%s keep_copy=%s expires=%.0f",
        session.upload_id,
        ",".join(r.node_id for r in session.replicas),
        session.keep_copy,
        session.expires,
    )
    return reply(SessionOpened(upload_id=session.upload_id), status=201)


@api.delete(
    "/v1/sessions/{upload_id}",
    summary="Manager -> primary: the upload is over",
    path_params=SessionPath,
    replies={204: None},
)
async def close_session(request: web.Request) -> web.Response:
    upload_id = api_path(request, SessionPath).upload_id
    if request.app[keys.SESSIONS].remove(upload_id):
        log.info("relay session closed upload=%s", upload_id)
    return web.Response(status=204)


@api.post(
    "/v1/sessions/{upload_id}/missing",
    errors=(404, 502),
    summary="Client -> primary: which of these chunks must still be sent",
    path_params=SessionPath,
    body=MissingRequest,
    replies={200: Missing},
    ticket=True,
)
async def missing(request: web.Request) -> web.Response:
    session = _session_for(request)
    asked = await api_body(request, MissingRequest, limit=MAX_NODE_JSON_BYTES)
    sized = dict(zip(asked.hashes, asked.lengths, strict=True)) if asked.lengths else None
    hashes = list(dict.fromkeys(asked.hashes))
    lengths = [sized[h] for h in hashes] if sized else None
    if not hashes:
        return reply(Missing(missing=[]))

    async def lacking_on(replica: Replica) -> set[ChunkHash]:
        client = _replica_client(request, replica)
        found = await client.check(hashes, lengths=lengths, touch=True)
        return set(found.missing) | set(found.corrupt)

    async def lacking_here() -> set[ChunkHash]:
        found = await request.app[keys.STORE].check(hashes, lengths=lengths, touch=True)
        return set(found.missing) | set(found.corrupt)

    timeout = request.app[keys.CONFIG].replica_timeout_s
    results = await asyncio.gather(
        *(within(lacking_on(r), timeout) for r in session.replicas),
        return_exceptions=True,
    )
    lacking: set[ChunkHash] = set()
    for replica, result in zip(session.replicas, results, strict=True):
        if isinstance(result, BaseException):
            _log_replica_failure("missing-check", session, replica, None, result)
            raise ReplicaFailed("a copy of this upload could not be checked; retry later")
        lacking |= result
    if session.keep_copy:
        lacking |= await lacking_here()
    return reply(Missing(missing=[h for h in hashes if h in lacking]))


@api.put(
    "/v1/sessions/{upload_id}/chunks/{hash}",
    errors=(404, 422, 502, 507),
    summary="Client -> primary: one chunk, answered once every copy is durable",
    path_params=SessionChunkPath,
    body=CHUNK,
    replies={201: Relayed},
    ticket=True,
)
async def relay_chunk(request: web.Request) -> web.Response:
    chunk_hash = api_path(request, SessionChunkPath).hash
    session = _session_for(request)
    data = await read_body(request, limit=MAX_CHUNK_SIZE)
    # Not hashed here: every copy is verified by the store that writes it (a replica's, and
    # this node's own with keep_copy), so a pass here would be one more over every byte.
    timeout = request.app[keys.CONFIG].replica_timeout_s

    async def to_replica(replica: Replica) -> None:
        client = _replica_client(request, replica)
        await within(client.put_chunk(chunk_hash, data, ticket=session.replica_ticket), timeout)
        request.app[METRICS].relayed(1, len(data))

    replica_results = asyncio.gather(
        *(to_replica(r) for r in session.replicas), return_exceptions=True
    )
    if session.keep_copy:
        local, results = await asyncio.gather(
            _store_locally(request, chunk_hash, data), replica_results
        )
    else:
        local, results = None, await replica_results
    await _raise_if_tampered([local, *results], [(chunk_hash, data)])
    failed = False
    for replica, result in zip(session.replicas, results, strict=True):
        if isinstance(result, BaseException):
            failed = True
            _log_replica_failure("put", session, replica, chunk_hash, result)
    if failed:
        # Deliberately vague: the client must not learn where its copies live.
        _raise_if_full(results, f"chunk {chunk_hash}")
        raise ReplicaFailed(f"a copy of chunk {chunk_hash} could not be stored; retry it")
    if local is not None:
        raise out_of_space(request, local) if isinstance(local, InsufficientStorage) else local
    log.debug(
        "chunk relayed upload=%s hash=%s length=%d copies=%d",
        session.upload_id,
        chunk_hash,
        len(data),
        len(session.replicas) + int(session.keep_copy),
    )
    return reply(Relayed(hash=chunk_hash), status=201)


@api.put(
    "/v1/sessions/{upload_id}/chunks",
    errors=(404, 422, 502, 507),
    summary="Client -> primary: a framed batch, verified here, then one write to each replica",
    path_params=SessionPath,
    body=FRAMED,
    replies={201: BatchRelayed},
    ticket=True,
)
async def relay_chunks(request: web.Request) -> web.Response:
    session = _session_for(request)
    body = await read_body(request, limit=MAX_FRAMED_BYTES)
    items = decode_frames(body)
    if not items:
        return reply(BatchRelayed(stored=0), status=201)
    # Not hashed here: each copy's store verifies the whole batch before writing any of it.
    timeout = request.app[keys.CONFIG].replica_timeout_s

    async def to_replica(replica: Replica) -> None:
        client = _replica_client(request, replica)
        # The body is forwarded as it came.
        await within(client.put_chunks(body, ticket=session.replica_ticket), timeout)
        request.app[METRICS].relayed(len(items), sum(len(d) for _, d in items))

    replica_results = asyncio.gather(
        *(to_replica(r) for r in session.replicas), return_exceptions=True
    )
    local: BaseException | None = None
    if session.keep_copy:
        local_results, results = await asyncio.gather(
            storing(request, request.app[keys.STORE].put_many(items)),
            replica_results,
            return_exceptions=True,
        )
        if isinstance(local_results, BaseException):
            local = local_results
        if isinstance(results, BaseException):
            raise results
    else:
        results = await replica_results
    await _raise_if_tampered([local, *results], items)
    failed = False
    for replica, result in zip(session.replicas, results, strict=True):
        if isinstance(result, BaseException):
            failed = True
            _log_replica_failure("put-batch", session, replica, items[0][0], result)
    if failed:
        _raise_if_full(results, f"a batch of {len(items)} chunks")
        raise ReplicaFailed(f"a copy of a batch of {len(items)} chunks could not be stored; retry")
    if local is not None:
        raise local
    log.debug(
        "chunk batch relayed upload=%s chunks=%d bytes=%d copies=%d",
        session.upload_id,
        len(items),
        sum(len(d) for _, d in items),
        len(session.replicas) + int(session.keep_copy),
    )
    return reply(BatchRelayed(stored=len(items)), status=201)


def _raise_if_full(results: list[BaseException | None], what: str) -> None:
    """A replica out of space fails the upload as such (507, not a retryable 502), without
    naming the replica: the client must not learn where its copies live."""
    if any(isinstance(r, InsufficientStorage) for r in results):
        raise InsufficientStorage(f"a copy node is out of space; {what} was not stored")


async def _raise_if_tampered(
    results: Sequence[BaseException | None],
    items: Sequence[tuple[ChunkHash, bytes | memoryview]],
) -> None:
    """IntegrityError (422, the client's fault) when a copy refused the bytes and they indeed
    do not hash to their names. Only on that rare path does the primary hash them itself: a
    copy that refused good bytes is a replica failure, which the client retries."""
    if not any(isinstance(r, IntegrityError) for r in results):
        return
    bad = await asyncio.to_thread(_first_mismatch, items)
    if bad is not None:
        raise IntegrityError(f"bytes do not hash to chunk {bad}", hash=bad)


def _first_mismatch(items: Sequence[tuple[ChunkHash, bytes | memoryview]]) -> ChunkHash | None:
    for chunk_hash, data in items:
        if hashlib.sha256(data).hexdigest() != chunk_hash:
            return chunk_hash
    return None


async def _store_locally(
    request: web.Request, chunk_hash: ChunkHash, data: bytes
) -> Exception | None:
    """The primary's own copy; its failure is raised only after the replicas are settled."""
    try:
        await request.app[keys.STORE].put(chunk_hash, data)
    except Exception as exc:
        return exc
    return None


def _log_replica_failure(
    what: str,
    session: RelaySession,
    replica: Replica,
    chunk_hash: ChunkHash | None,
    exc: BaseException,
) -> None:
    reason = (
        exc.detail
        if isinstance(exc, CofreError)
        else "timed out"
        if isinstance(exc, TimeoutError)
        else repr(exc)
    )
    log.warning(
        "replica failed op=%s upload=%s hash=%s node=%s url=%s error=%s",
        what,
        session.upload_id,
        chunk_hash or "-",
        replica.node_id,
        replica.url,
        reason,
    )


def sweeper_loop(sessions: SessionRegistry, *, interval_s: float) -> Periodic:
    """Expired relay sessions dropped every ``interval_s`` seconds."""

    async def sweep() -> None:
        dropped = sessions.sweep()
        log.debug("relay session sweep dropped=%d open=%d", dropped, len(sessions))

    return Periodic("relay-sessions", sweep, interval_s=interval_s)


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: drop expired sessions in the background."""
    task = app[SWEEPER].start()
    yield
    if await cancel_all([task], STOP_TIMEOUT_S):
        log.error("relay session sweeper did not stop")


async def http_session(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: one pooled client session for all node-to-node traffic."""
    config = app[keys.CONFIG]
    async with open_session(
        timeout_s=config.replica_timeout_s, ca_file=config.tls.ca_path
    ) as session:
        app[keys.HTTP] = session
        yield
