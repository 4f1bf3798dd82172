"""The web explorer's static files: HTML, CSS and JavaScript served next to the API.

The explorer is a pure client of `/api/v1` (docs/api.md): nothing about the ledger is
rendered here, so the page checks every claim (signature, leaf hash, inclusion proof) with
WebCrypto itself rather than trusting the server that sent it. The files are read once at
start-up and served from memory under a strict Content-Security-Policy (only this origin),
which also keeps ledger text that a page displays from ever running as code.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

PREFIX = "/explorer"

# Only this origin, no inline script or style, no plugins, not framed, no form posts.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

# name in the package directory -> content type; nothing else under PREFIX is served
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _load() -> dict[str, bytes]:
    """Read the static files now, so a broken install fails at start-up, not on a click."""
    folder = resources.files("modelchain.server").joinpath("explorer")
    return {name: folder.joinpath(name).read_bytes() for name in FILES}


def mount_explorer(app: FastAPI) -> None:
    """Serve the explorer at /explorer/ and send / there."""
    files = _load()

    async def home(_request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307, headers=HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        if name not in files:
            raise StarletteHTTPException(404, f"no such explorer file: {name}")
        return Response(files[name], media_type=FILES[name], headers=HEADERS)

    for path, endpoint in (
        ("/", home),
        (PREFIX, home),
        (PREFIX + "/", static),
        (PREFIX + "/{name}", static),
    ):
        app.add_route(path, endpoint, methods=["GET", "HEAD"], include_in_schema=False)
