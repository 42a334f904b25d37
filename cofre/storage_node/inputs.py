"""What a node checks in a request beyond its models: the ticket that allows a chunk write.

Bodies, queries and paths are parsed into the models of ``cofre.protocol.node_api`` at the edge;
nothing a request carries becomes a path except a chunk hash those models validated.
"""

from __future__ import annotations

from aiohttp import web

from cofre.errors import Forbidden
from cofre.models import NodeId, UploadId
from cofre.protocol.server import TICKET_HEADER
from cofre.tickets import Scope, Ticket, ticket_key


def verify_ticket(
    request: web.Request,
    *,
    token: str,
    node_id: NodeId,
    upload_id: UploadId | None = None,
    scope: Scope = Scope.WRITE,
) -> Ticket:
    """The request's ticket, checked for this node and scope (and the upload, when given); 403
    otherwise."""
    text = request.headers.get(TICKET_HEADER)
    if not text:
        raise Forbidden(f"chunk writes need an {TICKET_HEADER} header")
    ticket = Ticket.verify(text, ticket_key(token), node_id=node_id, scope=scope)
    if upload_id is not None and ticket.upload_id != upload_id:
        raise Forbidden(f"ticket is for another upload than {upload_id}")
    return ticket
