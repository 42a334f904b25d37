"""A tiny aiohttp app for the dev cluster's smoke tests: answers with its pod name."""

import os
import socket

from aiohttp import web


async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"hello from {socket.gethostname()}\n")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def main() -> None:
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8080")), print=None)


if __name__ == "__main__":
    main()
