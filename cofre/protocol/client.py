"""Typed async clients for the manager's and the nodes' /v1 APIs.

Errors come back as the same ``cofre.errors`` classes the peer raised; a peer that cannot be
reached raises ``Unavailable`` naming it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from cofre.errors import BadRequest, CofreError, Unavailable, error_from_problem
from cofre.models import ChunkHash, ChunkRef, Manifest, NodeId, SnapshotId, UploadId
from cofre.protocol.access import Role
from cofre.protocol.base import AUTH_HEADER, TICKET_HEADER, first_error
from cofre.protocol.framing import CONTENT_TYPE, decode_frames
from cofre.protocol.manager_api import (
    BatchDecl,
    ChunkLocations,
    ChunksCommitted,
    ClusterOverview,
    ClusterStats,
    CommitAnswer,
    CommitBatch,
    CommitOne,
    Committed,
    CommittedBatch,
    CreateKey,
    Deleted,
    DrainRequest,
    DrainStatus,
    EntriesAdded,
    EntryPage,
    EntryView,
    EntryWhere,
    FileDecl,
    FileList,
    ForgetReport,
    ForgetRequest,
    FsckReport,
    GcRequest,
    GcResult,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyPath,
    KnownAnswer,
    KnownQuery,
    LocateQuery,
    ManifestDoc,
    ManifestList,
    ManifestsQuery,
    ManifestView,
    NodeList,
    RebuildReport,
    RebuildRequest,
    RepairReport,
    RepairRequest,
    SnapshotChunks,
    SnapshotCommit,
    SnapshotCreate,
    SnapshotEntries,
    SnapshotInfo,
    SnapshotList,
    SnapshotOpened,
    SnapshotsRemoved,
    TreeEntry,
    UploadCreated,
    VersionInfo,
    WhereReport,
)
from cofre.protocol.node_api import (
    BatchStored,
    CheckRequest,
    CheckResult,
    ChunksDeleted,
    ChunkStored,
    HashList,
    Inventory,
    InventoryEntry,
    ManifestCandidate,
    ManifestCandidates,
    Missing,
    MissingRequest,
    NodeStats,
    OpenSession,
    PullRequest,
    ReadRequest,
)
from cofre.tls import client_context

R = TypeVar("R", bound=BaseModel)

# OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED.
_X509_EXPIRED = 10
# A larger body is handed to the connection in slices of this size, each written once the
# connection drained the one before. Over TLS every write is encrypted whole into a buffer
# of its own: a 4 MiB chunk written at once would hold 4 MiB more per request in flight.
BODY_SLICE_BYTES = 256 * 1024


async def _slices(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), BODY_SLICE_BYTES):
        yield view[start : start + BODY_SLICE_BYTES]


@asynccontextmanager
async def open_session(
    *,
    timeout_s: float = 300.0,
    connect_timeout_s: float | None = None,
    limit: int = 64,
    ca_file: Path | None = None,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled HTTP session per process (or per component), closed on exit.

    Every HTTP client of cofre is made here, so every https:// peer is verified the same
    way: its certificate must chain to ``ca_file`` (None: the system's CAs) and name the host.
    """
    connect = connect_timeout_s if connect_timeout_s is not None else min(10.0, timeout_s)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=timeout_s)
    connector = aiohttp.TCPConnector(limit=limit, ssl=client_context(ca_file=ca_file))
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, trace_configs=list(trace_configs) or None
    ) as session:
        yield session


class _ApiClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str | None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``token``: the cluster token or a key; None sends neither (a client to a node,
        which shows its tickets instead). ``tls`` verifies this peer instead of the session's
        own context: the operator talks to many clusters, each with its own CA, through one
        session."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {} if token is None else {AUTH_HEADER: f"Bearer {token}"}
        self._ssl: ssl.SSLContext | bool = tls if tls is not None else True

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        ticket: str | None = None,
        timeout_s: float | None = None,
    ) -> bytes | None:
        """Send a request; -> the answer's bytes (None for an empty answer)."""
        headers = dict(self._headers)
        if body is not None:
            data = body.model_dump_json().encode()
            content_type = "application/json"
        if ticket is not None:
            headers[TICKET_HEADER] = ticket
        if content_type is not None:
            headers["Content-Type"] = content_type
        # None keeps the session's own timeouts.
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        url = self.base_url + path
        sent: bytes | AsyncIterator[memoryview] | None = data
        if data is not None and len(data) > BODY_SLICE_BYTES:
            headers["Content-Length"] = str(len(data))
            sent = _slices(data)
        try:
            async with self.session.request(
                method,
                url,
                data=sent,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else aiohttp.helpers.sentinel,
                ssl=self._ssl,
            ) as resp:
                if resp.status >= 400:
                    raise await _error_of(resp)
                if resp.status == 204 or resp.content_length == 0:
                    return None
                return await resp.read()
        except CofreError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise Unavailable(_untrusted(self.base_url, exc), url=self.base_url) from exc
        except aiohttp.ClientSSLError as exc:
            raise Unavailable(
                f"cannot reach {self.base_url}: no TLS handshake ({_describe(exc)}); "
                "is it a plain http:// service?",
                url=self.base_url,
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            hint = ""
            if self.base_url.startswith("http://") and isinstance(
                exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
            ):
                # A TLS service drops a plain HTTP request unanswered.
                hint = f"; if it serves HTTPS, use {'https' + self.base_url[4:]}"
            raise Unavailable(
                f"cannot reach {self.base_url}: {_describe(exc)}{hint}", url=self.base_url
            ) from exc

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[R],
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str] | None = None,
        ticket: str | None = None,
    ) -> R:
        """Send a request; -> its answer as ``answer``."""
        raw = await self._request(method, path, body=body, params=params, ticket=ticket)
        return self._parse(answer, raw, f"{method} {path}")

    def _parse(self, answer: type[R], raw: bytes | None, what: str) -> R:
        """``raw`` as ``answer``; Unavailable naming the peer if it is not one."""
        try:
            return answer.model_validate_json(raw or b"")
        except ValidationError as exc:
            raise Unavailable(
                f"{self.base_url} answered {what} with an invalid {answer.__name__}: "
                f"{first_error(exc)}",
                url=self.base_url,
            ) from None


def _valid(model: type[R], **fields: Any) -> R:
    """A request body built here, checked as the peer will check it: bad input is refused
    before anything is sent, with the same BadRequest the peer would answer."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise BadRequest(first_error(exc)) from None


def _doc(manifest: Manifest) -> ManifestDoc:
    try:
        return ManifestDoc.of(manifest)
    except ValidationError as exc:
        raise BadRequest(f"manifest of {manifest.name!r}: {first_error(exc)}") from None


async def _error_of(resp: aiohttp.ClientResponse) -> CofreError:
    try:
        problem = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        problem = None
    if not isinstance(problem, dict):
        text = (await resp.text(errors="replace"))[:200] if not resp.closed else ""
        problem = {"detail": f"HTTP {resp.status} from {resp.url.origin()}: {text}".strip()}
    return error_from_problem(problem, status=resp.status)


def _untrusted(base_url: str, exc: aiohttp.ClientConnectorCertificateError) -> str:
    """One line saying which host's certificate failed and why."""
    cause = exc.certificate_error
    why = getattr(cause, "verify_message", "") or str(cause)
    host = f"{exc.host}:{exc.port}"
    if getattr(cause, "verify_code", 0) == _X509_EXPIRED:
        return f"the certificate of {host} ({base_url}) has expired: it must be renewed"
    if "mismatch" in why.lower():
        return f"the certificate of {host} ({base_url}) is not valid for that name ({why})"
    return f"the certificate of {host} ({base_url}) is not trusted by the given CA ({why})"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class ManagerClient(_ApiClient):
    """The manager: catalog, placement and cluster state. It never carries file bytes."""

    async def create_upload(
        self, *, name: str, size: int, mode: int, mtime: float
    ) -> UploadCreated:
        body = _valid(FileDecl, name=name, size=size, mode=mode, mtime=mtime)
        return await self._call("POST", "/v1/uploads", UploadCreated, body=body)

    async def create_batch_upload(self, files: list[FileDecl]) -> UploadCreated:
        """One upload for several files."""
        return await self._call(
            "POST", "/v1/uploads", UploadCreated, body=_valid(BatchDecl, files=files)
        )

    async def commit_upload(self, upload_id: UploadId, manifest: Manifest) -> Committed:
        answer = await self._call(
            "POST",
            f"/v1/uploads/{upload_id}/commit",
            CommitAnswer,
            body=_valid(CommitOne, manifest=_doc(manifest)),
        )
        if not isinstance(answer.root, Committed):
            raise Unavailable(f"{self.base_url} answered one commit with a batch's answer")
        return answer.root

    async def commit_batch(self, upload_id: UploadId, manifests: list[Manifest]) -> list[Committed]:
        """Every manifest of a batch upload in one transaction; -> the versions, in order."""
        answer = await self._call(
            "POST",
            f"/v1/uploads/{upload_id}/commit",
            CommitAnswer,
            body=_valid(CommitBatch, manifests=[_doc(m) for m in manifests]),
        )
        if not isinstance(answer.root, CommittedBatch):
            raise Unavailable(f"{self.base_url} answered a batch commit with one version")
        return answer.root.versions

    async def known(self, upload_id: UploadId, hashes: list[ChunkHash]) -> set[ChunkHash]:
        """Those of ``hashes`` already stored with every copy elsewhere: no need to send them."""
        answer = await self._call(
            "POST",
            f"/v1/uploads/{upload_id}/known",
            KnownAnswer,
            body=_valid(KnownQuery, hashes=hashes),
        )
        return set(answer.known)

    async def abort_upload(self, upload_id: UploadId) -> None:
        await self._request("DELETE", f"/v1/uploads/{upload_id}")

    async def get_manifests(self, names: list[str]) -> list[ManifestView]:
        """The latest live version of each name, as ``get_manifest`` answers; a name without one
        is left out."""
        answer = await self._call(
            "POST", "/v1/files/manifests", ManifestList, body=_valid(ManifestsQuery, names=names)
        )
        return answer.manifests

    async def list_files(self, *, versions: bool = False) -> list[VersionInfo]:
        params = {"versions": "1" if versions else "0"}
        return (await self._call("GET", "/v1/files", FileList, params=params)).files

    async def get_manifest(self, name: str, *, version: int | None = None) -> ManifestView:
        params = _name_params(name, version)
        return await self._call("GET", "/v1/files/manifest", ManifestView, params=params)

    async def where(self, name: str, *, version: int | None = None) -> WhereReport:
        params = _name_params(name, version)
        return await self._call("GET", "/v1/files/where", WhereReport, params=params)

    async def delete(self, name: str, *, version: int | None = None) -> list[int]:
        params = _name_params(name, version)
        return (await self._call("DELETE", "/v1/files", Deleted, params=params)).deleted

    async def nodes(self) -> NodeList:
        return await self._call("GET", "/v1/nodes", NodeList)

    async def fsck(self, *, name: str | None = None, verify: bool = False) -> FsckReport:
        params = {"verify": "1" if verify else "0"}
        if name is not None:
            params["name"] = name
        return await self._call("GET", "/v1/fsck", FsckReport, params=params)

    async def gc(self, *, grace_s: float | None = None) -> GcResult:
        return await self._call("POST", "/v1/gc", GcResult, body=_valid(GcRequest, grace_s=grace_s))

    async def stats(self) -> ClusterStats:
        return await self._call("GET", "/v1/stats", ClusterStats)

    async def overview(self) -> ClusterOverview:
        return await self._call("GET", "/v1/overview", ClusterOverview)

    async def repair(self, *, verify: bool = False) -> RepairReport:
        body = _valid(RepairRequest, verify=verify)
        return await self._call("POST", "/v1/repair", RepairReport, body=body)

    async def rebuild_catalog(self) -> RebuildReport:
        """Fill an empty catalog from the manifests on the nodes (Conflict if not empty)."""
        body = _valid(RebuildRequest)
        return await self._call("POST", "/v1/catalog/rebuild", RebuildReport, body=body)

    async def drain(self, node_ids: Iterable[str]) -> DrainStatus:
        body = _valid(DrainRequest, nodes=[NodeId(n) for n in node_ids])
        return await self._call("POST", "/v1/drain", DrainStatus, body=body)

    async def set_draining(self, node_ids: Iterable[str]) -> DrainStatus:
        """Make the manager's draining set exactly ``node_ids`` (empty ends every drain)."""
        body = _valid(DrainRequest, nodes=[NodeId(n) for n in node_ids])
        return await self._call("PUT", "/v1/drain", DrainStatus, body=body)

    async def drain_status(self) -> DrainStatus:
        return await self._call("GET", "/v1/drain", DrainStatus)

    async def create_key(self, name: str, role: Role) -> KeyCreated:
        """A new key (admin only); the answer is the only time the key itself is shown."""
        body = _valid(CreateKey, name=name, role=role)
        return await self._call("POST", "/v1/keys", KeyCreated, body=body)

    async def list_keys(self) -> list[KeyInfo]:
        return (await self._call("GET", "/v1/keys", KeyList)).keys

    async def delete_key(self, name: str) -> None:
        """Revoke the key ``name`` (NotFound if there is none)."""
        path = _valid(KeyPath, name=name)
        await self._request("DELETE", f"/v1/keys/{path.name}")

    # tree snapshots ------------------------------------------------------------------------
    #
    # A backup of a tree: open_snapshot; for the files whose bytes must be sent, ordinary
    # uploads (create_batch_upload / create_upload, chunks to the primary, `known`) closed
    # with commit_snapshot_chunks instead of a manifest commit; add_snapshot_entries in
    # batches of at most limits.MAX_ENTRY_BATCH; commit_snapshot. Nothing is visible before
    # the commit, which refuses (naming them) chunks the catalog does not hold with F copies.

    async def open_snapshot(
        self,
        *,
        time: float,
        host: str,
        paths: list[str],
        tags: list[str] | None = None,
        parent: SnapshotId | None = None,
    ) -> SnapshotOpened:
        body = _valid(
            SnapshotCreate, time=time, host=host, paths=paths, tags=tags or [], parent=parent
        )
        return await self._call("POST", "/v1/snapshots", SnapshotOpened, body=body)

    async def commit_snapshot_chunks(
        self, snapshot_id: SnapshotId, upload_id: UploadId, chunks: Iterable[ChunkRef]
    ) -> ChunksCommitted:
        """Close an upload by recording its chunks (sent or known) for the open snapshot."""
        body = _valid(
            SnapshotChunks, upload_id=upload_id, chunks=[(c.hash, c.length) for c in chunks]
        )
        path = f"/v1/snapshots/{snapshot_id}/chunks"
        return await self._call("POST", path, ChunksCommitted, body=body)

    async def add_snapshot_entries(
        self, snapshot_id: SnapshotId, entries: list[TreeEntry]
    ) -> EntriesAdded:
        """One batch of tree entries (at most limits.MAX_ENTRY_BATCH, each path once)."""
        body = _valid(SnapshotEntries, entries=entries)
        path = f"/v1/snapshots/{snapshot_id}/entries"
        return await self._call("POST", path, EntriesAdded, body=body)

    async def commit_snapshot(self, snapshot_id: SnapshotId, *, entries: int) -> SnapshotInfo:
        """Make the snapshot visible, in one transaction; ``entries``: how many were sent."""
        body = _valid(SnapshotCommit, entries=entries)
        path = f"/v1/snapshots/{snapshot_id}/commit"
        return await self._call("POST", path, SnapshotInfo, body=body)

    async def list_snapshots(
        self, *, host: str | None = None, tags: list[str] | None = None, path: str | None = None
    ) -> list[SnapshotInfo]:
        """Committed snapshots, oldest first; filters: host, all of ``tags``, a source path."""
        params = _snapshot_filter(host=host, tags=tags, path=path)
        return (await self._call("GET", "/v1/snapshots", SnapshotList, params=params)).snapshots

    async def get_snapshot(
        self,
        ref: str,
        *,
        host: str | None = None,
        tags: list[str] | None = None,
        path: str | None = None,
    ) -> SnapshotInfo:
        """A snapshot by id, unique id prefix, or ``latest`` (the newest matching the filters)."""
        params = _snapshot_filter(host=host, tags=tags, path=path)
        return await self._call("GET", f"/v1/snapshots/{ref}", SnapshotInfo, params=params)

    async def snapshot_entries(
        self,
        snapshot_id: SnapshotId,
        *,
        path: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> EntryPage:
        """One page of entries in path order (only ``path`` and below, if given)."""
        params = {}
        for key, value in (("path", path), ("after", after), ("limit", limit)):
            if value is not None:
                params[key] = str(value)
        url = f"/v1/snapshots/{snapshot_id}/entries"
        return await self._call("GET", url, EntryPage, params=params)

    async def iter_snapshot_entries(
        self, snapshot_id: SnapshotId, *, path: str | None = None
    ) -> AsyncIterator[list[EntryView]]:
        """Every entry (under ``path``), a page at a time: restores and parent comparisons
        stream a tree of any size in bounded memory."""
        after: str | None = None
        while True:
            page = await self.snapshot_entries(snapshot_id, path=path, after=after)
            if page.entries:
                yield page.entries
            if page.next_after is None:
                return
            after = page.next_after

    async def delete_snapshot(self, ref: str) -> list[SnapshotId]:
        """Remove a committed snapshot (or abort an open one); its chunks nothing else
        references are freed by the next GC."""
        return (await self._call("DELETE", f"/v1/snapshots/{ref}", SnapshotsRemoved)).removed

    async def forget(self, rules: ForgetRequest) -> ForgetReport:
        """Apply keep rules (restic's semantics); ``rules.dry_run`` only reports."""
        return await self._call("POST", "/v1/snapshots/forget", ForgetReport, body=rules)

    async def locate_chunks(self, hashes: list[ChunkHash]) -> ChunkLocations:
        """Where to read each chunk (nodes best first), for a restore of snapshot entries, and
        the read ticket those nodes take; at most limits.MAX_KNOWN_HASHES per call; unknown
        chunks are left out."""
        body = _valid(LocateQuery, hashes=hashes)
        return await self._call("POST", "/v1/chunks/locate", ChunkLocations, body=body)

    async def snapshot_where(self, ref: str, path: str) -> EntryWhere:
        """Each copy of each chunk of a snapshot's file: node, state, since, why."""
        params = {"path": path}
        return await self._call("GET", f"/v1/snapshots/{ref}/where", EntryWhere, params=params)


def _snapshot_filter(
    *, host: str | None, tags: list[str] | None, path: str | None
) -> dict[str, str]:
    params = {}
    if host is not None:
        params["host"] = host
    if tags:
        params["tag"] = ",".join(tags)
    if path is not None:
        params["path"] = path
    return params


def _name_params(name: str, version: int | None) -> dict[str, str]:
    params = {"name": name}
    if version is not None:
        params["version"] = str(version)
    return params


class NodeClient(_ApiClient):
    """A storage node: chunk store, session relay."""

    async def stats(self) -> NodeStats:
        return await self._call("GET", "/v1/stats", NodeStats)

    async def open_relay(self, session: OpenSession) -> None:
        """Manager -> primary: the replicas of this upload, and their ticket."""
        await self._request("POST", "/v1/sessions", body=session)

    async def close_relay(self, upload_id: UploadId) -> None:
        await self._request("DELETE", f"/v1/sessions/{upload_id}")

    async def missing(
        self,
        upload_id: UploadId,
        hashes: list[ChunkHash],
        *,
        ticket: str,
        lengths: list[int] | None = None,
    ) -> list[ChunkHash]:
        """Client -> primary: which of these chunks must still be sent (with ``lengths``, a
        copy of another size counts as lacking)."""
        answer = await self._call(
            "POST",
            f"/v1/sessions/{upload_id}/missing",
            Missing,
            body=_valid(MissingRequest, hashes=hashes, lengths=lengths),
            ticket=ticket,
        )
        return answer.missing

    async def upload_chunk(
        self, upload_id: UploadId, chunk_hash: ChunkHash, data: bytes, *, ticket: str
    ) -> None:
        """Client -> primary: one chunk; returns once every copy is durable."""
        await self._request(
            "PUT", f"/v1/sessions/{upload_id}/chunks/{chunk_hash}", data=data, ticket=ticket
        )

    async def upload_chunks(self, upload_id: UploadId, framed: bytes, *, ticket: str) -> None:
        """Client -> primary: a framed batch (cofre.protocol.framing); returns once every copy
        of every chunk in it is durable."""
        await self._request(
            "PUT",
            f"/v1/sessions/{upload_id}/chunks",
            data=framed,
            content_type=CONTENT_TYPE,
            ticket=ticket,
        )

    async def put_chunks(self, framed: bytes, *, ticket: str) -> list[ChunkHash]:
        """Store a framed batch durably on this node; -> the hashes that were new."""
        raw = await self._request(
            "PUT", "/v1/chunks", data=framed, content_type=CONTENT_TYPE, ticket=ticket
        )
        return self._parse(BatchStored, raw, "PUT /v1/chunks").created

    async def read_chunks(
        self, hashes: list[ChunkHash], *, ticket: str | None = None
    ) -> list[tuple[ChunkHash, memoryview]]:
        """Several chunks in one framed answer, each verified by the node; absent or corrupt
        ones are left out (fetch those one by one elsewhere). ``ticket``: a manifest's read
        ticket, for a client without the token."""
        body = await self._request(
            "POST", "/v1/chunks/read", body=_valid(ReadRequest, hashes=hashes), ticket=ticket
        )
        if body is None:
            return []
        return decode_frames(body)

    async def put_chunk(self, chunk_hash: ChunkHash, data: bytes, *, ticket: str) -> bool:
        """Store one chunk durably on this node; True if it was new."""
        raw = await self._request("PUT", f"/v1/chunks/{chunk_hash}", data=data, ticket=ticket)
        return self._parse(ChunkStored, raw, "PUT /v1/chunks/{hash}").created

    async def get_chunk(self, chunk_hash: ChunkHash, *, ticket: str | None = None) -> bytes:
        data = await self._request("GET", f"/v1/chunks/{chunk_hash}", ticket=ticket)
        if data is None:
            raise BadRequest(f"node {self.base_url} returned no bytes for chunk {chunk_hash}")
        return data

    async def check(
        self,
        hashes: list[ChunkHash],
        *,
        lengths: list[int] | None = None,
        verify: bool = False,
        touch: bool = False,
    ) -> CheckResult:
        """Which chunks are present, missing, corrupt; ``lengths`` (parallel to ``hashes``)
        makes a copy of another size corrupt, verify re-hashes, touch protects from GC."""
        body = _valid(CheckRequest, hashes=hashes, lengths=lengths, verify=verify, touch=touch)
        return await self._call("POST", "/v1/chunks/check", CheckResult, body=body)

    async def inventory(self, *, before: float | None = None) -> list[InventoryEntry]:
        """Every chunk (last written/touched before ``before``)."""
        params = {} if before is None else {"before": repr(before)}
        return (await self._call("GET", "/v1/chunks", Inventory, params=params)).chunks

    async def manifests(self) -> list[ManifestCandidate]:
        """Every chunk that starts like a manifest (not verified)."""
        return (await self._call("GET", "/v1/manifests", ManifestCandidates)).manifests

    async def delete_chunks(self, hashes: list[ChunkHash]) -> ChunksDeleted:
        body = _valid(HashList, hashes=hashes)
        return await self._call("POST", "/v1/chunks/delete", ChunksDeleted, body=body)

    async def pull_chunk(self, chunk_hash: ChunkHash, sources: list[str], *, ticket: str) -> None:
        """Manager -> node: fetch this chunk from one of ``sources`` (node URLs) and store it."""
        body = _valid(PullRequest, hash=chunk_hash, sources=sources)
        await self._request("POST", "/v1/chunks/pull", body=body, ticket=ticket)
