"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from sqlgate.api.deps import ServicesDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness."""

    status: str = Field(description="`ok` while the process serves requests.")


class Readiness(BaseModel):
    """Readiness, with each check."""

    ready: bool = Field(description="True when every check passes.")
    checks: dict[str, Any] = Field(description="Each check by name: state database, issuers' keys, databases, policy.")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> Any:
    """Ready to serve: not draining, state database answers, issuers' keys fresh, databases reachable, policy loaded."""
    if services.draining:  # SIGTERM: load balancers stop sending new clients while sessions finish
        body = Readiness(ready=False, checks={"draining": True})
        return JSONResponse(body.model_dump(), status_code=503)
    checks: dict[str, Any] = {
        "state_database": await services.store.ping(),
        "issuers": services.authenticator.health(),
        "policy": {"loaded": services.policy.loaded_at is not None, "error": services.policy.last_error},
        "databases": await _databases_reachable(services),
    }
    ready = (
        checks["state_database"]
        and all(checks["issuers"].values())
        and checks["policy"]["error"] is None
        and all(checks["databases"].values())
    )
    body = Readiness(ready=bool(ready), checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _databases_reachable(services: ServicesDep) -> dict[str, bool]:
    async def reachable(host: str, port: int) -> bool:
        try:
            async with asyncio.timeout(2):
                _reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    aliases = [a for a, c in services.settings.databases.items() if c.engine != "cloudsql"]
    results = await asyncio.gather(
        *(reachable(services.settings.databases[a].host, services.settings.databases[a].port) for a in aliases)
    )
    return dict(zip(aliases, results, strict=True))


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics() -> Response:
    """Prometheus metrics of this replica."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
