"""The web console at ``/ui``: server-rendered pages over the same services as the JSON API.

People who approve, review and audit use it in a browser: sign in (``signin``), see and ask for
access and decide requests (``access``), end live sessions, search and verify the audit log and
read and explain the policy (``admin``). Pages are Jinja2 templates (``templates/``); htmx (vendored
in ``static/``, no CDN) swaps parts of a page; every page works without JavaScript too. The
plumbing — cookie, CSRF, Content-Security-Policy, refusals as pages — is in ``web``; sign-in state
is kept server-side (``sessions``). No rule lives here: each action calls the service the API calls.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Response

from sqlgate.api.state import ApiState
from sqlgate.console import access, admin, signin
from sqlgate.console.sessions import ConsoleSessions
from sqlgate.console.web import PREFIX, Console, ConsoleRoute, Refused, redirect
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.services import Services

STATIC = Path(__file__).parent / "static"
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

static_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


@static_router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """One of the console's own assets (a fixed set of files, read once)."""
    found = _ASSETS.get(name)
    if found is None:
        raise HTTPException(404)
    body, media = found
    return Response(body, media_type=media, headers={"cache-control": "public, max-age=3600"})


fallback_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


@fallback_router.api_route("/{rest:path}", methods=["GET", "POST"])
async def not_found(rest: str) -> Response:
    """Any other path under ``/ui``: a page saying so (registered last); ``/ui/`` is ``/ui``."""
    if not rest:
        return redirect(PREFIX)
    raise Refused(f"There is no console page at {PREFIX}/{rest}.", 404)


def _load_assets() -> dict[str, tuple[bytes, str]]:
    return {path.name: (path.read_bytes(), _MEDIA[path.suffix]) for path in STATIC.iterdir() if path.suffix in _MEDIA}


_ASSETS = _load_assets()


def mount(app: FastAPI, services: Services, api: ApiState) -> Console:
    """Serve the console on ``app`` under ``/ui``, over ``services`` and the API's state."""
    dev = DevIssuer.from_settings(services.settings) if services.settings.identity.dev_issuer else None
    console = Console(services, api, ConsoleSessions(services.store), dev_issuer=dev)
    app.state.console = console
    services.on_close.append(console.close)
    for router in (static_router, signin.router, access.router, admin.router, fallback_router):
        app.include_router(router)
    return console


__all__ = ["mount"]
