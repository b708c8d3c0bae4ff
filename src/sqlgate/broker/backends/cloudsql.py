"""Cloud SQL with IAM database authentication: no role minted, no password anywhere.

Here the "lease" is the identity's own IAM database user (``alice@example.com``,
or a service account's email without ``.gserviceaccount.com``), which must
exist on the instance (``gcloud sql users create ... --type=cloud_iam_user``)
and hold the grants of its role. Minting, renewing and revoking only move the
lease record; a revoked lease ends the gateway's sessions through
:meth:`~sqlgate.broker.Broker.ended`. Upstream connections go through the
``cloud-sql-python-connector`` with ``enable_iam_auth=True``: the connector
obtains an ephemeral client certificate carrying the OAuth2 token, so the
database sees the IAM identity. One ``Connector`` per event loop (a connector
bound to another loop hangs or fails, cloud-sql-python-connector#1107).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from google.cloud.sql.connector import Connector, RefreshStrategy

from sqlgate.broker.backends.base import FoundLogin, MintSpec
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from sqlgate.identity.principal import Principal

SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"


def iam_database_user(principal: Principal) -> str:
    """The Cloud SQL (PostgreSQL) IAM database user of ``principal``: its email, service accounts shortened."""
    if not principal.email:
        raise BrokerError(
            f"{principal.name} has no email address, which Cloud SQL IAM authentication needs as the database user"
        )
    return principal.email.removesuffix(SERVICE_ACCOUNT_SUFFIX)


class CloudSqlBackend:
    """Connects identities to one Cloud SQL instance with IAM database authentication."""

    engine = "cloudsql"
    mints_logins = False

    def __init__(self, config: DatabaseConfig, *, credentials: Any = None) -> None:
        if not config.instance_connection_name:
            raise BrokerError("engine cloudsql needs instance_connection_name (project:region:instance)")
        self._config = config
        self._instance: str = config.instance_connection_name
        self._credentials = credentials
        self._connectors: dict[asyncio.AbstractEventLoop, Connector] = {}

    def login_for(self, principal: Principal) -> str:
        """The principal's IAM database user."""
        return iam_database_user(principal)

    async def prepare(self, spec: MintSpec) -> MintSpec:
        """Nothing to prepare ahead of the server."""
        return spec

    async def mint(self, spec: MintSpec) -> None:
        """Nothing to create: the IAM database user is the login."""
        del spec

    async def renew(self, login: str, expires_at: datetime) -> None:
        """Nothing on the server: the connector refreshes its certificate and token by itself."""
        del login, expires_at

    async def revoke(self, login: str) -> None:
        """Nothing to drop: the gateway ends the sessions of a revoked lease."""
        del login

    async def logins(self) -> list[FoundLogin]:
        """No minted logins, so no orphans."""
        return []

    async def rotate_admin(self, new_password: str) -> None:
        """There is no admin password with IAM authentication."""
        del new_password
        raise BrokerError("Cloud SQL IAM authentication has no admin password to rotate")

    async def restore_admin(self, old_password: str) -> None:
        """There is no admin password with IAM authentication."""
        del old_password
        raise BrokerError("Cloud SQL IAM authentication has no admin password to restore")

    def connector(self) -> Connector:
        """The connector of the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        connector = self._connectors.get(loop)
        if connector is None:
            connector = Connector(
                loop=loop,
                enable_iam_auth=True,
                credentials=self._credentials,
                sqladmin_api_endpoint=self._config.sqladmin_api_endpoint,
                refresh_strategy=RefreshStrategy.LAZY,
            )
            self._connectors[loop] = connector
        return connector

    async def connect(self, user: str, password: str | None = None, dbname: str | None = None) -> Any:
        """An asyncpg connection as IAM database user ``user`` (``password`` is never used)."""
        del password
        try:
            return await self.connector().connect_async(
                self._instance, "asyncpg", user=user, db=dbname or self._config.dbname, enable_iam_auth=True
            )
        except Exception as exc:
            raise UpstreamError(f"cannot connect to Cloud SQL instance {self._instance} as {user}: {exc}") from exc

    async def close(self) -> None:
        """Close the connector of the running loop; connectors of other loops are dropped."""
        loop = asyncio.get_running_loop()
        connectors, self._connectors = self._connectors, {}
        for owner, connector in connectors.items():
            if owner is loop:
                await connector.close_async()
