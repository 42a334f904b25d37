"""Contract tests: every route in each service's served OpenAPI document is called with a valid
request, on real apps over loopback, and the real answer is checked against the document (its
status is documented, its content type too, and a JSON body validates against that status's
schema as JSON Schema 2020-12, the OpenAPI 3.1 dialect). The set of routes called must equal
the set documented, and the documented set must equal what the app routes: a new route without
a contract case here, or missing from the document, fails."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cofre.chunks import hash_bytes
from cofre.manager import create_app as create_manager_app
from cofre.protocol.framing import CONTENT_TYPE as FRAMED
from cofre.protocol.framing import encode_frames
from cofre.storage_node import create_app as create_node_app

from .conftest import (
    AUTH,
    Services,
    chunked,
    cluster,
    manager_config,
    manifest_of,
    node_config,
    send_chunks,
    serving,
    ticket,
)

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DOC_URI = "urn:cofre:openapi"


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, p) for p, ops in doc["paths"].items() for m in ops if m in HTTP_METHODS}


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Answer:
    status: int
    content_type: str
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Contract:
    """Calls one service and checks each answer against the document it serves."""

    http: aiohttp.ClientSession
    base_url: str
    doc: dict[str, Any]
    tested: set[tuple[str, str]] = field(default_factory=set)
    # Mismatches with the document, all collected so one run shows every one of them.
    mismatches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)

    async def call(
        self,
        method: str,
        route: str,
        expect: int,
        *,
        path: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Answer:
        url = self.base_url + route.format(**(path or {}))
        async with self.http.request(method, url, headers={**AUTH, **(headers or {})}, **kw) as r:
            answer = Answer(r.status, r.content_type, await r.read())
        where = f"{method} {route} -> {answer.status}"
        assert answer.status == expect, f"{where}: {answer.raw[:500]!r}"
        try:
            self.check(method.lower(), route, answer)
        except AssertionError as exc:
            self.mismatches.append(str(exc).split("\n")[0])
        self.tested.add((method.lower(), route))
        return answer

    def verify(self) -> None:
        """Every documented route was called, and every answer matched the document."""
        assert not self.mismatches, "answers unlike the document:\n" + "\n".join(self.mismatches)
        assert self.tested == documented_routes(self.doc)

    def check(self, method: str, route: str, answer: Answer) -> None:
        where = f"{method.upper()} {route} -> {answer.status}"
        assert route in self.doc["paths"], f"{route} is not in the document"
        responses = self.doc["paths"][route][method]["responses"]
        for key in (str(answer.status), f"{answer.status // 100}XX", "default"):
            if key in responses:
                break
        else:
            raise AssertionError(f"{where}: status not documented (documented: {list(responses)})")
        spec = self._resolve(responses[key])
        content = spec.get("content")
        if not content:
            assert answer.raw == b"", f"{where}: a body where the document says none"
            return
        # Documented media types may carry parameters (text/plain; version=0.0.4; ...).
        media = next(
            (m for m in content if m.split(";")[0].strip() in (answer.content_type, "*/*")), None
        )
        assert media is not None, f"{where}: {answer.content_type} not among {list(content)}"
        schema = content[media].get("schema")
        if schema is None or not _is_json(answer.content_type):
            return
        pointer = _pointer("paths", route, method, "responses", key, "content", media, "schema")
        validator = Draft202012Validator(
            {"$ref": DOC_URI + "#" + quote(pointer, safe="/~")}, registry=self.registry
        )
        errors = sorted(validator.iter_errors(answer.json()), key=lambda e: list(e.path))
        assert not errors, f"{where}: body does not match its schema: " + "; ".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:300]}" for e in errors[:5]
        )

    def _resolve(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A response object, following its $ref (#/components/responses/...) if it has one."""
        while "$ref" in obj:
            obj = self.registry.resolver(DOC_URI).lookup(DOC_URI + obj["$ref"]).contents
        return obj


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def _served_document(http: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    async with http.get(base_url + "/v1/openapi.json", headers=AUTH) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
    return doc


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with cluster(tmp_path) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("kind", ["manager", "node"])
async def test_served_document_is_valid_openapi_3_1(
    kind: str, services: Services, http: aiohttp.ClientSession
) -> None:
    base = services.manager if kind == "manager" else services.nodes["node-0"]
    doc = await _served_document(http, base)
    assert doc["openapi"].startswith("3.1")
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message[:200]}"
        for e in OpenAPIV31SpecValidator(doc).iter_errors()
    ]
    assert errors == []


@pytest.mark.parametrize("kind", ["manager", "node"])
async def test_document_lists_exactly_the_routes_the_app_serves(
    kind: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    if kind == "manager":
        app = create_manager_app(manager_config(tmp_path, {}))
    else:
        app = create_node_app(node_config(tmp_path, "node-0"))
    async with serving(app) as base:
        doc = await _served_document(http, base)
        # aiohttp adds a HEAD route to every GET.
        served = {
            (r.method.lower(), r.resource.canonical)
            for r in app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
    assert documented_routes(doc) == served


async def test_every_manager_route_answers_as_documented(
    services: Services, http: aiohttp.ClientSession
) -> None:
    doc = await _served_document(http, services.manager)
    c = Contract(http, services.manager, doc)
    await c.call("GET", "/healthz", 200)
    await c.call("GET", "/readyz", 200)
    await c.call("GET", "/v1/openapi.json", 200)
    await c.call("GET", "/", 200)
    await c.call("GET", "/ui/status.css", 200)
    await c.call("GET", "/ui/status.js", 200)
    # The catalog is empty, so it can be rebuilt (from no manifests yet).
    await c.call("POST", "/v1/catalog/rebuild", 200, json={})

    # One file backed up as the CLI does it.
    name = "docs/a.txt"
    data = bytes(range(256)) * 18
    refs, blobs = chunked(data)
    manifest = manifest_of(name, data, refs)
    file = {"name": name, "size": len(data), "mode": 0o640, "mtime": 1.5}
    up = (await c.call("POST", "/v1/uploads", 201, json=file)).json()
    uid = {"upload_id": up["upload_id"]}
    route = "/v1/uploads/{upload_id}"
    await c.call("POST", route + "/known", 200, path=uid, json={"hashes": list(blobs)})
    await send_chunks(http, up, {**blobs, manifest.hash: manifest.encode()})
    await c.call("POST", route + "/commit", 201, path=uid, json={"manifest": manifest.to_json()})

    # Two more in one batch upload (the other shape of both bodies).
    batch = [(f"docs/b{i}.txt", bytes([i]) * 1500) for i in range(2)]
    files = [{"name": n, "size": len(d), "mode": 0o640, "mtime": 1.5} for n, d in batch]
    up = (await c.call("POST", "/v1/uploads", 201, json={"files": files})).json()
    manifests, sent = [], {}
    for n, d in batch:
        r, b = chunked(d)
        m = manifest_of(n, d, r)
        manifests.append(m.to_json())
        sent |= {**b, m.hash: m.encode()}
    await send_chunks(http, up, sent)
    await c.call(
        "POST",
        route + "/commit",
        201,
        path={"upload_id": up["upload_id"]},
        json={"manifests": manifests},
    )

    # A tree snapshot: an upload's chunks committed into it, its entries, its commit.
    opened = {"time": time.time(), "host": "laptop", "tags": ["t"], "paths": ["/src"]}
    snap = (await c.call("POST", "/v1/snapshots", 201, json=opened)).json()
    sid = {"snapshot": snap["snapshot_id"]}
    tree_data = b"tree" * 700
    tree_refs, tree_blobs = chunked(tree_data)
    listed = [[r.hash, r.length] for r in tree_refs]
    tree_file = {"name": "src/f", "size": len(tree_data)}
    up = (await c.call("POST", "/v1/uploads", 201, json={"files": [tree_file]})).json()
    await send_chunks(http, up, tree_blobs)
    snap_route = "/v1/snapshots/{snapshot}"
    chunks_body = {"upload_id": up["upload_id"], "chunks": listed}
    await c.call("POST", snap_route + "/chunks", 201, path=sid, json=chunks_body)
    tree = [
        {"path": "src", "kind": "dir", "mode": 0o40755, "mtime_ns": 1},
        {"path": "src/f", "kind": "file", "mode": 0o100644, "mtime_ns": 2, "size": len(tree_data)}
        | {"chunks": listed, "ctime_ns": 3, "inode": 2**63 + 5, "device": 7},
        {"path": "src/l", "kind": "symlink", "mode": 0o120777, "mtime_ns": 3, "target": "f"},
    ]
    await c.call("POST", snap_route + "/entries", 200, path=sid, json={"entries": tree})
    await c.call("POST", snap_route + "/commit", 201, path=sid, json={"entries": 3})
    await c.call("GET", "/v1/snapshots", 200, params={"host": "laptop", "tag": "t"})
    latest = {"snapshot": "latest"}
    await c.call("GET", snap_route, 200, path=latest, params={"path": "/src"})
    page = {"path": "src", "limit": "2"}
    await c.call("GET", snap_route + "/entries", 200, path=sid, params=page)
    await c.call("GET", snap_route + "/where", 200, path=sid, params={"path": "src/f"})
    await c.call("POST", "/v1/chunks/locate", 200, json={"hashes": [r.hash for r in tree_refs]})
    rules = {"keep_last": 1, "keep_daily": 2, "dry_run": True}
    await c.call("POST", "/v1/snapshots/forget", 200, json=rules)

    await c.call("GET", "/v1/files", 200, params={"versions": "true"})
    await c.call("GET", "/v1/files/manifest", 200, params={"name": name})
    await c.call("GET", "/v1/files/where", 200, params={"name": name, "version": "1"})
    await c.call("POST", "/v1/files/manifests", 200, json={"names": [name, "docs/none"]})
    await c.call("GET", "/v1/nodes", 200)
    await c.call("GET", "/v1/stats", 200)
    await c.call("GET", "/v1/overview", 200)
    metrics = await c.call("GET", "/metrics", 200)
    assert b"# TYPE" in metrics.raw
    await c.call("GET", "/v1/fsck", 200, params={"verify": "true"})
    await c.call("POST", "/v1/repair", 200, json={"verify": True})
    await c.call("POST", "/v1/gc", 200, json={"grace_s": 3600})

    await c.call("POST", "/v1/drain", 202, json={"nodes": ["node-2"]})
    await c.call("GET", "/v1/drain", 200)
    await c.call("PUT", "/v1/drain", 200, json={"nodes": []})

    up = (await c.call("POST", "/v1/uploads", 201, json={**file, "name": "docs/gone"})).json()
    await c.call("DELETE", route, 204, path={"upload_id": up["upload_id"]})
    await c.call("DELETE", "/v1/files", 200, params={"name": name})
    await c.call("DELETE", snap_route, 200, path=sid)

    await c.call("POST", "/v1/keys", 201, json={"name": "laptop", "role": "backup"})
    await c.call("GET", "/v1/keys", 200)
    await c.call("DELETE", "/v1/keys/{name}", 204, path={"name": "laptop"})

    c.verify()


async def test_every_storage_node_route_answers_as_documented(
    services: Services, http: aiohttp.ClientSession
) -> None:
    base, replica = services.nodes["node-0"], services.nodes["node-1"]
    doc = await _served_document(http, base)
    c = Contract(http, base, doc)
    await c.call("GET", "/healthz", 200)
    await c.call("GET", "/readyz", 200)
    await c.call("GET", "/v1/openapi.json", 200)
    await c.call("GET", "/v1/stats", 200)

    blobs = [bytes([i]) * (700 + i) for i in range(6)]
    h = [hash_bytes(b) for b in blobs]

    # An upload relayed through this node (the primary) to node-1, keeping a copy here too.
    upload_id = "up-contract"
    session = {"upload_id": upload_id}
    client = {"X-Cofre-Ticket": ticket("node-0", upload_id=upload_id)}
    await c.call(
        "POST",
        "/v1/sessions",
        201,
        json={
            "upload_id": upload_id,
            "replicas": [{"node_id": "node-1", "url": replica}],
            "replica_ticket": ticket("node-1", upload_id=upload_id),
            "keep_copy": True,
            "expires": time.time() + 600,
        },
    )
    route = "/v1/sessions/{upload_id}"
    await c.call(
        "POST", route + "/missing", 200, path=session, headers=client, json={"hashes": h[:2]}
    )
    await c.call(
        "PUT",
        route + "/chunks/{hash}",
        201,
        path={**session, "hash": h[0]},
        headers=client,
        data=blobs[0],
    )
    await c.call(
        "PUT",
        route + "/chunks",
        201,
        path=session,
        headers={**client, "Content-Type": FRAMED},
        data=encode_frames([(h[1], blobs[1])]),
    )
    await c.call("DELETE", route, 204, path=session)

    # Chunks stored directly (as replicas, drain and repair copies are).
    write = {"X-Cofre-Ticket": ticket("node-0")}
    await c.call("PUT", "/v1/chunks/{hash}", 201, path={"hash": h[2]}, headers=write, data=blobs[2])
    await c.call(
        "PUT",
        "/v1/chunks",
        201,
        headers={**write, "Content-Type": FRAMED},
        data=encode_frames([(h[3], blobs[3])]),
    )
    # A chunk only node-1 has, pulled from there.
    async with http.put(
        f"{replica}/v1/chunks/{h[4]}",
        data=blobs[4],
        headers={**AUTH, "X-Cofre-Ticket": ticket("node-1")},
    ) as resp:
        assert resp.status == 201
    await c.call(
        "POST", "/v1/chunks/pull", 201, headers=write, json={"hash": h[4], "sources": [replica]}
    )
    # A manifest, as a chunk.
    manifest = manifest_of("docs/m", blobs[5], chunked(blobs[5])[0])
    await c.call(
        "PUT",
        "/v1/chunks/{hash}",
        201,
        path={"hash": manifest.hash},
        headers=write,
        data=manifest.encode(),
    )

    got = await c.call("GET", "/v1/chunks/{hash}", 200, path={"hash": h[0]})
    assert got.raw == blobs[0]
    await c.call("POST", "/v1/chunks/read", 200, json={"hashes": h[:4]})
    await c.call("POST", "/v1/chunks/check", 200, json={"hashes": h, "verify": True, "touch": True})
    await c.call("GET", "/v1/chunks", 200, params={"before": str(time.time() + 60)})
    listed = (await c.call("GET", "/v1/manifests", 200)).json()
    assert [m["hash"] for m in listed["manifests"]] == [manifest.hash]
    await c.call("POST", "/v1/chunks/delete", 200, json={"hashes": [h[2]]})
    metrics = await c.call("GET", "/metrics", 200)
    assert b"# TYPE" in metrics.raw

    c.verify()
