"""A reverse proxy in front of the manager that fails upload commits on purpose, on loopback.

``hold``: a commit is never forwarded and never answered (the client can be killed while its
commit is in flight, its manifest already stored). ``drop``: a commit is forwarded, the
manager's answer read, and the connection closed without it (the answer is lost). ``on_create``
runs on the answer to an upload's create before the client gets it. Everything else goes
through unchanged.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

Mode = Literal["hold", "drop", "pass"]
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        mode: Mode,
        on_create: Callable[[dict[str, Any]], None] | None = None,
        tls_dir: Path | None = None,
    ) -> None:
        """``tls_dir``: a local cluster's TLS files; the proxy then serves HTTPS with the
        cluster's certificate and verifies the upstream with its CA, like any client."""
        self.upstream = upstream.rstrip("/")
        self.tls_dir = tls_dir
        self.mode = mode
        self.on_create = on_create
        self.url = ""
        self.commits: list[dict[str, Any]] = []  # bodies of the commits seen
        self.answered: list[int] = []  # statuses the manager gave the commits ("drop")
        self.seen: list[str] = []  # "METHOD path" of every request
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._release = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        assert self._started.wait(30), "the proxy did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        client_tls: ssl.SSLContext | bool = True
        server_tls: ssl.SSLContext | None = None
        if self.tls_dir is not None:
            client_tls = ssl.create_default_context(cafile=self.tls_dir / "ca.crt")
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(self.tls_dir / "server.pem")
        connector = aiohttp.TCPConnector(ssl=client_tls)
        async with aiohttp.ClientSession(connector=connector) as session:
            app = web.Application(client_max_size=64 << 20)

            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._handle(request, session)

            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"{'https' if server_tls else 'http'}://127.0.0.1:{port}"
            self._started.set()
            await self._release.wait()
            await runner.cleanup()

    async def _handle(
        self, request: web.Request, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(f"{request.method} {request.path}")
        commit = request.method == "POST" and request.path.endswith("/commit")
        if commit and self.mode != "pass":
            self.commits.append(json.loads(body))
            if self.mode == "hold":
                await self._release.wait()
                raise web.HTTPServiceUnavailable()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            answer = await resp.read()
            if self.on_create and request.method == "POST" and request.path == "/v1/uploads":
                await asyncio.to_thread(self.on_create, json.loads(answer))
            if commit and self.mode == "drop":
                self.answered.append(resp.status)
                assert request.transport is not None
                request.transport.close()  # the answer is lost on the way back
                return web.Response(status=204)
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=resp.status, body=answer, headers=out)
