"""The FastAPI application: every route, problem-JSON errors, the dev issuer when enabled, MCP at ``/mcp``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from sqlgate import __version__
from sqlgate.api import mcp, problems
from sqlgate.api.fastpath import QueryFastPath
from sqlgate.api.mcp import McpEndpoint
from sqlgate.api.middleware import ApiMiddleware
from sqlgate.api.routes import access, audit, health, query, requests, sessions
from sqlgate.api.state import ApiState
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.identity.devissuer_http import dev_issuer_router
from sqlgate.services import Services


def create_app(services: Services, *, pgwire_port: int | None = None) -> FastAPI:
    """The HTTP API of one gateway replica, serving ``services``; ``pgwire_port``: the bound pgwire port."""
    app = FastAPI(
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
    endpoint = McpEndpoint(api)
    services.on_close.append(endpoint.close)
    app.router.routes.append(Route(mcp.PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    app.add_middleware(QueryFastPath, api=api)  # inside ApiMiddleware: the body limit and metrics apply
    app.add_middleware(ApiMiddleware, max_body_bytes=services.settings.api.max_body_bytes)
    return app
