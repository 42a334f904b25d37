"""Upload sessions: placement and tickets on create, verification and cataloguing on commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from cofre.errors import BadRequest, CofreError, Conflict, IncompleteUpload, NotFound
from cofre.manager.catalog import SessionRow
from cofre.manager.context import Manager
from cofre.manager.placement import choose
from cofre.models import ChunkHash, Manifest, NodeId, UploadId, validate_name
from cofre.tickets import Ticket

log = logging.getLogger(__name__)

# 1 PiB: far above any real file, low enough that arithmetic on reservations stays sane.
MAX_UPLOAD_BYTES = 1 << 50
# Hashes per check request: keeps request bodies around 70 KB.
CHECK_BATCH = 1000
# Seconds to wait for the primary to forget a finished session (best effort).
CLOSE_RELAY_TIMEOUT_S = 5.0
# Closed sessions are kept this long past their expiry (for idempotent commit retries).
KEEP_CLOSED_S = 86400.0


def _int_field(body: dict[str, Any], key: str, *, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{key} must be a non-negative integer")
    return value


async def create_upload(m: Manager, body: dict[str, Any]) -> dict[str, Any]:
    name = validate_name(body.get("name"))
    size = _int_field(body, "size")
    if size > MAX_UPLOAD_BYTES:
        raise BadRequest(f"size {size} exceeds the limit of {MAX_UPLOAD_BYTES} bytes")
    mode = _int_field(body, "mode", default=0o644)
    try:
        mtime = float(body.get("mtime", 0.0))
    except (TypeError, ValueError):
        raise BadRequest("mtime must be a number") from None

    p = m.config.placement
    placement = choose(
        m.registry.views(),
        size=size,
        weights=m.weights,
        factor=p.replication_factor,
        primary_keeps_copy=p.primary_keeps_copy,
        min_free_bytes=p.min_free_bytes,
    )
    upload_id = UploadId(secrets.token_urlsafe(18))
    now = time.time()
    expires = now + m.config.upload.session_ttl_s
    node_ids = tuple(n.node_id for n in placement.nodes)
    # Reserve before the first await so concurrent creates already see this upload's bytes.
    m.registry.reserve(upload_id, size, node_ids)
    session = SessionRow(
        upload_id=upload_id,
        name=name,
        size=size,
        mode=mode,
        mtime=mtime,
        created=now,
        expires=expires,
        primary=placement.primary.node_id,
        nodes=node_ids,
        keep_copy=placement.keep_copy,
    )
    key = m.ticket_key
    client_ticket = Ticket(upload_id, (placement.primary.node_id,), expires).sign(key)
    replica_ticket = Ticket(upload_id, tuple(r.node_id for r in placement.replicas), expires)
    try:
        await m.catalog.add_session(session)
        await m.client(placement.primary.url).open_relay(
            upload_id=upload_id,
            replicas=[{"node_id": r.node_id, "url": r.url} for r in placement.replicas],
            replica_ticket=replica_ticket.sign(key),
            keep_copy=placement.keep_copy,
            expires=expires,
        )
    except BaseException:
        m.registry.release(upload_id)
        with contextlib.suppress(Exception):
            await m.catalog.close_session(upload_id, state="aborted")
        raise
    log.info(
        "upload opened upload=%s name=%r size=%d primary=%s replicas=%s",
        upload_id,
        name,
        size,
        placement.primary.node_id,
        ",".join(r.node_id for r in placement.replicas),
    )
    return {
        "upload_id": upload_id,
        "primary_url": placement.primary.url,
        "ticket": client_ticket,
        "chunk_size": m.config.upload.chunk_size,
        "expires": expires,
    }


async def _missing_on(m: Manager, node_id: NodeId, hashes: Sequence[ChunkHash]) -> set[ChunkHash]:
    client = m.node_client(node_id)
    missing: set[ChunkHash] = set()
    for start in range(0, len(hashes), CHECK_BATCH):
        result = await client.check(list(hashes[start : start + CHECK_BATCH]), touch=True)
        missing.update(result["missing"])
        missing.update(result.get("corrupt", []))
    return missing


async def commit_upload(m: Manager, upload_id: UploadId, body: dict[str, Any]) -> dict[str, Any]:
    session = await m.catalog.session(upload_id)
    if session is None:
        raise NotFound(f"no upload {upload_id}")
    if session.state == "committed" and session.version is not None:
        # A retried commit (the answer was lost): same answer again.
        found = await m.catalog.version(session.name, session.version)
        if found is not None:
            row, _ = found
            return {
                "name": row.name,
                "version": row.version,
                "size": row.size,
                "chunks": row.chunk_count,
            }
    if session.state != "open":
        raise Conflict(f"upload {upload_id} is {session.state}")
    if time.time() > session.expires:
        raise Conflict(f"upload {upload_id} expired")
    manifest = Manifest.from_json(body.get("manifest"))
    if manifest.name != session.name:
        raise BadRequest(f"manifest names {manifest.name!r}, the upload {session.name!r}")
    if manifest.size != session.size:
        raise BadRequest(f"manifest size {manifest.size} differs from the upload's {session.size}")
    manifest_hash = manifest.hash
    hashes = list(dict.fromkeys([*(c.hash for c in manifest.chunks), manifest_hash]))
    holders = session.copy_holders

    async with m.catalog_lock:
        results = await asyncio.gather(*(_missing_on(m, n, hashes) for n in holders))
        missing = set().union(*results) if results else set()
        if missing:
            lacking = [n for n, r in zip(holders, results, strict=True) if r]
            raise IncompleteUpload(
                f"{len(missing)} of {len(hashes)} chunks (manifest included) are not on every "
                f"copy node yet; send them and commit again",
                missing=len(missing),
                nodes=len(lacking),
            )
        version = await m.catalog.commit(
            session,
            manifest,
            manifest_hash=manifest_hash,
            manifest_length=len(manifest.encode()),
            holders=holders,
        )
    m.registry.release(upload_id)
    log.info(
        "upload committed upload=%s name=%r version=%d chunks=%d",
        upload_id,
        manifest.name,
        version,
        len(manifest.chunks),
    )
    await _close_relay(m, session)
    return {
        "name": manifest.name,
        "version": version,
        "size": manifest.size,
        "chunks": len(manifest.chunks),
    }


async def _close_relay(m: Manager, session: SessionRow) -> None:
    """Tell the primary the session is over; it expires there on its own if this fails."""
    try:
        client = m.node_client(session.primary)
        await asyncio.wait_for(client.close_relay(session.upload_id), CLOSE_RELAY_TIMEOUT_S)
    except (CofreError, TimeoutError) as exc:
        log.debug(
            "close relay failed upload=%s node=%s error=%s", session.upload_id, session.primary, exc
        )


async def abort_upload(m: Manager, upload_id: UploadId) -> None:
    session = await m.catalog.session(upload_id)
    if session is None:
        raise NotFound(f"no upload {upload_id}")
    if await m.catalog.close_session(upload_id, state="aborted"):
        m.registry.release(upload_id)
        log.info("upload aborted upload=%s name=%r", upload_id, session.name)
        await _close_relay(m, session)


async def restore_reservations(m: Manager) -> int:
    """After a restart: open uploads keep their reservations."""
    sessions = await m.catalog.open_sessions()
    for s in sessions:
        m.registry.reserve(s.upload_id, s.size, s.nodes)
    return len(sessions)


async def sweep_expired(m: Manager, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    expired = [s for s in await m.catalog.open_sessions() if s.expires < now]
    for s in expired:
        if await m.catalog.close_session(s.upload_id, state="expired"):
            m.registry.release(s.upload_id)
            log.info("upload expired upload=%s name=%r", s.upload_id, s.name)
            await _close_relay(m, s)
    await m.catalog.purge_sessions(closed_before=now - KEEP_CLOSED_S)
    return len(expired)


async def sweeper_loop(m: Manager) -> None:
    interval = max(1.0, min(60.0, m.config.upload.session_ttl_s / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            count = await sweep_expired(m)
            log.debug("session sweep expired=%d", count)
        except Exception:
            log.exception("session sweep failed")
