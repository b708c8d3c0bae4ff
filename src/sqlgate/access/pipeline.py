"""The access pipeline of one gateway: the steps every front end calls, built once from its services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlgate.access.authenticate import Authentication
from sqlgate.access.decide import Decisions
from sqlgate.access.masking import MaskingService

if TYPE_CHECKING:
    from sqlgate.identity.principal import Principal
    from sqlgate.services import Services


class AccessPipeline:
    """Authenticate, authorize, mask: shared by the wire proxy, the HTTP API, MCP and the console.

    Checking a statement and its record's bounds live in :mod:`sqlgate.access.statements`
    (pure functions, called per statement).
    """

    def __init__(self, services: Services) -> None:
        self.authentication = Authentication(services.authenticator, services.audit, services.settings.auth.failures)
        services.on_close.append(self.authentication.aclose)  # open failed-login summaries are recorded
        self.decisions = Decisions(services.decide_with_grants, services.audit)
        self.masking = MaskingService(services.deployment_id.encode())

    async def authenticate(self, token: str, source: str | None, *, protocol: str) -> Principal:
        """See :meth:`Authentication.authenticate`."""
        return await self.authentication.authenticate(token, source, protocol=protocol)
