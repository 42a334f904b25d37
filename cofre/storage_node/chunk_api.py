"""Chunk endpoints of a storage node, its stats and its health probes."""

from __future__ import annotations

import logging

from aiohttp import web

from cofre.aio import within
from cofre.errors import BadRequest, CofreError, IntegrityError, Unavailable
from cofre.models import NodeId, NodeStats, parse_chunk_hash
from cofre.protocol.client import NodeClient
from cofre.protocol.framing import (
    CONTENT_TYPE,
    MAX_FRAMED_BYTES,
    MAX_FRAMED_CHUNKS,
    decode_frames,
    encode_frames,
)
from cofre.storage_node import keys
from cofre.storage_node.inputs import (
    parse_before,
    parse_bool,
    parse_hash_list,
    parse_sources,
    path_hash,
    read_body,
    read_json_body,
    verify_ticket,
)

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _check_ticket(request: web.Request) -> None:
    config = request.app[keys.CONFIG]
    verify_ticket(request, token=config.token, node_id=NodeId(config.node_id))


@routes.put("/v1/chunks/{hash}")
async def put_chunk(request: web.Request) -> web.Response:
    chunk_hash = path_hash(request)
    _check_ticket(request)
    data = await read_body(request)
    created = await request.app[keys.STORE].put(chunk_hash, data)
    return web.json_response({"created": created}, status=201 if created else 200)


@routes.put("/v1/chunks")
async def put_chunks(request: web.Request) -> web.Response:
    """A framed batch of chunks (cofre.protocol.framing), stored durably before the answer."""
    _check_ticket(request)
    items = decode_frames(await read_body(request, limit=MAX_FRAMED_BYTES))
    created = await request.app[keys.STORE].put_many(items)
    new = [h for (h, _), c in zip(items, created, strict=True) if c]
    return web.json_response({"stored": len(items), "created": new}, status=201)


@routes.get("/v1/chunks/{hash}")
async def get_chunk(request: web.Request) -> web.Response:
    chunk_hash = path_hash(request)
    data = await request.app[keys.STORE].get(chunk_hash)
    return web.Response(body=data, content_type="application/octet-stream")


@routes.post("/v1/chunks/read")
async def read_chunks(request: web.Request) -> web.Response:
    """Several chunks in one framed answer, each verified; absent or corrupt ones are left out,
    and so are those past the framed size limit (the client asks again for what it lacks)."""
    body = await read_json_body(request, keys=("hashes",))
    hashes = parse_hash_list(body["hashes"])
    if len(hashes) > MAX_FRAMED_CHUNKS:
        raise BadRequest(f"at most {MAX_FRAMED_CHUNKS} hashes per read")
    # Leave room for the header line within the framed limit.
    found = await request.app[keys.STORE].get_many(hashes, max_bytes=MAX_FRAMED_BYTES // 2)
    return web.Response(body=encode_frames(found), content_type=CONTENT_TYPE)


@routes.post("/v1/chunks/pull")
async def pull_chunk(request: web.Request) -> web.Response:
    """Fetch a chunk from the first source that has a good copy, and store it."""
    _check_ticket(request)
    body = await read_json_body(request, keys=("hash", "sources"))
    chunk_hash = parse_chunk_hash(body["hash"])
    sources = parse_sources(body["sources"])
    store = request.app[keys.STORE]
    config = request.app[keys.CONFIG]
    if await store.has(chunk_hash):
        await store.touch(chunk_hash)
        return web.json_response({"created": False})
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
            created = await store.put(chunk_hash, data)
        except IntegrityError as exc:
            # Corrupt at the source or in transit: another source may hold a good copy.
            failures.append(f"{source}: {exc.detail}")
            continue
        log.info("chunk pulled hash=%s source=%s length=%d", chunk_hash, source, len(data))
        return web.json_response({"created": created}, status=201 if created else 200)
    log.warning("chunk pull failed hash=%s tried=%s", chunk_hash, "; ".join(failures))
    raise Unavailable(f"no source could provide chunk {chunk_hash}: {'; '.join(failures)}")


@routes.post("/v1/chunks/check")
async def check_chunks(request: web.Request) -> web.Response:
    body = await read_json_body(request, keys=("hashes",))
    hashes = parse_hash_list(body["hashes"])
    verify = parse_bool(body.get("verify", False), what="verify")
    touch = parse_bool(body.get("touch", False), what="touch")
    result = await request.app[keys.STORE].check(hashes, verify=verify, touch=touch)
    return web.json_response(
        {"present": result.present, "missing": result.missing, "corrupt": result.corrupt}
    )


@routes.get("/v1/chunks")
async def inventory(request: web.Request) -> web.Response:
    before = parse_before(request.query.get("before"))
    entries = await request.app[keys.STORE].inventory(before=before)
    return web.json_response(
        {"chunks": [{"hash": e.hash, "length": e.length, "mtime": e.mtime} for e in entries]}
    )


@routes.get("/v1/manifests")
async def manifests(request: web.Request) -> web.Response:
    """The chunks that look like manifests (by their first bytes; a catalog rebuild reads and
    verifies them)."""
    entries = await request.app[keys.STORE].manifests()
    return web.json_response({"manifests": [{"hash": e.hash, "length": e.length} for e in entries]})


@routes.post("/v1/chunks/delete")
async def delete_chunks(request: web.Request) -> web.Response:
    body = await read_json_body(request, keys=("hashes",))
    hashes = parse_hash_list(body["hashes"])
    deleted, freed = await request.app[keys.STORE].delete_many(hashes)
    log.info("chunks deleted asked=%d deleted=%d freed_bytes=%d", len(hashes), deleted, freed)
    return web.json_response({"deleted": deleted, "freed_bytes": freed})


@routes.get("/v1/stats")
async def stats(request: web.Request) -> web.Response:
    s = await request.app[keys.STORE].stats()
    node = NodeStats(
        node_id=NodeId(request.app[keys.CONFIG].node_id),
        stored_bytes=s.stored_bytes,
        free_bytes=s.free_bytes,
        chunk_count=s.chunk_count,
    )
    return web.json_response(node.to_json())


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        ready = await request.app[keys.STORE].writable()
    except (OSError, CofreError):
        ready = False
    if not ready:
        return web.json_response({"ok": False, "detail": "chunk store not writable"}, status=503)
    return web.json_response({"ok": True})
