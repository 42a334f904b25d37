"""Upload sessions: placement and tickets on create, verification and cataloguing on commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence

from cofre.aio import Periodic, within
from cofre.errors import BadRequest, CofreError, Conflict, IncompleteUpload, NotFound
from cofre.manager import dedup, snapshot_store, uncommitted
from cofre.manager.catalog import CommitEntry, SessionRow
from cofre.manager.context import Manager
from cofre.manager.health import check_batches
from cofre.manager.placement import choose
from cofre.models import ChunkHash, Manifest, NodeId, UploadId
from cofre.protocol.manager_api import (
    CommitAnswer,
    Committed,
    CommittedBatch,
    FileDecl,
    UploadCreated,
)
from cofre.protocol.node_api import OpenSession, Replica
from cofre.tickets import Ticket

log = logging.getLogger(__name__)

# Seconds to wait for the primary to forget a finished session (best effort).
CLOSE_RELAY_TIMEOUT_S = 5.0
# Closed sessions are kept this long past their expiry (for idempotent commit retries).
KEEP_CLOSED_S = 86400.0


def _upload_label(files: Sequence[FileDecl], now: float) -> str:
    """How copies name the upload that placed them."""
    first = repr(files[0].name)
    others = f" and {len(files) - 1} other files" if len(files) > 1 else ""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return f"the upload of {first}{others} at {when}"


async def refuse_over_a_lost_catalog(m: Manager) -> None:
    """An empty catalog over nodes that hold manifests it cannot explain is a lost catalog,
    not a new cluster: the first commit would make every earlier backup garbage to GC, so new
    uploads wait for ``cofre catalog rebuild``. Manifests of uploads this catalog recorded and
    that never committed do not count (uncommitted.py). Nodes that cannot be asked are left
    out of the count."""
    if m.catalog_seen_versions:
        return
    if await m.catalog.version_rows():
        m.catalog_seen_versions = True
        return
    found = await uncommitted.survey(m, (s for s in m.registry.nodes.values() if s.ready))
    # An upload that committed while the nodes were asked leaves a manifest whose session is
    # no longer uncommitted: it is a version now, not a sign of a lost catalog.
    if found.unexplained and await m.catalog.version_rows():
        m.catalog_seen_versions = True
        return
    if found.unexplained:
        raise Conflict(
            f"the catalog is empty but the storage nodes hold {len(found.unexplained)} backup "
            "manifests or snapshot roots: run `cofre catalog rebuild` before new backups"
        )


async def create_upload(m: Manager, files: Sequence[FileDecl], *, batch: bool) -> UploadCreated:
    """Place an upload of ``files`` (a batch: several files sharing one session) and open its
    relay on the primary; -> what the client needs, and no node but the primary."""
    await refuse_over_a_lost_catalog(m)
    first = files[0]
    name, mode, mtime = first.name, first.mode, first.mtime
    size = sum(f.size for f in files)

    p = m.config.placement
    placement = choose(
        m.registry.views(),
        size=size,
        weights=m.weights,
        factor=p.replication_factor,
        primary_keeps_copy=p.primary_keeps_copy,
        min_free_bytes=p.min_free_bytes,
    )
    m.metrics.placed(placement, size)
    upload_id = UploadId(secrets.token_urlsafe(18))
    now = time.time()
    expires = now + m.config.upload.session_ttl_s
    node_ids = tuple(n.node_id for n in placement.nodes)
    # Reserve before the first await so concurrent creates already see this upload's bytes.
    m.registry.reserve(
        upload_id,
        size,
        (n.node_id for n in placement.copy_holders),
        relay=placement.primary.node_id,
    )
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
        why=placement.explain(_upload_label(files, now)),
    )
    key = m.ticket_key
    client_ticket = Ticket(upload_id, (placement.primary.node_id,), expires).sign(key)
    replica_ticket = Ticket(upload_id, tuple(r.node_id for r in placement.replicas), expires)
    try:
        await m.catalog.add_session(
            session, files=[(f.name, f.size) for f in files] if batch else ()
        )
        await m.client(placement.primary.url).open_relay(
            OpenSession(
                upload_id=upload_id,
                replicas=[Replica(node_id=r.node_id, url=r.url) for r in placement.replicas],
                replica_ticket=replica_ticket.sign(key),
                keep_copy=placement.keep_copy,
                expires=expires,
            )
        )
    except BaseException:
        m.registry.release(upload_id)
        with contextlib.suppress(Exception):
            await m.catalog.close_session(upload_id, state="aborted")
        raise
    log.info(
        "upload opened upload=%s name=%r files=%d size=%d primary=%s replicas=%s",
        upload_id,
        name,
        len(files),
        size,
        placement.primary.node_id,
        ",".join(r.node_id for r in placement.replicas),
    )
    return UploadCreated(
        upload_id=upload_id,
        primary_url=placement.primary.url,
        ticket=client_ticket,
        chunk_size=m.config.upload.chunk_size,
        expires=expires,
    )


async def _missing_on(
    m: Manager, node_id: NodeId, hashes: Sequence[ChunkHash], lengths: Mapping[ChunkHash, int]
) -> set[ChunkHash]:
    """Those of ``hashes`` the node lacks, or holds at another size than the manifests say."""
    missing: set[ChunkHash] = set()
    async for result in check_batches(
        m.node_client(node_id), list(hashes), lengths=lengths, touch=True
    ):
        missing.update(result.missing)
        missing.update(result.corrupt)
    return missing


async def confirm_copies(
    m: Manager, session: SessionRow, hashes: Sequence[ChunkHash], lengths: Mapping[ChunkHash, int]
) -> Callable[[ChunkHash], set[NodeId]]:
    """Check that every chunk of ``hashes`` is on every copy node of the upload, or stored with
    F copies elsewhere (dedup.py); -> each chunk's holders. IncompleteUpload otherwise. Call
    through ``m.checked_under_lock`` and record under it: GC then either deleted before (and
    what it deleted is missing here, or the check runs again) or runs after and sees the
    chunks referenced."""
    holders = session.copy_holders
    results = await asyncio.gather(*(_missing_on(m, n, hashes, lengths) for n in holders))
    missing_on = dict(zip(holders, results, strict=True))
    missing = set().union(*results) if results else set()
    # What the upload's nodes lack may be stored with F copies elsewhere (dedup.py).
    elsewhere = await dedup.held_elsewhere(m, missing)
    missing.difference_update(elsewhere)
    if missing:
        lacking = [n for n, r in missing_on.items() if r - elsewhere.keys()]
        raise IncompleteUpload(
            f"{len(missing)} of {len(hashes)} chunks (manifests included) are not on every "
            f"copy node yet; send them and commit again",
            missing=len(missing),
            nodes=len(lacking),
        )

    def located(chunk_hash: ChunkHash) -> set[NodeId]:
        have = {n for n, lacks in missing_on.items() if chunk_hash not in lacks}
        return have | elsewhere.get(chunk_hash, frozenset())

    return located


def open_session_or_raise(session: SessionRow | None, upload_id: UploadId) -> SessionRow:
    """The upload's session, which must be open and not expired."""
    if session is None:
        raise NotFound(f"no upload {upload_id}")
    if session.state != "open":
        raise Conflict(f"upload {upload_id} is {session.state}")
    if time.time() > session.expires:
        raise Conflict(f"upload {upload_id} expired")
    return session


async def commit_upload(
    m: Manager, upload_id: UploadId, manifests: Sequence[Manifest], *, batch: bool
) -> CommitAnswer:
    """Commit one manifest (answer: that version) or a batch (answer: ``{versions}``, in the
    order given). A batch may commit a subset of the files it declared (a file that changed
    while read is left out); every manifest names a declared file of the declared size, each
    at most once."""
    single = not batch
    session = await m.catalog.session(upload_id)
    if session is None:
        raise NotFound(f"no upload {upload_id}")
    declared = await m.catalog.session_files(upload_id)
    if session.state == "committed":
        # A retried commit (the answer was lost): same answer again, for the same files only.
        names = [mf.name for mf in manifests]
        again = await _committed_answer(m, session, declared)
        if again is not None and names == [a.name for a in again]:
            return _answer(again, single=single)
    session = open_session_or_raise(session, upload_id)
    sizes = {n: z for n, z, _ in declared} if declared else {session.name: session.size}
    seen: set[str] = set()
    for manifest in manifests:
        if manifest.name not in sizes:
            raise BadRequest(f"manifest names {manifest.name!r}, which the upload did not declare")
        if manifest.name in seen:
            raise BadRequest(f"manifest for {manifest.name!r} given twice")
        seen.add(manifest.name)
        if manifest.size != sizes[manifest.name]:
            raise BadRequest(
                f"manifest size {manifest.size} of {manifest.name!r} differs from the "
                f"upload's {sizes[manifest.name]}"
            )
    entries = [CommitEntry(mf, mf.hash, len(mf.encode())) for mf in manifests]
    hashes = list(
        dict.fromkeys(
            h for e in entries for h in (*(c.hash for c in e.manifest.chunks), e.manifest_hash)
        )
    )
    lengths = {c.hash: c.length for e in entries for c in e.manifest.chunks}
    lengths.update((e.manifest_hash, e.manifest_length) for e in entries)

    async with m.checked_under_lock(lambda: confirm_copies(m, session, hashes, lengths)) as located:
        numbers = await m.catalog.commit_many(session, entries, holders=located)
    m.registry.release(upload_id, landed=True)
    log.info(
        "upload committed upload=%s name=%r files=%d chunks=%d",
        upload_id,
        manifests[0].name,
        len(manifests),
        sum(len(mf.chunks) for mf in manifests),
    )
    await close_relay(m, session)
    answers = [
        Committed(name=mf.name, version=n, size=mf.size, chunks=len(mf.chunks))
        for mf, n in zip(manifests, numbers, strict=True)
    ]
    return _answer(answers, single=single)


def _answer(versions: list[Committed], *, single: bool) -> CommitAnswer:
    return CommitAnswer(versions[0] if single else CommittedBatch(versions=versions))


async def _committed_answer(
    m: Manager, session: SessionRow, declared: list[tuple[str, int, int | None]]
) -> list[Committed] | None:
    wanted = (
        [(n, v) for n, _, v in declared if v is not None]
        if declared
        else [(session.name, session.version)]
    )
    answers = []
    for name, number in wanted:
        found = await m.catalog.version(name, number) if number is not None else None
        if found is None:
            return None
        row, _ = found
        answers.append(
            Committed(name=row.name, version=row.version, size=row.size, chunks=row.chunk_count)
        )
    return answers or None


async def close_relay(m: Manager, session: SessionRow) -> None:
    """Tell the primary the session is over; it expires there on its own if this fails."""
    try:
        client = m.node_client(session.primary)
        await within(client.close_relay(session.upload_id), CLOSE_RELAY_TIMEOUT_S)
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
        await close_relay(m, session)


async def restore_reservations(m: Manager) -> int:
    """After a restart: open uploads keep their reservations."""
    sessions = await m.catalog.open_sessions()
    for s in sessions:
        m.registry.reserve(s.upload_id, s.size, s.copy_holders)
    return len(sessions)


async def sweep_expired(m: Manager, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    expired = [s for s in await m.catalog.open_sessions() if s.expires < now]
    for s in expired:
        if await m.catalog.close_session(s.upload_id, state="expired"):
            m.registry.release(s.upload_id)
            log.info("upload expired upload=%s name=%r", s.upload_id, s.name)
            await close_relay(m, s)
    # Open snapshots left past their expiry (a backup that died): their chunks become garbage.
    gone = 0
    for sid in await m.catalog.expired_snapshots(now=now):
        if await m.catalog.remove_snapshots([sid]):
            log.info("snapshot expired snapshot=%s", sid)
            gone += 1
    if gone:  # a root written by a commit that never landed
        await snapshot_store.forget_roots_soon(m)
    if await m.catalog.version_rows():
        # With no version yet, uncommitted uploads' sessions are what tells their manifests
        # from a lost catalog's (uncommitted.py): kept until GC deleted those manifests.
        await m.catalog.purge_sessions(closed_before=now - KEEP_CLOSED_S)
    return len(expired)


def sweeper_loop(m: Manager) -> Periodic:
    """Expired upload sessions closed a few times per session lifetime (1 s to 60 s apart)."""

    async def sweep() -> None:
        count = await sweep_expired(m)
        log.debug("session sweep expired=%d", count)

    interval = max(1.0, min(60.0, m.config.upload.session_ttl_s / 4))
    return Periodic("sessions", sweep, interval_s=interval)
