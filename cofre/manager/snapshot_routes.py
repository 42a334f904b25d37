"""HTTP handlers of the manager's tree snapshot API (docs/architecture.md, Manager table)."""

from __future__ import annotations

from aiohttp import web

from cofre.errors import NotFound
from cofre.limits import MAX_MANAGER_JSON_BYTES
from cofre.manager import snapshots
from cofre.manager.keys import MANAGER
from cofre.models import ChunkRef, SnapshotId
from cofre.protocol.access import Role
from cofre.protocol.api import Api, api_body, api_path, api_query, reply
from cofre.protocol.manager_api import (
    ChunksCommitted,
    EntriesAdded,
    EntriesQuery,
    EntryPage,
    EntryWhere,
    EntryWhereQuery,
    ForgetReport,
    ForgetRequest,
    SnapshotChunks,
    SnapshotCommit,
    SnapshotCreate,
    SnapshotEntries,
    SnapshotFilter,
    SnapshotInfo,
    SnapshotList,
    SnapshotOpened,
    SnapshotPath,
    SnapshotsRemoved,
)


def _full_id(request: web.Request) -> SnapshotId:
    """An open snapshot is named by its full id (a prefix or `latest` names committed ones)."""
    ref = api_path(request, SnapshotPath).snapshot
    if len(ref) != 32:
        raise NotFound(f"no open snapshot {ref}: give its full id")
    return SnapshotId(ref)


def declare(api: Api) -> None:
    """Add the snapshot routes to ``api``."""

    @api.post(
        "/v1/snapshots",
        role=Role.BACKUP,
        errors=(404, 409),
        summary="Open a tree snapshot (invisible until committed)",
        body=SnapshotCreate,
        replies={201: SnapshotOpened},
    )
    async def open_snapshot(request: web.Request) -> web.Response:
        body = await api_body(request, SnapshotCreate, limit=MAX_MANAGER_JSON_BYTES)
        return reply(await snapshots.open_snapshot(request.app[MANAGER], body), status=201)

    @api.get(
        "/v1/snapshots",
        role=Role.READ,
        summary="Committed snapshots, oldest first (filters: host, tags, source path)",
        query=SnapshotFilter,
        replies={200: SnapshotList},
    )
    async def list_snapshots(request: web.Request) -> web.Response:
        query = api_query(request, SnapshotFilter)
        rows = await request.app[MANAGER].catalog.snapshots(
            host=query.host, tags=query.tags, path=query.path
        )
        return reply(SnapshotList(snapshots=[snapshots.info(r) for r in rows]))

    @api.post(
        "/v1/snapshots/forget",
        role=Role.ADMIN,
        summary="Apply keep rules per group of snapshots; remove the rest unless a dry run",
        body=ForgetRequest,
        replies={200: ForgetReport},
    )
    async def forget(request: web.Request) -> web.Response:
        body = await api_body(request, ForgetRequest, limit=MAX_MANAGER_JSON_BYTES)
        return reply(await snapshots.forget(request.app[MANAGER], body))

    @api.get(
        "/v1/snapshots/{snapshot}",
        role=Role.READ,
        errors=(404,),
        summary="A committed snapshot by id, unique id prefix, or `latest` (with the filters)",
        path_params=SnapshotPath,
        query=SnapshotFilter,
        replies={200: SnapshotInfo},
    )
    async def get_snapshot(request: web.Request) -> web.Response:
        ref = api_path(request, SnapshotPath).snapshot
        row = await snapshots.resolve(request.app[MANAGER], ref, api_query(request, SnapshotFilter))
        return reply(snapshots.info(row))

    @api.delete(
        "/v1/snapshots/{snapshot}",
        role=Role.ADMIN,
        errors=(404,),
        summary="Remove a snapshot (or abort an open one); GC frees what nothing else needs",
        path_params=SnapshotPath,
        replies={200: SnapshotsRemoved},
    )
    async def delete_snapshot(request: web.Request) -> web.Response:
        ref = api_path(request, SnapshotPath).snapshot
        removed = await snapshots.delete(request.app[MANAGER], ref)
        return reply(SnapshotsRemoved(removed=removed))

    @api.post(
        "/v1/snapshots/{snapshot}/chunks",
        role=Role.BACKUP,
        errors=(404, 409, 502, 503),
        summary="Close an upload by committing its chunks into the open snapshot",
        path_params=SnapshotPath,
        body=SnapshotChunks,
        replies={201: ChunksCommitted},
    )
    async def commit_chunks(request: web.Request) -> web.Response:
        snapshot_id = _full_id(request)
        body = await api_body(request, SnapshotChunks, limit=MAX_MANAGER_JSON_BYTES)
        chunks = [ChunkRef(h, n) for h, n in body.chunks]
        answer = await snapshots.commit_chunks(
            request.app[MANAGER], snapshot_id, body.upload_id, chunks
        )
        return reply(answer, status=201)

    @api.post(
        "/v1/snapshots/{snapshot}/entries",
        role=Role.BACKUP,
        errors=(404, 409),
        summary="Add a batch of tree entries to the open snapshot",
        path_params=SnapshotPath,
        body=SnapshotEntries,
        replies={200: EntriesAdded},
    )
    async def add_entries(request: web.Request) -> web.Response:
        snapshot_id = _full_id(request)
        body = await api_body(request, SnapshotEntries, limit=MAX_MANAGER_JSON_BYTES)
        return reply(await snapshots.add_entries(request.app[MANAGER], snapshot_id, body.entries))

    @api.post(
        "/v1/snapshots/{snapshot}/commit",
        role=Role.BACKUP,
        errors=(404, 409),
        summary="Commit the open snapshot in one transaction (409 naming chunks not stored)",
        path_params=SnapshotPath,
        body=SnapshotCommit,
        replies={201: SnapshotInfo},
    )
    async def commit(request: web.Request) -> web.Response:
        snapshot_id = _full_id(request)
        body = await api_body(request, SnapshotCommit, limit=MAX_MANAGER_JSON_BYTES)
        answer = await snapshots.commit(request.app[MANAGER], snapshot_id, sent=body.entries)
        return reply(answer, status=201)

    @api.get(
        "/v1/snapshots/{snapshot}/entries",
        role=Role.READ,
        errors=(404,),
        summary="A page of a committed snapshot's entries in path order (under a path)",
        path_params=SnapshotPath,
        query=EntriesQuery,
        replies={200: EntryPage},
    )
    async def entries(request: web.Request) -> web.Response:
        ref = api_path(request, SnapshotPath).snapshot
        query = api_query(request, EntriesQuery)
        page = await snapshots.entries(
            request.app[MANAGER], ref, under=query.path, after=query.after, limit=query.limit
        )
        return reply(page)

    @api.get(
        "/v1/snapshots/{snapshot}/where",
        role=Role.READ,
        errors=(404,),
        summary="Where every copy of a snapshot file's chunks is, in what state, and why",
        path_params=SnapshotPath,
        query=EntryWhereQuery,
        replies={200: EntryWhere},
    )
    async def where(request: web.Request) -> web.Response:
        ref = api_path(request, SnapshotPath).snapshot
        query = api_query(request, EntryWhereQuery)
        return reply(await snapshots.where(request.app[MANAGER], ref, query.path))
