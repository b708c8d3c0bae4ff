"""The FastAPI application: every route, problem-JSON errors, the dev issuer when enabled."""

from __future__ import annotations

from fastapi import FastAPI

from sqlgate import __version__
from sqlgate.api import problems
from sqlgate.api.routes import health
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.identity.devissuer_http import dev_issuer_router
from sqlgate.services import Services


def create_app(services: Services) -> FastAPI:
    """The HTTP API of one gateway replica, serving ``services``."""
    app = FastAPI(
        title="sqlgate",
        version=__version__,
        summary="Identity-aware gateway for SQL databases: query, credentials, access requests, audit.",
        responses=problems.PROBLEM_RESPONSES,  # type: ignore[arg-type]
    )
    app.state.services = services
    problems.install(app)
    app.include_router(health.router)
    if services.settings.identity.dev_issuer:
        app.include_router(dev_issuer_router(DevIssuer.from_settings(services.settings)))
    return app
