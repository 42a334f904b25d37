"""HTTP handlers of the manager's /v1 API (see docs/architecture.md, Manager table)."""

from __future__ import annotations

import time

from aiohttp import web

from cofre.errors import BadRequest
from cofre.manager import dedup, drain, gc, health, rebuild, repair, uploads
from cofre.manager.keys import MANAGER
from cofre.manager.placement import restore_order
from cofre.models import UploadId, validate_name
from cofre.protocol.server import read_json, require_json_object

routes = web.RouteTableDef()

# Names per POST /v1/files/manifests.
MAX_MANIFESTS = 1000


def _flag(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "0").lower()
    if raw in {"1", "true", "yes"}:
        return True
    if raw in {"0", "false", "no", ""}:
        return False
    raise BadRequest(f"{key} must be 0 or 1")


def _version(request: web.Request) -> int | None:
    raw = request.query.get("version")
    if raw is None or raw == "":
        return None
    try:
        number = int(raw)
    except ValueError:
        raise BadRequest("version must be an integer") from None
    if number < 1:
        raise BadRequest("version must be >= 1")
    return number


def _name(request: web.Request) -> str:
    name = request.query.get("name")
    if not name:
        raise BadRequest("query parameter name is required")
    return name


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    if not request.app[MANAGER].catalog.is_open:
        return web.json_response({"ok": False, "detail": "catalog not open"}, status=503)
    return web.json_response({"ok": True})


@routes.post("/v1/uploads")
async def create_upload(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "files" not in body:
        require_json_object(body, keys=("name", "size"))
    return web.json_response(await uploads.create_upload(request.app[MANAGER], body), status=201)


@routes.post("/v1/uploads/{upload_id}/commit")
async def commit_upload(request: web.Request) -> web.Response:
    body = await read_json(request)
    upload_id = UploadId(request.match_info["upload_id"])
    result = await uploads.commit_upload(request.app[MANAGER], upload_id, body)
    return web.json_response(result, status=201)


@routes.post("/v1/uploads/{upload_id}/known")
async def known_chunks(request: web.Request) -> web.Response:
    body = await read_json(request)
    upload_id = UploadId(request.match_info["upload_id"])
    return web.json_response(await dedup.known_chunks(request.app[MANAGER], upload_id, body))


@routes.delete("/v1/uploads/{upload_id}")
async def abort_upload(request: web.Request) -> web.Response:
    await uploads.abort_upload(request.app[MANAGER], UploadId(request.match_info["upload_id"]))
    return web.Response(status=204)


@routes.get("/v1/files")
async def list_files(request: web.Request) -> web.Response:
    rows = await request.app[MANAGER].catalog.versions(all_versions=_flag(request, "versions"))
    return web.json_response({"files": [r.to_json() for r in rows]})


@routes.get("/v1/files/manifest")
async def get_manifest(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    name, version = _name(request), _version(request)
    row, chunks = await health.live_version(m, name, version)
    locations = await m.catalog.locations({c.hash for c in chunks})
    views = {v.node_id: v for v in m.registry.views()}
    out = []
    for c in chunks:
        holders = [views[n] for n in locations.get(c.hash, set()) if n in views]
        urls = [v.url for v in restore_order(holders, m.weights)]
        out.append({"hash": c.hash, "length": c.length, "nodes": urls})
    return web.json_response({**row.to_json(), "chunks": out})


@routes.get("/v1/files/where")
async def where(request: web.Request) -> web.Response:
    """Where every copy of a version's chunks is, in what state, and why it is there."""
    m = request.app[MANAGER]
    return web.json_response(await health.where(m, name=_name(request), version=_version(request)))


@routes.post("/v1/files/manifests")
async def get_manifests(request: web.Request) -> web.Response:
    """The latest live version of each named file, as ``GET /v1/files/manifest`` answers it;
    names without a live version are left out."""
    m = request.app[MANAGER]
    body = await read_json(request, keys=("names",))
    names = body["names"]
    if not isinstance(names, list) or len(names) > MAX_MANIFESTS:
        raise BadRequest(f"names must be a list of at most {MAX_MANIFESTS} names")
    found = await m.catalog.latest_many([validate_name(n) for n in names])
    locations = await m.catalog.locations({c.hash for _, chunks in found for c in chunks})
    views = {v.node_id: v for v in m.registry.views()}
    out = []
    for row, chunks in found:
        listed = []
        for c in chunks:
            holders = [views[n] for n in locations.get(c.hash, set()) if n in views]
            urls = [v.url for v in restore_order(holders, m.weights)]
            listed.append({"hash": c.hash, "length": c.length, "nodes": urls})
        out.append({**row.to_json(), "chunks": listed})
    return web.json_response({"manifests": out})


@routes.delete("/v1/files")
async def delete_files(request: web.Request) -> web.Response:
    name, version = _name(request), _version(request)
    deleted = await request.app[MANAGER].catalog.delete(name, version, now=time.time())
    if not deleted:
        raise health.no_live(name, version)
    return web.json_response({"deleted": deleted})


@routes.get("/v1/nodes")
async def nodes(request: web.Request) -> web.Response:
    m = request.app[MANAGER]
    p = m.config.placement
    statuses = m.registry.statuses(m.weights, min_free_bytes=p.min_free_bytes)
    return web.json_response(
        {
            "nodes": [s.to_json() for s in statuses],
            "replication_factor": p.replication_factor,
            "primary_keeps_copy": p.primary_keeps_copy,
        }
    )


@routes.get("/v1/fsck")
async def fsck(request: web.Request) -> web.Response:
    name = request.query.get("name") or None
    result = await health.fsck(request.app[MANAGER], name=name, verify=_flag(request, "verify"))
    return web.json_response(result)


@routes.post("/v1/gc")
async def run_gc(request: web.Request) -> web.Response:
    body = await read_json(request) if request.can_read_body else {}
    grace = body.get("grace_s")
    if grace is not None and (
        isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0
    ):
        raise BadRequest("grace_s must be a non-negative number")
    result = await gc.collect(request.app[MANAGER], grace_s=None if grace is None else float(grace))
    return web.json_response(result)


@routes.post("/v1/repair")
async def run_repair(request: web.Request) -> web.Response:
    body = await read_json(request) if request.can_read_body else {}
    verify = body.get("verify", False)
    if not isinstance(verify, bool):
        raise BadRequest("verify must be true or false")
    return web.json_response(await repair.repair(request.app[MANAGER], verify=verify))


@routes.post("/v1/catalog/rebuild")
async def rebuild_catalog(request: web.Request) -> web.Response:
    """Fill an empty catalog from the manifests on the nodes (409 if it holds any version)."""
    body = await read_json(request) if request.can_read_body else {}
    if body:
        raise BadRequest(f"unexpected fields {sorted(body)}: a rebuild takes an empty object")
    return web.json_response(await rebuild.rebuild(request.app[MANAGER]))


@routes.get("/v1/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(await health.cluster_stats(request.app[MANAGER]))


@routes.post("/v1/drain")
async def start_drain(request: web.Request) -> web.Response:
    body = await read_json(request, keys=("nodes",))
    return web.json_response(await drain.start_drain(request.app[MANAGER], body), status=202)


@routes.put("/v1/drain")
async def set_drain(request: web.Request) -> web.Response:
    body = await read_json(request, keys=("nodes",))
    return web.json_response(await drain.set_drain(request.app[MANAGER], body))


@routes.get("/v1/drain")
async def drain_status(request: web.Request) -> web.Response:
    return web.json_response(await drain.status(request.app[MANAGER]))
