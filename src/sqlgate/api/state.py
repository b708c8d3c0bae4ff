"""What the API keeps between requests: lease pools, the grant cache, the query engine, access requests."""

from __future__ import annotations

from typing import Any

from sqlgate.api.grants import GrantCache
from sqlgate.api.pools import LeasePools
from sqlgate.api.query import QueryEngine
from sqlgate.services import Services


def _request_service(services: Services) -> Any:
    """The access-request service: the gateway's own when it has one, else one over the same store."""
    existing = getattr(services, "requests", None)
    if existing is not None:
        return existing
    try:
        from sqlgate.policy.requests import RequestService  # noqa: PLC0415 - optional until the policy package has it
    except ImportError:
        return None
    return RequestService(services.store, services.audit, services.policy)


class ApiState:
    """Per-replica state of the HTTP API and the MCP server."""

    def __init__(self, services: Services) -> None:
        settings = services.settings.api
        self.services = services
        self.requests = _request_service(services)
        self.grants = GrantCache(self.requests)
        self.pools = LeasePools(
            services.broker,
            max_size=settings.pool_size,
            default_timeout_ms=int(settings.default_timeout.total_seconds() * 1000),
        )
        self.engine = QueryEngine(services, self.pools, self.grants)

    async def close(self) -> None:
        """Close every pool."""
        await self.pools.close()
