"""aiohttp pieces both services share: domain errors as JSON problems, the application."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from cofre.aio import cancel_all
from cofre.config import ConfigError, TlsConfig
from cofre.errors import BadRequest, CofreError
from cofre.limits import MAX_REQUEST_LINE_BYTES
from cofre.protocol.base import AUTH_HEADER, TICKET_HEADER
from cofre.tls import CertReloader

log = logging.getLogger(__name__)

__all__ = ["AUTH_HEADER", "TICKET_HEADER", "error_middleware"]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A log line quotes at most this much of what a peer sent.
_QUOTE_CHARS = 120


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line or header over its limits, bad
    framing) as an ERROR with a traceback; it is the peer's mistake, answered 400 already: one
    INFO line instead (DEBUG where aiohttp chose DEBUG). Anything else aiohttp logs is left as
    it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
            record.msg = "malformed request refused peer=%s status=%d error=%s"
            record.args = (peer, exc.code, _one_line(exc.message))
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            # Non-HTTP bytes on a fresh connection (TLS, scanners) aiohttp logs at DEBUG.
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# aiohttp's request handler logs to this logger (not aiohttp.server): the apps pass it through
# ``web.Application(handler_args=HANDLER_ARGS)``, so run_app and test servers behave alike.
http_log = logging.getLogger(__name__ + ".http")
http_log.addFilter(_MalformedRequestFilter())
HANDLER_ARGS: dict[str, Any] = {"logger": http_log, "max_line_size": MAX_REQUEST_LINE_BYTES}


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUOTE_CHARS else flat[:_QUOTE_CHARS] + "..."


def _peer_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


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
    except RecursionError:
        # Input nested deeper than Python recurses (JSON 100,000 brackets deep): the client's
        # mistake. Nothing but parsing what a client sent recurses that deep.
        log.info("request nests too deeply method=%s path=%s", request.method, request.path)
        return problem_response(BadRequest("request body nests too deeply"))
    except Exception as exc:
        # Only our own client's connection counts: a node the handler called hanging up is a
        # server error like any other.
        if isinstance(exc, ConnectionError) and _peer_gone(request):
            log.info(
                "client hung up mid-request method=%s path=%s error=%s",
                request.method,
                request.path,
                exc,
            )
            # Nobody reads this answer; aiohttp drops it quietly as the transport is closed.
            return problem_response(BadRequest("client closed the connection"))
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return problem_response(CofreError("internal error; see the service log"))


def service_app(
    *,
    auth: Middleware,
    metrics_middleware: Middleware,
    client_max_size: int,
) -> web.Application:
    """The aiohttp application of a service, with what every service puts in front of its
    handlers, outermost first: request metrics, problem documents for errors, who may call what
    (``cofre.protocol.auth``), and aiohttp's own logging of malformed requests kept to one
    line."""
    return web.Application(
        middlewares=[metrics_middleware, error_middleware, auth],
        client_max_size=client_max_size,
        handler_args=HANDLER_ARGS,
    )


def serving_tls(app: web.Application, tls: TlsConfig) -> ssl.SSLContext | None:
    """The context a service listens with (None: plain HTTP), kept in step with its
    certificate files by a background task of ``app``; ConfigError when they cannot be used."""
    if not tls.enabled:
        return None
    try:
        reloader = CertReloader(cert_file=Path(tls.cert_file), key_file=Path(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"COFRE_TLS_CERT_FILE/COFRE_TLS_KEY_FILE ({tls.cert_file}, {tls.key_file}) cannot "
            f"be used: {exc}"
        ) from None

    async def reload_ctx(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(reloader.run(), name="tls-reload")
        yield
        await cancel_all([task], 5.0)

    app.cleanup_ctx.append(reload_ctx)
    log.info("serving https cert_file=%s", tls.cert_file)
    return reloader.context
