"""Chunk endpoints of a storage node, its stats and its health probes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from cofre.aio import within
from cofre.errors import (
    CofreError,
    InsufficientStorage,
    IntegrityError,
    StoreUnavailable,
    Unavailable,
)
from cofre.limits import MAX_CHUNK_SIZE, MAX_FRAMED_BYTES, MAX_NODE_JSON_BYTES, MAX_READ_BYTES
from cofre.models import NodeId
from cofre.protocol.api import (
    api_body,
    api_path,
    api_query,
    health_reply,
    read_body,
    reply,
)
from cofre.protocol.base import Health
from cofre.protocol.client import NodeClient
from cofre.protocol.framing import CONTENT_TYPE, decode_frames, encode_frames
from cofre.protocol.node_api import (
    BatchStored,
    CheckRequest,
    CheckResult,
    ChunkPath,
    ChunksDeleted,
    ChunkStored,
    HashList,
    Inventory,
    InventoryEntry,
    InventoryQuery,
    ManifestCandidate,
    ManifestCandidates,
    NodeStats,
    PullRequest,
    ReadRequest,
)
from cofre.protocol.server import problem_response
from cofre.storage_node import keys
from cofre.storage_node.inputs import verify_ticket
from cofre.storage_node.metrics import METRICS
from cofre.storage_node.operations import CHUNK, FRAMED, api
from cofre.tickets import Scope

log = logging.getLogger(__name__)

T = TypeVar("T")


def _check_ticket(request: web.Request) -> None:
    config = request.app[keys.CONFIG]
    verify_ticket(request, token=config.token, node_id=NodeId(config.node_id))


def out_of_space(request: web.Request, exc: InsufficientStorage) -> InsufficientStorage:
    """The store's refusal, naming this node (its own client may know it; the primary does not
    pass this on to an upload's client)."""
    node_id = request.app[keys.CONFIG].node_id
    return InsufficientStorage(
        f"storage node {node_id} is out of space: {exc.detail}", node_id=node_id
    )


async def storing(request: web.Request, write: Awaitable[T]) -> T:
    """Await a write to the store; running out of space names this node."""
    try:
        return await write
    except InsufficientStorage as exc:
        raise out_of_space(request, exc) from exc


@api.put(
    "/v1/chunks/{hash}",
    errors=(422, 503, 507),
    summary="Store one chunk durably (verified against its hash)",
    path_params=ChunkPath,
    body=CHUNK,
    replies={200: ChunkStored, 201: ChunkStored},
    ticket=True,
)
async def put_chunk(request: web.Request) -> web.Response:
    chunk_hash = api_path(request, ChunkPath).hash
    _check_ticket(request)
    data = await read_body(request, limit=MAX_CHUNK_SIZE)
    created = await storing(request, request.app[keys.STORE].put(chunk_hash, data))
    return reply(ChunkStored(created=created), status=201 if created else 200)


@api.put(
    "/v1/chunks",
    errors=(422, 503, 507),
    summary="Store a framed batch of chunks durably before answering",
    body=FRAMED,
    replies={201: BatchStored},
    ticket=True,
)
async def put_chunks(request: web.Request) -> web.Response:
    _check_ticket(request)
    items = decode_frames(await read_body(request, limit=MAX_FRAMED_BYTES))
    created = await storing(request, request.app[keys.STORE].put_many(items))
    new = [h for (h, _), c in zip(items, created, strict=True) if c]
    return reply(BatchStored(stored=len(items), created=new), status=201)


@api.get(
    "/v1/chunks/{hash}",
    errors=(404, 422, 503),
    summary="A chunk's bytes, verified before they are sent",
    path_params=ChunkPath,
    replies={200: CHUNK},
    ticket_scope=Scope.READ,
)
async def get_chunk(request: web.Request) -> web.Response:
    chunk_hash = api_path(request, ChunkPath).hash
    data = await request.app[keys.STORE].get(chunk_hash)
    request.app[METRICS].served(len(data))
    return web.Response(body=data, content_type="application/octet-stream")


@api.post(
    "/v1/chunks/read",
    errors=(503,),
    summary="Several chunks in one framed answer (absent, corrupt or over-limit ones left out)",
    body=ReadRequest,
    replies={200: FRAMED},
    ticket_scope=Scope.READ,
)
async def read_chunks(request: web.Request) -> web.Response:
    """Each chunk is verified; those past the framed size limit are left out too (the client
    asks again for what it lacks)."""
    asked = await api_body(request, ReadRequest, limit=MAX_NODE_JSON_BYTES)
    found = await request.app[keys.STORE].get_many(asked.hashes, max_bytes=MAX_READ_BYTES)
    request.app[METRICS].served(*(len(data) for _, data in found))
    return web.Response(body=encode_frames(found), content_type=CONTENT_TYPE)


@api.post(
    "/v1/chunks/pull",
    errors=(503, 507),
    summary="Fetch a chunk from the first source with a good copy, and store it",
    body=PullRequest,
    replies={200: ChunkStored, 201: ChunkStored},
    ticket=True,
)
async def pull_chunk(request: web.Request) -> web.Response:
    _check_ticket(request)
    asked = await api_body(request, PullRequest, limit=MAX_NODE_JSON_BYTES)
    chunk_hash, sources = asked.hash, asked.sources
    store = request.app[keys.STORE]
    config = request.app[keys.CONFIG]
    if await store.has(chunk_hash):
        await store.touch(chunk_hash)
        return reply(ChunkStored(created=False))
    failures: list[str] = []
    for source in sources:
        client = NodeClient(request.app[keys.HTTP], source, config.token)
        try:
            data = await within(client.get_chunk(chunk_hash), config.replica_timeout_s)
        except TimeoutError:
            failures.append(f"{source}: timed out")
            continue
        except CofreError as exc:
            failures.append(f"{source}: {exc.detail}")
            continue
        try:
            created = await storing(request, store.put(chunk_hash, data))
        except IntegrityError as exc:
            # Corrupt at the source or in transit: another source may hold a good copy.
            failures.append(f"{source}: {exc.detail}")
            continue
        log.info("chunk pulled hash=%s source=%s length=%d", chunk_hash, source, len(data))
        return reply(ChunkStored(created=created), status=201 if created else 200)
    log.warning("chunk pull failed hash=%s tried=%s", chunk_hash, "; ".join(failures))
    raise Unavailable(f"no source could provide chunk {chunk_hash}: {'; '.join(failures)}")


@api.post(
    "/v1/chunks/check",
    errors=(503,),
    summary="Which chunks are present, missing or corrupt here",
    body=CheckRequest,
    replies={200: CheckResult},
)
async def check_chunks(request: web.Request) -> web.Response:
    asked = await api_body(request, CheckRequest, limit=MAX_NODE_JSON_BYTES)
    result = await request.app[keys.STORE].check(
        asked.hashes, lengths=asked.lengths, verify=asked.verify, touch=asked.touch
    )
    return reply(
        CheckResult(present=result.present, missing=result.missing, corrupt=result.corrupt)
    )


@api.get(
    "/v1/chunks",
    errors=(503,),
    summary="Every chunk held, with its length and last write or touch",
    query=InventoryQuery,
    replies={200: Inventory},
)
async def inventory(request: web.Request) -> web.Response:
    before = api_query(request, InventoryQuery).before
    entries = await request.app[keys.STORE].inventory(before=before)
    return reply(
        Inventory(
            chunks=[InventoryEntry(hash=e.hash, length=e.length, mtime=e.mtime) for e in entries]
        )
    )


@api.get(
    "/v1/manifests",
    errors=(503,),
    summary="The chunks that start like manifests or snapshot roots (a catalog rebuild reads "
    "and verifies them)",
    replies={200: ManifestCandidates},
)
async def manifests(request: web.Request) -> web.Response:
    entries = await request.app[keys.STORE].manifests()
    listed = [
        ManifestCandidate(hash=e.hash, length=e.length, kind="snapshot" if root else "manifest")
        for e, root in entries
    ]
    return reply(ManifestCandidates(manifests=listed))


@api.post(
    "/v1/chunks/delete",
    errors=(503,),
    summary="Delete chunks (GC decides which)",
    body=HashList,
    replies={200: ChunksDeleted},
)
async def delete_chunks(request: web.Request) -> web.Response:
    hashes = (await api_body(request, HashList, limit=MAX_NODE_JSON_BYTES)).hashes
    deleted, freed = await request.app[keys.STORE].delete_many(hashes)
    request.app[METRICS].deleted(deleted, freed)
    log.info("chunks deleted asked=%d deleted=%d freed_bytes=%d", len(hashes), deleted, freed)
    return reply(ChunksDeleted(deleted=deleted, freed_bytes=freed))


@api.get(
    "/v1/stats",
    errors=(503,),
    summary="What this node stores and has free (503 while its chunk store is unavailable)",
    replies={200: NodeStats},
)
async def stats(request: web.Request) -> web.Response:
    try:
        s = await request.app[keys.STORE].stats()
    except StoreUnavailable as exc:
        # Answered to every probe while the volume is gone: the store logged it once already.
        return problem_response(exc)
    return reply(
        NodeStats(
            node_id=NodeId(request.app[keys.CONFIG].node_id),
            stored_bytes=s.stored_bytes,
            free_bytes=s.free_bytes,
            chunk_count=s.chunk_count,
            scrub=request.app[keys.SCRUBBER].progress(),
        )
    )


@api.get("/healthz", summary="Liveness", replies={200: Health}, public=True)
async def healthz(_: web.Request) -> web.Response:
    return health_reply(True)


@api.get(
    "/readyz",
    summary="Readiness: the chunk store is there and writable",
    replies={200: Health, 503: Health},
    public=True,
)
async def readyz(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    try:
        fault = await store.health()
        ready = fault is None and await store.writable()
    except (OSError, CofreError) as exc:
        fault, ready = str(exc), False
    if not ready:
        return health_reply(False, fault or "chunk store not writable")
    return health_reply(True)
