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
# Paths served without the token: kubelet probes carry none.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})


def public_paths(*, metrics_public: bool) -> frozenset[str]:
    """The paths a service serves without the token: the probes, and /metrics where its config
    opens it to the scrapers inside the cluster (``metrics.public``)."""
    return PUBLIC_PATHS | {METRICS_PATH} if metrics_public else PUBLIC_PATHS


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


def auth_middleware(token: str, *, public: Collection[str] = PUBLIC_PATHS) -> Middleware:
    """Require ``Authorization: Bearer <token>`` everywhere but the ``public`` paths."""
    expected = f"Bearer {token}".encode()
    open_paths = frozenset(public)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in open_paths:
            given = request.headers.get(AUTH_HEADER, "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("missing or wrong cluster token")
        return await handler(request)

    return middleware
