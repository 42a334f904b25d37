"""aiohttp pieces both services share: token auth, and domain errors as JSON problems."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

from cofre.errors import CofreError, Unauthorized
from cofre.protocol.metrics import METRICS_PATH

log = logging.getLogger(__name__)

AUTH_HEADER = "Authorization"  # "Bearer <cluster token>"
TICKET_HEADER = "X-Cofre-Ticket"


def public_paths(declared: Collection[str], *, metrics_public: bool) -> frozenset[str]:
    """The route templates a service serves without the token: those its operations declare
    public (``Api.public_paths``), and /metrics where its config opens it to the scrapers inside
    the cluster (``metrics.public``)."""
    return frozenset(declared) | ({METRICS_PATH} if metrics_public else frozenset())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(error: CofreError) -> web.Response:
    return web.json_response(
        error.to_problem(), status=error.status, content_type="application/problem+json"
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors (and stray exceptions) into problem documents."""
    try:
        return await handler(request)
    except CofreError as exc:
        if exc.status >= 500:
            log.warning(
                "request failed method=%s path=%s error=%s",
                request.method,
                request.path,
                exc.detail,
            )
        return problem_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {
            "type": "about:blank",
            "title": exc.reason,
            "status": exc.status,
            "detail": exc.text or exc.reason,
            "code": "http_" + str(exc.status),
        }
        return web.json_response(body, status=exc.status, content_type="application/problem+json")
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return problem_response(CofreError("internal error; see the service log"))


def auth_middleware(token: str, *, public_paths: Collection[str]) -> Middleware:
    """Require ``Authorization: Bearer <token>`` everywhere but on ``public_paths``: the routes
    declared ``public=True`` (``Api.public_paths``: health probes, which kubelets send without a
    token, and the status page's static files). A path matches by its route's template."""
    expected = f"Bearer {token}".encode()
    public = frozenset(public_paths)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or resource.canonical not in public:
            given = request.headers.get(AUTH_HEADER, "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("missing or wrong cluster token")
        return await handler(request)

    return middleware
