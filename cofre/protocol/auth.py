"""Who may call what, in one middleware both services put in front of their handlers.

A request names its caller with ``Authorization: Bearer <cluster token or key>``. The cluster
token is admin; a key (``cofre.protocol.access``) carries the role it was made with, looked up
by the service that knows keys (the manager). Each operation's declaration says what it needs
(``Api.route``): nothing (``public``), a role (``role``: the manager's routes), or on a node,
where a client holds no token, a manager-signed ticket of a scope (``ticket_scope``). There is
no second list of paths to keep: the middleware reads the declarations.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from cofre.errors import RoleRefused, Unauthorized
from cofre.protocol.access import CLUSTER_TOKEN, ParsedKey, Principal, parse_key
from cofre.protocol.api import Api, Operation
from cofre.protocol.metrics import METRICS_PATH
from cofre.protocol.server import AUTH_HEADER, TICKET_HEADER, Handler
from cofre.tickets import Scope

log = logging.getLogger(__name__)

# Who sent the request, for handlers that care (the key that made a key, the log).
PRINCIPAL = web.RequestKey("principal", Principal)

# A key's row by its id (None: no such key, or the secret does not match).
KeyLookup = Callable[[ParsedKey], Awaitable[Principal | None]]
# Checks the request's ticket for this scope on this node; raises Forbidden otherwise.
TicketCheck = Callable[[web.Request, Scope], None]
# Told of every refusal by role: (who, what it asked for); counts it.
Refused = Callable[[Principal, Operation], None]

_BEARER = "Bearer "


def auth_middleware(
    api: Api,
    *,
    token: str,
    metrics_public: bool,
    keys: KeyLookup | None = None,
    tickets: TicketCheck | None = None,
    refused: Refused | None = None,
) -> Middleware:
    """Require a caller everywhere but on the public operations (and /metrics where the
    service's config opens it to scrapers), and the role each operation declares.

    A request for no declared operation (an unknown path, a wrong method) still needs a caller,
    so that what is served is not probed without one.
    """
    expected = token.encode()

    async def caller(request: web.Request) -> Principal | None:
        header = request.headers.get(AUTH_HEADER, "")
        given = header[len(_BEARER) :] if header.startswith(_BEARER) else ""
        if hmac.compare_digest(given.encode(), expected):
            return CLUSTER_TOKEN
        parsed = parse_key(given) if keys is not None else None
        if parsed is None or keys is None:
            return None
        return await keys(parsed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        op = None if resource is None else api.operation(request.method, resource.canonical)
        if op is not None and (op.public or (metrics_public and op.path == METRICS_PATH)):
            return await handler(request)
        who = await caller(request)
        if who is None:
            scope = None if op is None else op.ticket_scope
            if scope is not None and tickets is not None and request.headers.get(TICKET_HEADER):
                tickets(request, scope)  # raises Forbidden unless it allows this
                return await handler(request)
            raise Unauthorized("missing or wrong cluster token or key")
        if op is not None and op.role is not None and not who.role.allows(op.role):
            if refused is not None:
                refused(who, op)
            log.info(
                "refused key=%s role=%s operation=%s needs=%s",
                who.name,
                who.role.value,
                op.operation_id,
                op.role.value,
            )
            raise RoleRefused(
                f"key {who.name!r} has role {who.role.value}; {op.method} {op.path} needs role "
                f"{op.role.value}",
                key=who.name,
                role=who.role.value,
                needed=op.role.value,
            )
        request[PRINCIPAL] = who
        return await handler(request)

    return middleware
