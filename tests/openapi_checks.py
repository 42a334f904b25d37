"""What both services' OpenAPI documents must hold: every route the app serves, its
parameters, the model's own schema for every JSON body, resolvable refs, shared problems."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import web

from cofre.protocol.api import Operation, RawBody

SCHEMAS = "#/components/schemas/"
PROBLEM = {"application/problem+json": {"schema": {"$ref": SCHEMAS + "Problem"}}}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def check_document(
    app: web.Application, doc: dict[str, Any], operations: Sequence[Operation]
) -> None:
    """``doc`` documents exactly the routes ``app`` serves, as ``operations`` declare them."""
    assert doc["openapi"] == "3.1.0"
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == served
    assert {(op.method, op.path) for op in operations} == served
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith(SCHEMAS) and ref.removeprefix(SCHEMAS) in schemas, ref
    for op in operations:
        entry = doc["paths"][op.path][op.method.lower()]
        where = f"{op.method} {op.path}"
        params = [(p["in"], p["name"]) for p in entry.get("parameters", [])]
        in_path = {name for at, name in params if at == "path"}
        assert in_path == set(re.findall(r"\{(\w+)\}", op.path)), where
        in_query = {name for at, name in params if at == "query"}
        assert in_query == (set(op.query.model_fields) if op.query else set()), where
        # Writes take a body, reads and deletes none.
        assert (op.body is not None) == (op.method in ("POST", "PUT")), where
        bodies: list[tuple[type[Any] | RawBody, Any, str]] = []
        if op.body is None:
            assert "requestBody" not in entry, where
        else:
            assert "requestBody" in entry, where
            bodies.append((op.body, entry["requestBody"]["content"], "validation"))
        for status, what in op.replies.items():
            assert str(status) in entry["responses"], (where, status)
            response = entry["responses"][str(status)]
            if what is None:
                assert "content" not in response, where
            else:
                bodies.append((what, response.get("content"), "serialization"))
        for what, content, mode in bodies:
            if isinstance(what, RawBody):
                binary = {"schema": {"type": "string", "format": "binary"}}
                assert content == {what.content_type: binary}, where
                continue
            name = what.__name__
            assert content == {"application/json": {"schema": {"$ref": SCHEMAS + name}}}, where
            own = what.model_json_schema(mode=mode, ref_template=SCHEMAS + "{model}")
            # The model's schema and each it refers to, exactly as pydantic makes them.
            for part, schema in {**own.pop("$defs", {}), name: own}.items():
                assert schemas.get(part) == schema, (where, part)
        for status, response in entry["responses"].items():
            if int(status) >= 400 and int(status) not in op.replies:
                assert response.get("content") == PROBLEM, (where, status)
