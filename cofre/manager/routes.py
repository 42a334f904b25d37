"""HTTP handlers of the manager's /v1 API (see docs/architecture.md, Manager table).

Each handler parses its request into a model (``cofre.protocol.manager_api``) at the edge,
calls a domain function with typed values, and answers with a model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web

from cofre.limits import MAX_MANAGER_JSON_BYTES
from cofre.manager import (
    dedup,
    drain,
    gc,
    health,
    overview,
    rebuild,
    repair,
    snapshot_routes,
    statuspage,
    uploads,
)
from cofre.manager.catalog import VersionRow
from cofre.manager.context import Manager
from cofre.manager.keys import MANAGER
from cofre.manager.placement import restore_order
from cofre.models import ChunkHash, ChunkRef, NodeId, UploadId
from cofre.protocol.access import Role
from cofre.protocol.api import Api, api_body, api_path, api_query, health_reply, reply
from cofre.protocol.auth import PRINCIPAL
from cofre.protocol.base import Health
from cofre.protocol.manager_api import (
    ChunkLocation,
    ChunkLocations,
    ClusterOverview,
    ClusterStats,
    CommitAnswer,
    CommitUpload,
    CreateKey,
    CreateUpload,
    Deleted,
    DrainRequest,
    DrainStatus,
    FileList,
    FsckQuery,
    FsckReport,
    GcRequest,
    GcResult,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyPath,
    KnownAnswer,
    KnownQuery,
    ListQuery,
    LocateQuery,
    ManifestList,
    ManifestsQuery,
    ManifestView,
    NameQuery,
    NodeList,
    RebuildReport,
    RebuildRequest,
    RepairReport,
    RepairRequest,
    UploadCreated,
    UploadPath,
    WhereReport,
)
from cofre.tickets import Scope, Ticket

# Every route but the public ones declares the least role it needs (Api refuses one that does
# not): read lists and restores, backup adds, admin deletes and runs the cluster.
api = Api(roles=True)
routes = api.routes


def _manifest_view(
    m: Manager,
    row: VersionRow,
    chunks: list[ChunkRef],
    locations: Mapping[ChunkHash, set[NodeId]],
) -> ManifestView:
    listed, ticket = _located(m, chunks, locations)
    return ManifestView(**health.version_base(row).model_dump(), chunks=listed, ticket=ticket)


def _located(
    m: Manager, chunks: list[ChunkRef], locations: Mapping[ChunkHash, set[NodeId]]
) -> tuple[list[ChunkLocation], str]:
    """Each chunk with the URLs of the nodes holding it, best to read from first, and a read
    ticket naming those nodes: they accept reads under it from a client that holds a key, not
    the token."""
    views = {v.node_id: v for v in m.registry.views()}
    listed = []
    named: set[NodeId] = set()
    for c in chunks:
        holders = [views[n] for n in locations.get(c.hash, set()) if n in views]
        named.update(v.node_id for v in holders)
        urls = [v.url for v in restore_order(holders, m.weights)]
        listed.append(ChunkLocation(hash=c.hash, length=c.length, nodes=urls))
    expires = time.time() + m.config.access.read_ticket_ttl_s
    ticket = Ticket(UploadId(""), tuple(sorted(named)), expires, scope=Scope.READ)
    return listed, ticket.sign(m.ticket_key)


@api.get("/healthz", summary="Liveness", replies={200: Health}, public=True)
async def healthz(_: web.Request) -> web.Response:
    return health_reply(True)


@api.get(
    "/readyz",
    summary="Readiness: the catalog is open",
    replies={200: Health, 503: Health},
    public=True,
)
async def readyz(request: web.Request) -> web.Response:
    if not request.app[MANAGER].catalog.is_open:
        return health_reply(False, "catalog not open")
    return health_reply(True)


@api.post(
    "/v1/uploads",
    role=Role.BACKUP,
    errors=(409, 502, 503, 507),
    summary="Open an upload: placement, tickets, the primary's address",
    body=CreateUpload,
    replies={201: UploadCreated},
)
async def create_upload(request: web.Request) -> web.Response:
    declared = await api_body(request, CreateUpload, limit=MAX_MANAGER_JSON_BYTES)
    opened = await uploads.create_upload(request.app[MANAGER], declared.files, batch=declared.batch)
    return reply(opened, status=201)


@api.post(
    "/v1/uploads/{upload_id}/commit",
    role=Role.BACKUP,
    errors=(404, 409, 502, 503),
    summary="Commit an upload's manifests once every copy is confirmed",
    path_params=UploadPath,
    body=CommitUpload,
    replies={201: CommitAnswer},
)
async def commit_upload(request: web.Request) -> web.Response:
    upload_id = api_path(request, UploadPath).upload_id
    commit = await api_body(request, CommitUpload, limit=MAX_MANAGER_JSON_BYTES)
    answer = await uploads.commit_upload(
        request.app[MANAGER], upload_id, commit.manifests, batch=commit.batch
    )
    return reply(answer, status=201)


@api.post(
    "/v1/uploads/{upload_id}/known",
    role=Role.BACKUP,
    errors=(404, 409, 503),
    summary="Which chunks are stored with F copies already and need not be sent",
    path_params=UploadPath,
    body=KnownQuery,
    replies={200: KnownAnswer},
)
async def known_chunks(request: web.Request) -> web.Response:
    upload_id = api_path(request, UploadPath).upload_id
    asked = await api_body(request, KnownQuery, limit=MAX_MANAGER_JSON_BYTES)
    known = await dedup.known_chunks(request.app[MANAGER], upload_id, asked.hashes)
    return reply(KnownAnswer(known=known))


@api.delete(
    "/v1/uploads/{upload_id}",
    role=Role.BACKUP,
    errors=(404,),
    summary="Abort an upload",
    path_params=UploadPath,
    replies={204: None},
)
async def abort_upload(request: web.Request) -> web.Response:
    upload_id = api_path(request, UploadPath).upload_id
    await uploads.abort_upload(request.app[MANAGER], upload_id)
    return web.Response(status=204)


@api.get(
    "/v1/files", summary="Live versions", query=ListQuery, replies={200: FileList}, role=Role.READ
)
async def list_files(request: web.Request) -> web.Response:
    query = api_query(request, ListQuery)
    rows = await request.app[MANAGER].catalog.versions(all_versions=query.versions)
    return reply(FileList(files=[health.version_info(r) for r in rows]))


@api.get(
    "/v1/files/manifest",
    role=Role.READ,
    errors=(404,),
    summary="A live version and where to read each chunk",
    query=NameQuery,
    replies={200: ManifestView},
)
async def get_manifest(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    query = api_query(request, NameQuery)
    row, chunks = await health.live_version(m, query.name, query.version)
    locations = await m.catalog.locations({c.hash for c in chunks})
    return reply(_manifest_view(m, row, chunks, locations))


@api.get(
    "/v1/files/where",
    role=Role.READ,
    errors=(404,),
    summary="Where every copy of a version's chunks is, in what state, and why",
    query=NameQuery,
    replies={200: WhereReport},
)
async def where(request: web.Request) -> web.Response:
    query = api_query(request, NameQuery)
    return reply(await health.where(request.app[MANAGER], name=query.name, version=query.version))


@api.post(
    "/v1/files/manifests",
    role=Role.READ,
    summary="The latest live version of each name (names without one are left out)",
    body=ManifestsQuery,
    replies={200: ManifestList},
)
async def get_manifests(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    asked = await api_body(request, ManifestsQuery, limit=MAX_MANAGER_JSON_BYTES)
    found = await m.catalog.latest_many(asked.names)
    locations = await m.catalog.locations({c.hash for _, chunks in found for c in chunks})
    views = [_manifest_view(m, row, chunks, locations) for row, chunks in found]
    return reply(ManifestList(manifests=views))


@api.post(
    "/v1/chunks/locate",
    role=Role.READ,
    summary="Where to read chunks, nodes best first (chunks the catalog does not know left out)",
    body=LocateQuery,
    replies={200: ChunkLocations},
)
async def locate_chunks(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    asked = await api_body(request, LocateQuery, limit=MAX_MANAGER_JSON_BYTES)
    wanted = list(dict.fromkeys(asked.hashes))
    lengths = await m.catalog.lengths(wanted)
    locations = await m.catalog.locations([h for h in wanted if h in lengths])
    chunks = [ChunkRef(h, lengths[h]) for h in wanted if h in lengths]
    listed, ticket = _located(m, chunks, locations)
    return reply(ChunkLocations(chunks=listed, ticket=ticket))


@api.delete(
    "/v1/files",
    role=Role.ADMIN,
    errors=(404,),
    summary="Delete a version (or every live version) of a name",
    query=NameQuery,
    replies={200: Deleted},
)
async def delete_files(request: web.Request) -> web.Response:
    query = api_query(request, NameQuery)
    deleted = await request.app[MANAGER].catalog.delete(query.name, query.version, now=time.time())
    if not deleted:
        raise health.no_live(query.name, query.version)
    return reply(Deleted(deleted=deleted))


@api.get(
    "/v1/nodes",
    summary="Every node: probes, placement score",
    replies={200: NodeList},
    role=Role.READ,
)
async def nodes(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    p = m.config.placement
    statuses = m.registry.statuses(m.weights, min_free_bytes=p.min_free_bytes)
    return reply(
        NodeList(
            nodes=statuses,
            replication_factor=p.replication_factor,
            primary_keeps_copy=p.primary_keeps_copy,
        )
    )


@api.get(
    "/v1/fsck",
    role=Role.READ,
    errors=(404,),
    summary="Check every version's chunks and copies",
    query=FsckQuery,
    replies={200: FsckReport},
)
async def fsck(request: web.Request) -> web.Response:
    query = api_query(request, FsckQuery)
    return reply(await health.fsck(request.app[MANAGER], name=query.name, verify=query.verify))


@api.post(
    "/v1/gc",
    role=Role.ADMIN,
    summary="Delete chunks no live version needs",
    body=GcRequest,
    body_required=False,
    replies={200: GcResult},
)
async def run_gc(request: web.Request) -> web.Response:
    body = await api_body(request, GcRequest, limit=MAX_MANAGER_JSON_BYTES, empty_ok=True)
    return reply(await gc.collect(request.app[MANAGER], grace_s=body.grace_s))


@api.post(
    "/v1/repair",
    role=Role.ADMIN,
    summary="Copy every live chunk back to F good copies",
    body=RepairRequest,
    body_required=False,
    replies={200: RepairReport},
)
async def run_repair(request: web.Request) -> web.Response:
    body = await api_body(request, RepairRequest, limit=MAX_MANAGER_JSON_BYTES, empty_ok=True)
    return reply(await repair.repair(request.app[MANAGER], verify=body.verify))


@api.post(
    "/v1/catalog/rebuild",
    role=Role.ADMIN,
    errors=(409, 503),
    summary="Fill an empty catalog from the manifests on the nodes (409 if it holds any)",
    body=RebuildRequest,
    body_required=False,
    replies={200: RebuildReport},
)
async def rebuild_catalog(request: web.Request) -> web.Response:
    await api_body(request, RebuildRequest, limit=MAX_MANAGER_JSON_BYTES, empty_ok=True)
    return reply(await rebuild.rebuild(request.app[MANAGER]))


@api.get("/v1/stats", summary="Cluster totals", replies={200: ClusterStats}, role=Role.READ)
async def stats(request: web.Request) -> web.Response:
    return reply(await health.cluster_stats(request.app[MANAGER]))


@api.post(
    "/v1/drain",
    role=Role.ADMIN,
    errors=(404,),
    summary="Start draining nodes (every id must be a known node)",
    body=DrainRequest,
    replies={202: DrainStatus},
)
async def start_drain(request: web.Request) -> web.Response:
    body = await api_body(request, DrainRequest, limit=MAX_MANAGER_JSON_BYTES)
    return reply(await drain.start_drain(request.app[MANAGER], body.nodes), status=202)


@api.put(
    "/v1/drain",
    role=Role.ADMIN,
    summary="Make the draining set exactly these nodes (an empty list ends every drain)",
    body=DrainRequest,
    replies={200: DrainStatus},
)
async def set_drain(request: web.Request) -> web.Response:
    body = await api_body(request, DrainRequest, limit=MAX_MANAGER_JSON_BYTES)
    return reply(await drain.set_drain(request.app[MANAGER], body.nodes))


@api.get("/v1/drain", summary="Drain progress", replies={200: DrainStatus}, role=Role.READ)
async def drain_status(request: web.Request) -> web.Response:
    return reply(await drain.status(request.app[MANAGER]))


@api.get(
    "/v1/overview",
    role=Role.READ,
    summary="Totals, capacity forecast, placement weights, latest fsck and repair",
    replies={200: ClusterOverview},
)
async def cluster_overview(request: web.Request) -> web.Response:
    return reply(await overview.overview(request.app[MANAGER]))


@api.post(
    "/v1/keys",
    role=Role.ADMIN,
    errors=(409,),
    summary="Make a key with a role; the answer is the only time the key is shown",
    body=CreateKey,
    replies={201: KeyCreated},
)
async def create_key(request: web.Request) -> web.Response:
    asked = await api_body(request, CreateKey, limit=MAX_MANAGER_JSON_BYTES)
    store = request.app[MANAGER].keys
    row, text = await store.add(name=asked.name, role=asked.role, by=request[PRINCIPAL].name)
    made = KeyCreated(name=row.name, role=asked.role, created=row.created, key=text)
    return reply(made, status=201)


@api.get(
    "/v1/keys",
    role=Role.ADMIN,
    summary="Every key: name, role, when made and last used (never the key)",
    replies={200: KeyList},
)
async def list_keys(request: web.Request) -> web.Response:
    listed = [
        KeyInfo(name=r.name, role=Role(r.role), created=r.created, last_used=used)
        for r, used in request.app[MANAGER].keys.rows()
    ]
    return reply(KeyList(keys=listed))


@api.delete(
    "/v1/keys/{name}",
    role=Role.ADMIN,
    errors=(404,),
    summary="Revoke a key: refused from the next request on",
    path_params=KeyPath,
    replies={204: None},
)
async def delete_key(request: web.Request) -> web.Response:
    name = api_path(request, KeyPath).name
    await request.app[MANAGER].keys.remove(name, by=request[PRINCIPAL].name)
    return web.Response(status=204)


snapshot_routes.declare(api)
statuspage.declare(api)

api.serve_document(
    role=Role.READ,
    title="cofre manager",
    version="1",
    description="Placement, catalog, commit, GC, fsck, repair and drain. The manager never "
    "carries file bytes: clients send chunks to the primary node it names.",
)
