"""What the API keeps between requests: lease pools, the grant cache, the query engine, access requests."""

from __future__ import annotations

from sqlgate.api.grants import GrantCache
from sqlgate.api.pools import LeasePools
from sqlgate.api.query import QueryEngine
from sqlgate.audit.events import AuditEvent
from sqlgate.audit.log import AuditLog
from sqlgate.policy.requests import RequestService
from sqlgate.services import Services


class _QueuedAuditor:
    """Records request steps through the audit queue instead of waiting for the write.

    RequestService audits inside its own state-database transaction; waiting there
    for the audit writer's transaction deadlocks on SQLite (one writer at a time).
    Queued, the record is written right after the step's transaction commits.
    """

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    async def record(self, event: AuditEvent) -> None:
        """Queue ``event`` (written once the caller's transaction ends)."""
        await self._audit.submit(event)

    def enqueue(self, event: AuditEvent) -> None:
        """Queue ``event``."""
        self._audit.enqueue(event)


def _request_service(services: Services) -> RequestService:
    """The access-request service over the gateway's store, auditing through the queue (see _QueuedAuditor)."""
    return RequestService(services.store, _QueuedAuditor(services.audit), services.policy)


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
        self.pgwire_port: int | None = None

    async def close(self) -> None:
        """Close every pool."""
        self.engine.origins.close()
        await self.pools.close()
