"""Cloud SQL with IAM database authentication: no role minted, no password anywhere.

Here the "lease" login is an IAM database user, which must exist on the
instance (``gcloud sql users create ... --type=cloud_iam_user`` /
``--type=cloud_iam_service_account``) and hold the grants of its role:

- without ``service_accounts``: the identity's own (``alice@example.com``, or a
  service account's email without ``.gserviceaccount.com``). The ephemeral
  certificate then carries the gateway's own Google identity, so a real
  instance admits only the gateway's own IAM database user;
- with ``service_accounts`` (privilege level -> service account): the service
  account's of the granted level, which the gateway impersonates (see
  :mod:`sqlgate.cloudsql`); the caller stays named in the lease and the audit log.

The login is kept in its PostgreSQL form; Cloud SQL for MySQL knows the same
user by the part before ``@``, which the MySQL listener uses. Minting, renewing
and revoking only move the lease record; a revoked lease ends the gateway's
sessions through :meth:`~sqlgate.broker.Broker.ended`. Driver connections
(``connect``, for the HTTP API) go through the ``cloud-sql-python-connector``
with ``enable_iam_auth=True``, with the impersonated service account's
credentials where one is configured. One ``Connector`` per event loop and
identity (a connector bound to another loop hangs or fails,
cloud-sql-python-connector#1107).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from google.cloud.sql.connector import Connector, RefreshStrategy

from sqlgate.broker.backends.base import FoundLogin, MintSpec
from sqlgate.cloudsql import DEFAULT_IAM_ENDPOINT, LOGIN_SCOPE
from sqlgate.cloudsql import iam_database_user as engine_user
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from sqlgate.identity.principal import Principal


def iam_database_user(principal: Principal) -> str:
    """The Cloud SQL (PostgreSQL) IAM database user of ``principal``: its email, service accounts shortened."""
    if not principal.email:
        raise BrokerError(
            f"{principal.name} has no email address, which Cloud SQL IAM authentication needs as the database user"
        )
    return engine_user(principal.email, "POSTGRES")


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
        self._connectors: dict[tuple[asyncio.AbstractEventLoop, str | None], Connector] = {}

    def login_for(self, principal: Principal, privilege: str) -> str:
        """The IAM database user of ``privilege``'s service account when configured, else the principal's own."""
        service_account = self._config.service_accounts.get(privilege)
        if service_account is not None:
            return engine_user(service_account, "POSTGRES")
        return iam_database_user(principal)

    def _service_account_of(self, login: str) -> str | None:
        for email in self._config.service_accounts.values():
            if engine_user(email, "POSTGRES") == login:
                return email
        return None

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

    def connector(self, service_account: str | None = None) -> Connector:
        """The connector of the running event loop for ``service_account`` (None: the gateway's own identity)."""
        loop = asyncio.get_running_loop()
        connector = self._connectors.get((loop, service_account))
        if connector is None:
            credentials = self._credentials
            if service_account is not None:
                credentials = self._impersonated(service_account)
            connector = Connector(
                loop=loop,
                enable_iam_auth=True,
                credentials=credentials,
                sqladmin_api_endpoint=self._config.sqladmin_api_endpoint,
                refresh_strategy=RefreshStrategy.LAZY,
            )
            self._connectors[(loop, service_account)] = connector
        return connector

    def _impersonated(self, service_account: str) -> Any:
        import google.auth  # noqa: PLC0415
        from google.auth import impersonated_credentials  # noqa: PLC0415

        source = self._credentials
        if source is None:
            source, _project = google.auth.default()
        endpoint = (self._config.iam_credentials_endpoint or DEFAULT_IAM_ENDPOINT).rstrip("/")
        return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=source,
            target_principal=service_account,
            target_scopes=[LOGIN_SCOPE, "https://www.googleapis.com/auth/sqlservice.admin"],
            iam_endpoint_override=f"{endpoint}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
        )

    async def connect(self, user: str, password: str | None = None, dbname: str | None = None) -> Any:
        """An asyncpg connection as IAM database user ``user`` (``password`` is never used)."""
        del password
        try:
            connector = self.connector(self._service_account_of(user))
            return await connector.connect_async(
                self._instance, "asyncpg", user=user, db=dbname or self._config.dbname, enable_iam_auth=True
            )
        except Exception as exc:
            raise UpstreamError(f"cannot connect to Cloud SQL instance {self._instance} as {user}: {exc}") from exc

    async def close(self) -> None:
        """Close the connectors of the running loop; connectors of other loops are dropped."""
        loop = asyncio.get_running_loop()
        connectors, self._connectors = self._connectors, {}
        for (owner, _account), connector in connectors.items():
            if owner is loop:
                await connector.close_async()
