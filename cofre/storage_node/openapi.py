"""The storage node's OpenAPI document: every path it serves, with bodies and answers."""

from __future__ import annotations

from typing import Any

from cofre.protocol.server import openapi_document

_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HASHES = {"type": "array", "items": _HASH, "maxItems": 100_000}
_TICKET = {"name": "X-Cofre-Ticket", "in": "header", "required": True, "schema": {"type": "string"}}
_HASH_PARAM = {"name": "hash", "in": "path", "required": True, "schema": _HASH}
_UPLOAD_PARAM = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PROBLEM = {
    "description": "problem",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _op(
    summary: str,
    answers: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**answers, "default": _PROBLEM}}
    if body is not None:
        op["requestBody"] = {"required": True, **body}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


_RAW = {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}
_INT = {"type": "integer"}
# cofre.protocol.framing: a JSON header line {"chunks": [[hash, length], ...]}, then the bytes.
_FRAMED = {"content": {"application/x-cofre-chunks": {"schema": {"type": "string"}}}}
_CHECK = _obj(present=_HASHES, missing=_HASHES, corrupt=_HASHES)

PATHS: dict[str, Any] = {
    "/v1/stats": {
        "get": _op(
            "Stored bytes, free bytes and chunk count (the manager's probe)",
            {
                "200": {
                    "description": "stats",
                    **_json(
                        _obj(
                            node_id={"type": "string"},
                            stored_bytes={"type": "integer"},
                            free_bytes={"type": "integer"},
                            chunk_count={"type": "integer"},
                        )
                    ),
                }
            },
        )
    },
    "/v1/sessions": {
        "post": _op(
            "Register an upload session at its primary (manager only)",
            {"201": {"description": "registered"}},
            body=_json(
                _obj(
                    upload_id={"type": "string"},
                    replicas={
                        "type": "array",
                        "items": _obj(node_id={"type": "string"}, url={"type": "string"}),
                    },
                    replica_ticket={"type": "string"},
                    keep_copy={"type": "boolean"},
                    expires={"type": "number"},
                )
            ),
        )
    },
    "/v1/sessions/{upload_id}": {
        "delete": _op("Forget an upload session", {"204": {"description": "closed"}}),
        "parameters": [_UPLOAD_PARAM],
    },
    "/v1/sessions/{upload_id}/missing": {
        "post": _op(
            "Chunks some copy still lacks (present ones are touched)",
            {"200": {"description": "missing", **_json(_obj(missing=_HASHES))}},
            body=_json(_obj(hashes=_HASHES)),
            params=[_TICKET],
        ),
        "parameters": [_UPLOAD_PARAM],
    },
    "/v1/sessions/{upload_id}/chunks/{hash}": {
        "put": _op(
            "Send one chunk; answered once every copy holds it durably",
            {"201": {"description": "stored on every copy"}},
            body=_RAW,
            params=[_TICKET],
        ),
        "parameters": [_UPLOAD_PARAM, _HASH_PARAM],
    },
    "/v1/sessions/{upload_id}/chunks": {
        "put": _op(
            "Send a framed batch of chunks; the primary verifies each and writes the batch to "
            "every copy in one request each; answered once every copy holds every chunk durably",
            {"201": {"description": "stored on every copy", **_json(_obj(stored=_INT))}},
            body=_FRAMED,
            params=[_TICKET],
        ),
        "parameters": [_UPLOAD_PARAM],
    },
    "/v1/chunks/{hash}": {
        "put": _op(
            "Store one chunk durably on this node",
            {
                "201": {"description": "created", **_json(_obj(created={"type": "boolean"}))},
                "200": {"description": "already held", **_json(_obj(created={"type": "boolean"}))},
            },
            body=_RAW,
            params=[_TICKET],
        ),
        "get": _op("A chunk's bytes, verified", {"200": {"description": "bytes", **_RAW}}),
        "parameters": [_HASH_PARAM],
    },
    "/v1/chunks/read": {
        "post": _op(
            "Several chunks in one framed answer, each verified; absent or corrupt ones and "
            "those past the size limit are left out",
            {"200": {"description": "framed chunks", **_FRAMED}},
            body=_json(_obj(hashes={"type": "array", "items": _HASH, "maxItems": 1024})),
        )
    },
    "/v1/chunks/check": {
        "post": _op(
            "Sort chunks into present, missing and corrupt",
            {"200": {"description": "result", **_json(_CHECK)}},
            body=_json(_obj(hashes=_HASHES, verify={"type": "boolean"}, touch={"type": "boolean"})),
        )
    },
    "/v1/chunks": {
        "put": _op(
            "Store a framed batch of chunks durably (each written and fsynced, then renamed, "
            "then each directory fsynced once)",
            {
                "201": {
                    "description": "stored",
                    **_json(_obj(stored=_INT, created={"type": "array", "items": _HASH})),
                }
            },
            body=_FRAMED,
            params=[_TICKET],
        ),
        "get": _op(
            "Every chunk held (written or touched before `before`)",
            {
                "200": {
                    "description": "inventory",
                    **_json(
                        _obj(
                            chunks={
                                "type": "array",
                                "items": _obj(
                                    hash=_HASH,
                                    length={"type": "integer"},
                                    mtime={"type": "number"},
                                ),
                            }
                        )
                    ),
                }
            },
            params=[{"name": "before", "in": "query", "schema": {"type": "number"}}],
        ),
    },
    "/v1/manifests": {
        "get": _op(
            "The chunks whose bytes start like a manifest (only their first bytes are read; "
            "nothing is verified)",
            {
                "200": {
                    "description": "manifest chunks",
                    **_json(
                        _obj(
                            manifests={
                                "type": "array",
                                "items": _obj(hash=_HASH, length={"type": "integer"}),
                            }
                        )
                    ),
                }
            },
        )
    },
    "/v1/chunks/delete": {
        "post": _op(
            "Delete chunks",
            {
                "200": {
                    "description": "deleted",
                    **_json(_obj(deleted={"type": "integer"}, freed_bytes={"type": "integer"})),
                }
            },
            body=_json(_obj(hashes=_HASHES)),
        )
    },
    "/v1/chunks/pull": {
        "post": _op(
            "Fetch a chunk from another node, verify and store it",
            {"201": {"description": "stored"}, "200": {"description": "already held"}},
            body=_json(_obj(hash=_HASH, sources={"type": "array", "items": {"type": "string"}})),
            params=[_TICKET],
        )
    },
    "/v1/openapi.json": {"get": _op("This document", {"200": {"description": "OpenAPI"}})},
    "/healthz": {"get": _op("Liveness", {"200": {"description": "serving"}}, public=True)},
    "/readyz": {
        "get": _op(
            "Readiness: store open and writable",
            {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            public=True,
        )
    },
}


def document() -> dict[str, Any]:
    return openapi_document(title="cofre storage node", version="1", paths=PATHS)
