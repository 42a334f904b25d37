"""Routes declared with their models: the handlers, the checks at the edge, and the OpenAPI 3.1
document, all from one declaration.

A service declares each operation once::

    api = Api()

    @api.post("/v1/gc", body=GcRequest, replies={200: GcResult}, summary="Collect garbage")
    async def run_gc(request: web.Request) -> web.Response:
        body = await api_body(request, GcRequest)
        return reply(await gc.collect(...))

``api.routes`` goes into the aiohttp app; ``api.openapi(...)`` is the document it serves. The
handler parses with the same model it declared (a contract test calls every route and checks the
real answers against the document).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from cofre.errors import BadRequest, PayloadTooLarge
from cofre.protocol.access import ROLE_MEANING, Role
from cofre.protocol.base import Health, OpenApiDocument, error_location
from cofre.protocol.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cofre.protocol.metrics import METRICS_PATH, render
from cofre.protocol.server import TICKET_HEADER
from cofre.tickets import Scope

# OpenAPI and JSON Schema fragments: free-form JSON by nature (the document is checked against
# the OpenAPI 3.1 schema by a test).
Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

_READ_STEP = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RawBody:
    """A body that is not JSON: a chunk's bytes or a framed batch."""

    content_type: str
    description: str


METRICS = RawBody(METRICS_CONTENT_TYPE, "Every metric of this service, in the text format.")


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    path_params: type[BaseModel] | None
    query: type[BaseModel] | None
    body: type[BaseModel] | RawBody | None
    body_required: bool
    # status -> what the answer carries: a model, raw bytes, or nothing (None)
    replies: Mapping[int, type[BaseModel] | RawBody | None]
    public: bool
    ticket: bool
    # Error statuses this operation may answer beyond those every operation of its kind may
    # (400 for bad input, 401 without the token, 413 for a body over its limit).
    errors: frozenset[int] = frozenset()
    # The least role a key needs (a service with roles: the manager); None on public routes
    # and on a service without roles (a node knows the token and tickets only).
    role: Role | None = None
    # A manager-signed ticket of this scope naming this node is enough, without the token:
    # what a client holding only a key may call on a node.
    ticket_scope: Scope | None = None

    @property
    def operation_id(self) -> str:
        return _operation_id(self)

    @property
    def error_statuses(self) -> list[int]:
        """Every error status it may answer: a contract the fuzz tests hold the service to."""
        statuses = set(self.errors)
        if self.path_params or self.query or self.body is not None:
            statuses.add(400)
        if not self.public:
            statuses.add(401)
        if self.role is not None and self.role is not Role.READ:
            statuses.add(403)  # a key whose role is below it
        if self.body is not None:
            statuses.add(413)
        return sorted(statuses - set(self.replies))


@dataclass
class Api:
    """The operations of one service. With ``roles``, every route but the public ones must
    declare the least role it needs, so no route can be added without saying who may call it."""

    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    operations: list[Operation] = field(default_factory=list)
    roles: bool = False
    # (method, path template) -> its operation: what the auth middleware asks per request.
    _by_route: dict[tuple[str, str], Operation] = field(default_factory=dict)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        replies: Mapping[int, type[BaseModel] | RawBody | None],
        path_params: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | RawBody | None = None,
        body_required: bool = True,
        public: bool = False,
        ticket: bool = False,
        errors: Collection[int] = (),
        role: Role | None = None,
        ticket_scope: Scope | None = None,
    ) -> Callable[[Handler], Handler]:
        if self.roles and not public and role is None:
            raise ValueError(f"{method} {path}: declare the role it needs (role=Role....)")
        if role is not None and (public or not self.roles):
            raise ValueError(
                f"{method} {path}: only a non-public route of a service with roles has one"
            )
        operation = Operation(
            method=method,
            path=path,
            summary=summary,
            path_params=path_params,
            query=query,
            body=body,
            body_required=body_required,
            replies=replies,
            public=public,
            ticket=ticket,
            errors=frozenset(errors) | ({403} if ticket or ticket_scope else frozenset()),
            role=role,
            ticket_scope=ticket_scope,
        )

        def register(handler: Handler) -> Handler:
            self.operations.append(operation)
            self._by_route[(method, path)] = operation
            self.routes.route(method, path)(handler)
            return handler

        return register

    @property
    def public_paths(self) -> frozenset[str]:
        """The paths (templates) of the operations declared ``public=True``: served without
        the token."""
        return frozenset(op.path for op in self.operations if op.public)

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation declared for ``method`` on the route template ``path``."""
        return self._by_route.get((method, path))

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def openapi(self, *, title: str, version: str, description: str) -> Json:
        return openapi_document(
            self.operations, title=title, version=version, description=description
        )

    def serve_document(
        self, *, title: str, version: str, description: str, role: Role | None = None
    ) -> None:
        """GET /v1/openapi.json: this service's document (itself included), built once."""
        built: list[bytes] = []

        @self.get(
            "/v1/openapi.json",
            summary="This OpenAPI document",
            replies={200: OpenApiDocument},
            role=role,
        )
        async def document(_: web.Request) -> web.Response:
            if not built:
                doc = self.openapi(title=title, version=version, description=description)
                built.append(json.dumps(doc).encode())
            return web.Response(body=built[0], content_type="application/json")

    def serve_metrics(
        self,
        collect: Callable[[web.Request], Awaitable[CollectorRegistry]],
        *,
        role: Role | None = None,
    ) -> None:
        """GET /metrics: the registry ``collect`` returns (after refreshing what it reads at
        scrape time), in the Prometheus text format. It needs the token unless the service's
        config opens it (``metrics.public``)."""

        @self.get(
            METRICS_PATH,
            summary="Prometheus metrics (docs/metrics.md lists them)",
            replies={200: METRICS},
            role=role,
        )
        async def metrics(request: web.Request) -> web.Response:
            body = render(await collect(request))
            return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


# --- at the edge ----------------------------------------------------------------------------------


def invalid(exc: ValidationError, *, where: str) -> BadRequest:
    """A 400 problem naming each bad field, e.g. ``body.files.0.mtime: ...``."""
    errors = [
        {
            "loc": ".".join(part for part in (where, error_location(e["loc"])) if part),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return BadRequest(f"{first['loc']}: {first['message']}{more}", errors=errors[:20])


async def read_body(request: web.Request, *, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes before buffering it.

    With a declared length the bytes land in one buffer of that size as they arrive: one copy
    from the socket's pieces, none to join them (this is most of a node's CPU on big files).
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    if declared is not None:
        buf = bytearray(declared)
        view = memoryview(buf)
        filled = 0
        while piece := await request.content.readany():
            end = filled + len(piece)
            if end > declared:
                raise BadRequest("body is longer than its Content-Length")
            view[filled:end] = piece
            filled = end
        if filled != declared:
            raise BadRequest("body is shorter than its Content-Length")
        # A bytearray is used as bytes everywhere downstream (hashing, writing, sending).
        return buf  # type: ignore[return-value]
    grown = bytearray()
    async for piece in request.content.iter_chunked(_READ_STEP):
        grown += piece
        if len(grown) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(grown)


async def api_body(
    request: web.Request, model: type[M], *, limit: int, empty_ok: bool = False
) -> M:
    """The JSON body as ``model``; 400 naming the field if it is not one. An empty body reads as
    ``{}`` where ``empty_ok`` (operations whose every field has a default)."""
    raw = await read_body(request, limit=limit)
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, where="body") from None


def api_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(exc, where="query") from None


def api_path(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as exc:
        raise invalid(exc, where="path") from None


def reply(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


def health_reply(ok: bool, detail: str | None = None) -> web.Response:
    return reply(Health(ok=ok, detail=detail), status=200 if ok else 503)


# --- the document ---------------------------------------------------------------------------------

_PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem document; ``code`` is stable and machine-readable.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "For bad input: each field that is wrong, and why.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ERROR_STATUSES = {
    400: "Bad input: the problem names the field.",
    401: "Missing or wrong token.",
    403: "The ticket, or the role of the key, does not allow this.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    413: "The body is over its limit.",
    422: "Bytes do not match their hash.",
    502: "A peer failed.",
    503: "A peer or the service is unavailable.",
    507: "Not enough free space.",
}


def _content(
    what: type[BaseModel] | RawBody,
    refs: Mapping[Any, Json],
    mode: str,
) -> Json:
    if isinstance(what, RawBody):
        return {what.content_type: {"schema": {"type": "string", "format": "binary"}}}
    return {"application/json": {"schema": refs[(what, mode)]}}


def _parameters(model: type[BaseModel], where: str) -> list[Json]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A query string carries text: integers and booleans arrive as their JSON spelling.
        param: Json = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        out.append(param)
    return out


def openapi_document(
    operations: Sequence[Operation], *, title: str, version: str, description: str
) -> Json:
    """An OpenAPI 3.1 document of ``operations``: schemas from the models, shared problem and
    bearer-token auth."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in operations:
        if isinstance(op.body, type):
            wanted.append((op.body, "validation"))
        for what in op.replies.values():
            if isinstance(what, type):
                wanted.append((what, "serialization"))
    refs, defs = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    schemas: Json = {"Problem": _PROBLEM, **defs.get("$defs", {})}
    paths: dict[str, Json] = {}
    for op in operations:
        entry: Json = {
            "summary": op.summary,
            "operationId": _operation_id(op),
            "responses": {},
        }
        params: list[Json] = []
        if op.path_params is not None:
            params += _parameters(op.path_params, "path")
        if op.query is not None:
            params += _parameters(op.query, "query")
        if op.ticket:
            params.append(
                {
                    "name": TICKET_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "The manager-signed ticket naming this node.",
                    "schema": {"type": "string"},
                }
            )
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": _content(op.body, refs, "validation"),
            }
        for status, what in sorted(op.replies.items()):
            response: Json = {"description": _describe(status, what)}
            if what is not None:
                response["content"] = _content(what, refs, "serialization")
            entry["responses"][str(status)] = response
        for status in op.error_statuses:
            entry["responses"][str(status)] = {
                "description": _ERROR_STATUSES[status],
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        if op.public:
            entry["security"] = []
        if op.role is not None:
            entry["x-cofre-role"] = op.role.value
            entry["description"] = f"Needs role {op.role.value} or higher (a key's or the token)."
        if op.ticket_scope is not None:
            # Either the token, or a manager-signed ticket of this scope naming this node.
            entry["security"] = [{"token": []}, {"ticket": []}]
            entry["x-cofre-ticket-scope"] = op.ticket_scope.value
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "components": {
            "securitySchemes": _security_schemes(operations),
            "schemas": schemas,
        },
        "security": [{"token": []}],
        "paths": paths,
    }


def _security_schemes(operations: Sequence[Operation]) -> Json:
    schemes: Json = {"token": {"type": "http", "scheme": "bearer"}}
    if any(op.role is not None for op in operations):
        roles = "; ".join(f"{r.value}: {ROLE_MEANING[r]}" for r in Role)
        schemes["token"]["description"] = (
            "The cluster token (admin), or a key `cofre_<id>_<secret>` made by POST /v1/keys "
            f"with one role ({roles}). Each operation's x-cofre-role is the least it needs."
        )
    if any(op.ticket_scope is not None for op in operations):
        schemes["ticket"] = {
            "type": "apiKey",
            "in": "header",
            "name": TICKET_HEADER,
            "description": "A manager-signed ticket naming this node: w(rite) from an upload, "
            "r(ead) from a manifest answer.",
        }
    return schemes


def _describe(status: int, what: type[BaseModel] | RawBody | None) -> str:
    if isinstance(what, RawBody):
        return what.description
    if what is None:
        return "Done; no content."
    return (what.__doc__ or what.__name__).strip().splitlines()[0]


def _operation_id(op: Operation) -> str:
    words = [p for p in op.path.strip("/").replace("{", "").replace("}", "").split("/") if p]
    return op.method.lower() + "".join(w.replace(".", "_").title().replace("_", "") for w in words)
