"""The FastAPI application: every route, problem-JSON errors, the dev issuer when enabled, MCP at ``/mcp``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sqlgate import __version__, console
from sqlgate.api import mcp, problems
from sqlgate.api.fastpath import QueryFastPath
from sqlgate.api.mcp import McpEndpoint
from sqlgate.api.middleware import ApiMiddleware
from sqlgate.api.routes import access, audit, health, query, requests, sessions
from sqlgate.api.state import ApiState
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.identity.devissuer_http import dev_issuer_router
from sqlgate.services import Services


class GatewayApp(FastAPI):
    """FastAPI behind the API's own outer layers: body limit and metrics, then the ``/v1/query`` fast path.

    Both sit outside FastAPI's middleware stack, so a plain JSON query pays for no
    layer it does not use; every other request goes through FastAPI as usual.
    """

    outer: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, connection or lifespan."""
        if self.outer is None:
            await super().__call__(scope, receive, send)
        else:
            await self.outer(scope, receive, send)

    async def inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself, under the outer layers."""
        await super().__call__(scope, receive, send)


def create_app(services: Services, *, pgwire_port: int | None = None) -> FastAPI:
    """The HTTP API of one gateway replica, serving ``services``; ``pgwire_port``: the bound pgwire port."""
    app = GatewayApp(
        title="sqlgate",
        version=__version__,
        summary="Identity-aware gateway for SQL databases: query, credentials, access requests, audit.",
        responses=problems.PROBLEM_RESPONSES,
    )
    app.state.services = services
    api = ApiState(services)
    api.pgwire_port = pgwire_port
    app.state.api = api
    services.on_close.append(api.close)
    problems.install(app)
    app.include_router(health.router)
    for module in (query, access, requests, sessions, audit):
        app.include_router(module.router)
    if services.settings.identity.dev_issuer:
        app.include_router(dev_issuer_router(DevIssuer.from_settings(services.settings)))
    console.mount(app, services, api)  # the web console at /ui, over the same services
    endpoint = McpEndpoint(api)
    services.on_close.append(endpoint.close)
    app.router.routes.append(Route(mcp.PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    app.outer = ApiMiddleware(QueryFastPath(app.inner, api), max_body_bytes=services.settings.api.max_body_bytes)
    return app
