"""Reading and validating what a request carries: bounded bodies, hash lists, tickets.

Nothing a request carries becomes a path except through ``parse_chunk_hash``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from cofre.chunks import MAX_CHUNK_SIZE
from cofre.errors import BadRequest, Forbidden, PayloadTooLarge
from cofre.models import ChunkHash, NodeId, UploadId, parse_chunk_hash
from cofre.protocol.server import TICKET_HEADER, require_json_object
from cofre.tickets import Ticket, ticket_key

# A JSON request holds at most this many hashes (a 400 GiB file at 4 MiB chunks).
MAX_HASHES = 100_000
# Bytes of a JSON body: MAX_HASHES quoted hex hashes with separators, and some slack.
MAX_JSON_BYTES = 8 * 1024 * 1024
# A chunk body; the app's client_max_size sits just above it.
MAX_BODY_BYTES = MAX_CHUNK_SIZE
MAX_SOURCES = 32
MAX_REPLICAS = 64
_UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,200}$")
_READ_STEP = 1024 * 1024


async def read_body(request: web.Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes before buffering it.

    With a declared length the bytes land in one buffer of that size as they arrive: one copy
    from the socket's pieces, none to join them (this is most of a node's CPU on big files).
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    if declared is not None:
        buf = bytearray(declared)
        view = memoryview(buf)
        filled = 0
        while piece := await request.content.readany():
            end = filled + len(piece)
            if end > declared:
                raise BadRequest("body is longer than its Content-Length")
            view[filled:end] = piece
            filled = end
        if filled != declared:
            raise BadRequest("body is shorter than its Content-Length")
        # A bytearray is used as bytes everywhere downstream (hashing, writing, sending).
        return buf  # type: ignore[return-value]
    grown = bytearray()
    async for piece in request.content.iter_chunked(_READ_STEP):
        grown += piece
        if len(grown) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(grown)


async def read_json_body(request: web.Request, *, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = await read_body(request, limit=MAX_JSON_BYTES)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("request body is not JSON") from exc
    return require_json_object(data, keys=keys)


def path_hash(request: web.Request) -> ChunkHash:
    return parse_chunk_hash(request.match_info["hash"])


def parse_upload_id(value: object) -> UploadId:
    if not isinstance(value, str) or not _UPLOAD_ID_RE.match(value):
        raise BadRequest(f"not an upload id: {str(value)[:80]!r}")
    return UploadId(value)


def parse_hash_list(value: object, *, what: str = "hashes") -> list[ChunkHash]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of chunk hashes")
    if len(value) > MAX_HASHES:
        raise BadRequest(f"{what} holds {len(value)} entries; at most {MAX_HASHES} per request")
    return [parse_chunk_hash(v) for v in value]


def parse_bool(value: object, *, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{what} must be true or false")
    return value


def parse_url(value: object, *, what: str) -> str:
    if (
        not isinstance(value, str)
        or not value.startswith(("http://", "https://"))
        or len(value) > 2048
        or any(c.isspace() for c in value)
    ):
        raise BadRequest(f"{what} must be an http(s) URL")
    return value.rstrip("/")


def parse_sources(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequest("sources must be a non-empty list of node URLs")
    if len(value) > MAX_SOURCES:
        raise BadRequest(f"at most {MAX_SOURCES} sources per pull")
    return [parse_url(v, what="each source") for v in value]


def parse_before(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        before = float(value)
    except ValueError:
        raise BadRequest("before must be a unix time in seconds") from None
    if before != before or before in (float("inf"), float("-inf")):
        raise BadRequest("before must be a finite unix time")
    return before


def verify_ticket(
    request: web.Request,
    *,
    token: str,
    node_id: NodeId,
    upload_id: UploadId | None = None,
) -> Ticket:
    """The request's ticket, checked for this node (and the upload, when given); 403 otherwise."""
    text = request.headers.get(TICKET_HEADER)
    if not text:
        raise Forbidden(f"chunk writes need an {TICKET_HEADER} header")
    ticket = Ticket.verify(text, ticket_key(token), node_id=node_id)
    if upload_id is not None and ticket.upload_id != upload_id:
        raise Forbidden(f"ticket is for another upload than {upload_id}")
    return ticket
