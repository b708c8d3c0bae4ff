"""What the API keeps between requests: lease pools, the grant cache, the query engine, access requests."""

from __future__ import annotations

from sqlgate.api.pools import LeasePools
from sqlgate.api.query import QueryEngine
from sqlgate.services import Services


class ApiState:
    """Per-replica state of the HTTP API and the MCP server."""

    def __init__(self, services: Services) -> None:
        settings = services.settings.api
        self.services = services
        self.requests = services.requests
        self.pools = LeasePools(
            services.broker,
            max_size=settings.pool_size,
            default_timeout_ms=int(settings.default_timeout.total_seconds() * 1000),
        )
        self.engine = QueryEngine(services, self.pools)
        self.pgwire_port: int | None = None

    async def close(self) -> None:
        """Close every pool."""
        await self.pools.close()
