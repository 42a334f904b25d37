"""The wire protocol: HTTP/JSON between CLI, manager, nodes and operator.

``server`` holds what both services put in front of their handlers (auth, error problems,
OpenAPI); ``client`` holds typed async clients for the manager and the nodes.
"""

from cofre.protocol.client import ManagerClient, NodeClient, open_session
from cofre.protocol.server import (
    AUTH_HEADER,
    TICKET_HEADER,
    auth_middleware,
    error_middleware,
    openapi_route,
)

__all__ = [
    "AUTH_HEADER",
    "TICKET_HEADER",
    "ManagerClient",
    "NodeClient",
    "auth_middleware",
    "error_middleware",
    "open_session",
    "openapi_route",
]
