"""The manager's OpenAPI document (GET /v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from cofre.protocol.server import openapi_document

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(status: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = _json(schema)
    return {status: answer}


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "bad request",
        "401": "missing or wrong cluster token",
        "404": "not found",
        "409": "conflict (incomplete_upload: chunks missing on a copy node; a rebuild of a "
        "catalog that is not empty)",
        "503": "not_enough_nodes or a node unavailable",
    }
    return {c: {"description": text[c], "content": _PROBLEM} for c in ("401", *codes)}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_FLAG = {"type": "string", "enum": ["0", "1"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": "#/components/schemas/" + name}


SCHEMAS: dict[str, Any] = {
    "Version": _obj(
        {
            "name": _STR,
            "version": _INT,
            "size": _INT,
            "mode": _INT,
            "mtime": _NUM,
            "created": _NUM,
            "chunks": _INT,
        }
    ),
    "NodeStatus": _obj(
        {
            "node_id": _STR,
            "url": _STR,
            "ready": _BOOL,
            "draining": _BOOL,
            "stored_bytes": _INT,
            "free_bytes": _INT,
            "in_flight_bytes": _INT,
            "latency_ms": {"type": ["number", "null"]},
            "score": {"type": ["number", "null"]},
            "chunk_count": _INT,
        }
    ),
    "ChunkHealth": _obj(
        {
            "hash": _STR,
            "length": _INT,
            "nodes": {"type": "array", "items": _STR},
            "corrupt_on": {"type": "array", "items": _STR},
            "status": {"type": "string", "enum": ["ok", "under_replicated", "missing", "corrupt"]},
        }
    ),
    "DrainProgress": _obj({"done": _BOOL, "chunks_left": _INT, "bytes_left": _INT}),
}

DRAIN_STATUS = _obj(
    {
        "done": _BOOL,
        "chunks_left": _INT,
        "bytes_left": _INT,
        "nodes": {"type": "object", "additionalProperties": _ref("DrainProgress")},
    }
)

_FILE = _obj({"name": _STR, "size": _INT, "mode": _INT, "mtime": _NUM}, ["name", "size"])
_COMMITTED = _obj({"name": _STR, "version": _INT, "size": _INT, "chunks": _INT})
_MANIFEST = {
    "allOf": [
        _ref("Version"),
        _obj(
            {
                "chunks": {
                    "type": "array",
                    "items": _obj(
                        {"hash": _STR, "length": _INT, "nodes": {"type": "array", "items": _STR}}
                    ),
                }
            }
        ),
    ]
}

_COPIES = _obj(
    {
        "hash": _STR,
        "length": _INT,
        "status": _STR,
        "copies": {
            "type": "array",
            "items": _obj(
                {
                    "node_id": _STR,
                    "state": {"enum": ["ok", "corrupt", "missing", "unreachable"]},
                    "why": _STR,
                    "since": {"type": ["number", "null"]},
                }
            ),
        },
    }
)
_WHERE = _obj(
    {
        "name": _STR,
        "version": _INT,
        "replication_factor": _INT,
        "manifest": _COPIES,
        "chunks": {"type": "array", "items": _COPIES},
    }
)

PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "liveness", "security": [], **{"responses": _ok("200", "up")}}},
    "/readyz": {
        "get": {
            "summary": "readiness: the catalog is open",
            "security": [],
            "responses": {**_ok("200", "ready"), **_ok("503", "not ready")},
        }
    },
    "/v1/uploads": {
        "post": {
            "summary": "open an upload of one file or of a batch of files: place it (for the "
            "total size), register it at the primary, sign its ticket",
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "oneOf": [
                            _FILE,
                            _obj(
                                {"files": {"type": "array", "items": _FILE, "maxItems": 1000}},
                                ["files"],
                            ),
                        ]
                    }
                ),
            },
            "responses": {
                **_ok(
                    "201",
                    "upload opened",
                    _obj(
                        {
                            "upload_id": _STR,
                            "primary_url": _STR,
                            "ticket": _STR,
                            "chunk_size": _INT,
                            "expires": _NUM,
                        }
                    ),
                ),
                **_errors("400", "503"),
            },
        }
    },
    "/v1/uploads/{upload_id}/commit": {
        "parameters": [{"name": "upload_id", "in": "path", "required": True, "schema": _STR}],
        "post": {
            "summary": "check every copy is stored, then record the version (manifest) or every "
            "version of a batch in one transaction (manifests: a subset of the declared files)",
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "oneOf": [
                            _obj({"manifest": {"type": "object"}}, ["manifest"]),
                            _obj(
                                {"manifests": {"type": "array", "items": {"type": "object"}}},
                                ["manifests"],
                            ),
                        ]
                    }
                ),
            },
            "responses": {
                **_ok(
                    "201",
                    "version recorded (manifest) or versions recorded (manifests)",
                    {
                        "oneOf": [
                            _COMMITTED,
                            _obj({"versions": {"type": "array", "items": _COMMITTED}}),
                        ]
                    },
                ),
                **_errors("400", "404", "409", "503"),
            },
        },
    },
    "/v1/uploads/{upload_id}/known": {
        "parameters": [{"name": "upload_id", "in": "path", "required": True, "schema": _STR}],
        "post": {
            "summary": "which of these chunks are already stored with every copy on ready nodes "
            "(dedup across placement): the upload need not send them, its commit records them "
            "where they are",
            "requestBody": {
                "required": True,
                "content": _json(
                    _obj({"hashes": {"type": "array", "items": _STR, "maxItems": 4096}}, ["hashes"])
                ),
            },
            "responses": {
                **_ok("200", "the known hashes", _obj({"known": {"type": "array", "items": _STR}})),
                **_errors("400", "404", "409"),
            },
        },
    },
    "/v1/uploads/{upload_id}": {
        "parameters": [{"name": "upload_id", "in": "path", "required": True, "schema": _STR}],
        "delete": {
            "summary": "abort an upload, releasing its reservation",
            "responses": {**_ok("204", "aborted"), **_errors("404")},
        },
    },
    "/v1/files": {
        "get": {
            "summary": "latest live version per name, or every live version",
            "parameters": [_query("versions", _FLAG)],
            "responses": _ok(
                "200",
                "files",
                _obj({"files": {"type": "array", "items": _ref("Version")}}),
            ),
        },
        "delete": {
            "summary": "mark a version (or every live version of a name) deleted",
            "parameters": [_query("name", _STR, required=True), _query("version", _INT)],
            "responses": {
                **_ok("200", "deleted", _obj({"deleted": {"type": "array", "items": _INT}})),
                **_errors("400", "404"),
            },
        },
    },
    "/v1/files/manifest": {
        "get": {
            "summary": "a version's chunks and the ready nodes holding each, best first",
            "parameters": [_query("name", _STR, required=True), _query("version", _INT)],
            "responses": {
                **_ok("200", "manifest", _MANIFEST),
                **_errors("400", "404"),
            },
        }
    },
    "/v1/files/where": {
        "get": {
            "summary": "where every copy of a version's chunks (and its manifest) is, its state "
            "now (ok, corrupt, missing, unreachable) and why it is there",
            "parameters": [_query("name", _STR, required=True), _query("version", _INT)],
            "responses": {
                **_ok("200", "copies of every chunk", _WHERE),
                **_errors("400", "404"),
            },
        }
    },
    "/v1/files/manifests": {
        "post": {
            "summary": "the latest live version of each name, as GET /v1/files/manifest answers; "
            "names without one are left out",
            "requestBody": {
                "required": True,
                "content": _json(
                    _obj({"names": {"type": "array", "items": _STR, "maxItems": 1000}}, ["names"])
                ),
            },
            "responses": {
                **_ok(
                    "200",
                    "manifests",
                    _obj({"manifests": {"type": "array", "items": _MANIFEST}}),
                ),
                **_errors("400"),
            },
        }
    },
    "/v1/nodes": {
        "get": {
            "summary": "every known storage node with probe results and placement score",
            "responses": _ok(
                "200",
                "nodes",
                _obj(
                    {
                        "nodes": {"type": "array", "items": _ref("NodeStatus")},
                        "replication_factor": _INT,
                        "primary_keeps_copy": _BOOL,
                    }
                ),
            ),
        }
    },
    "/v1/fsck": {
        "get": {
            "summary": "check the copies of every live version (verify: re-hash on the nodes)",
            "parameters": [_query("name", _STR), _query("verify", _FLAG)],
            "responses": {
                **_ok(
                    "200",
                    "report",
                    _obj(
                        {
                            "healthy": _BOOL,
                            "summary": _obj(
                                {
                                    k: _INT
                                    for k in (
                                        "files",
                                        "versions",
                                        "chunks",
                                        "ok",
                                        "under_replicated",
                                        "missing",
                                        "corrupt",
                                    )
                                }
                            ),
                            "files": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "name": _STR,
                                        "version": _INT,
                                        "healthy": _BOOL,
                                        "manifest": _ref("ChunkHealth"),
                                        "chunks": {"type": "array", "items": _ref("ChunkHealth")},
                                    }
                                ),
                            },
                        }
                    ),
                ),
                **_errors("400", "404"),
            },
        }
    },
    "/v1/gc": {
        "post": {
            "summary": "delete chunks no live version references from every ready node",
            "requestBody": {"content": _json(_obj({"grace_s": _NUM}))},
            "responses": {
                **_ok("200", "collected", _obj({"deleted_chunks": _INT, "freed_bytes": _INT})),
                **_errors("400"),
            },
        }
    },
    "/v1/repair": {
        "post": {
            "summary": "copy every live chunk back to F good copies on ready, non-draining nodes, "
            "from the copies the nodes confirm now (verify: re-hash them first); copies a ready "
            "node lost are forgotten",
            "requestBody": {"content": _json(_obj({"verify": {"type": "boolean"}}))},
            "responses": {
                **_ok(
                    "200",
                    "what the pass found and did",
                    _obj(
                        {
                            "chunks": _INT,
                            "lost_copies": _INT,
                            "under_replicated": _INT,
                            "copies_made": _INT,
                            "stuck": _INT,
                            "unrecoverable": _INT,
                            "healthy": {"type": "boolean"},
                        }
                    ),
                ),
                **_errors("400"),
            },
        }
    },
    "/v1/catalog/rebuild": {
        "post": {
            "summary": "fill an empty catalog from the manifests stored on every node: per name "
            "in order of creation, versions numbered from 1, those with a data chunk on no node "
            "skipped (409 if the catalog holds any version)",
            "requestBody": {"content": _json(_obj({}))},
            "responses": {
                **_ok(
                    "200",
                    "rebuilt",
                    _obj(
                        {
                            k: _INT
                            for k in (
                                "versions",
                                "names",
                                "skipped_incomplete",
                                "skipped_unreadable",
                                "nodes_scanned",
                            )
                        }
                    ),
                ),
                **_errors("400", "409", "503"),
            },
        }
    },
    "/v1/stats": {
        "get": {
            "summary": "cluster totals",
            "responses": _ok(
                "200",
                "stats",
                _obj(
                    {
                        k: _INT
                        for k in (
                            "nodes_ready",
                            "nodes_total",
                            "used_bytes",
                            "capacity_bytes",
                            "files",
                            "versions",
                            "under_replicated_chunks",
                        )
                    }
                ),
            ),
        }
    },
    "/v1/drain": {
        "post": {
            "summary": "start draining nodes: no new data, copies moved elsewhere",
            "requestBody": {
                "required": True,
                "content": _json(_obj({"nodes": {"type": "array", "items": _STR}}, ["nodes"])),
            },
            "responses": {**_ok("202", "draining", DRAIN_STATUS), **_errors("400")},
        },
        "put": {
            "summary": "set the draining nodes to exactly this list (empty: end every drain)",
            "requestBody": {
                "required": True,
                "content": _json(_obj({"nodes": {"type": "array", "items": _STR}}, ["nodes"])),
            },
            "responses": {**_ok("200", "draining", DRAIN_STATUS), **_errors("400")},
        },
        "get": {
            "summary": "drain progress",
            "responses": _ok("200", "progress", DRAIN_STATUS),
        },
    },
    "/v1/openapi.json": {
        "get": {"summary": "this document", "responses": _ok("200", "OpenAPI 3.1", {})},
    },
}


def document() -> dict[str, Any]:
    return openapi_document(title="cofre manager", version="1", paths=PATHS, schemas=SCHEMAS)
