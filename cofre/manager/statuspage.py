"""The live status page: static HTML, CSS and JavaScript from ``cofre/manager/web/``.

The files hold no data, so they are public; the page's script reads the token-protected JSON API
with the token the user types in, and only ever issues GETs. The Content-Security-Policy keeps
the page from loading or sending anything to another origin.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from cofre.protocol.api import Api, Handler, RawBody

# path -> (file in web/, content type, what it is)
PAGE_FILES: dict[str, tuple[str, str, str]] = {
    "/": ("index.html", "text/html", "The status page"),
    "/ui/status.css": ("status.css", "text/css", "The status page's style sheet"),
    "/ui/status.js": ("status.js", "text/javascript", "The status page's script"),
}

HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def read_file(name: str) -> bytes:
    return (resources.files("cofre.manager") / "web" / name).read_bytes()


def _serve(name: str, content_type: str) -> Handler:
    # Read at the first request, not at import: the manager starts even if a file is missing.
    cached: list[bytes] = []

    async def handler(_: web.Request) -> web.Response:
        if not cached:
            cached.append(read_file(name))
        return web.Response(
            body=cached[0], content_type=content_type, charset="utf-8", headers=HEADERS
        )

    return handler


def declare(api: Api) -> None:
    """Add the page's routes to ``api`` (public: they carry no data)."""
    for path, (name, content_type, what) in PAGE_FILES.items():
        api.get(
            path,
            summary=what + " (public; its data comes from the API below)",
            replies={200: RawBody(content_type, what)},
            public=True,
        )(_serve(name, content_type))
