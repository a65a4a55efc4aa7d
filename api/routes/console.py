"""The live console: a static page (HTML, JS, CSS under api/console/), no build step, no CDN.

The page holds no data and needs no key to load; it asks for the key, keeps it in the tab's
sessionStorage, sends it as a bearer header to the JSON routes and trades it for a short-lived
stream token for the EventSource (see docs/api.md). A strict Content-Security-Policy allows only
this origin's scripts and connections.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
FILES = {"app.js": "text/javascript", "style.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console")
async def console() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/console/{name}")
async def console_file(name: str) -> FileResponse:
    if name not in FILES:
        raise HTTPException(404, f"no console file {name!r}")
    return FileResponse(CONSOLE_DIR / name, media_type=FILES[name], headers=HEADERS)
