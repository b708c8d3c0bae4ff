"""Cloud SQL IAM database authentication, through Google's ``cloud-sql-python-connector``.

One ``google.cloud.sql.connector.Connector`` per event loop, created in that loop
on first use and closed with the app — never shared across loops (the pitfall of
cloud-sql-python-connector#1107: a Connector is bound to the loop it was made in)
and never one per connection (#772). The Google connector refreshes its ephemeral
certificate and IAM token itself; connections still retire after the pool's
``max_lifetime``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlgate.connector.credentials import Credential
from sqlgate.connector.errors import GatewayUnavailable, TokenUnavailable

__all__ = ["CloudSqlIamCredentials"]


class CloudSqlIamCredentials:
    """Connections to Cloud SQL ``instance`` ("project:region:name") as IAM user ``user``.

    ``user`` is the IAM database user (a service account's email without
    ``.gserviceaccount.com``, or a person's email). ``connector_options`` go to
    ``google.cloud.sql.connector.Connector`` (``ip_type``, ``credentials``,
    ``sqladmin_api_endpoint``, ``refresh_strategy``...).
    """

    def __init__(self, instance: str, dbname: str, user: str, **connector_options: Any) -> None:
        self.instance = instance
        self.dbname = dbname
        self.user = user
        self.connector_options = connector_options
        self._connectors: dict[asyncio.AbstractEventLoop, Any] = {}

    def connector(self) -> Any:
        """The Google connector of the running event loop (made here on first use)."""
        loop = asyncio.get_running_loop()
        self._forget_closed_loops()
        existing = self._connectors.get(loop)
        if existing is not None:
            return existing
        try:
            from google.auth.exceptions import DefaultCredentialsError  # noqa: PLC0415 - optional, heavy
            from google.cloud.sql.connector import Connector  # noqa: PLC0415 - optional, heavy
        except ImportError as exc:
            raise GatewayUnavailable(
                "Cloud SQL IAM authentication needs cloud-sql-python-connector",
                hint="pip install 'cloud-sql-python-connector[asyncpg]'",
            ) from exc
        try:
            made = Connector(loop=loop, enable_iam_auth=True, **self.connector_options)
        except DefaultCredentialsError as exc:
            raise TokenUnavailable(
                f"no Google credentials for Cloud SQL IAM authentication: {exc}",
                hint="run on GCP with a service account, or set GOOGLE_APPLICATION_CREDENTIALS",
            ) from None
        self._connectors[loop] = made
        return made

    async def fetch(self) -> Credential:
        """The IAM login (the Google connector fetches and refreshes the token itself)."""
        self.connector()
        return Credential(self.instance, 3307, self.dbname, self.user, "", None, datetime.now(UTC))

    async def connect(self, credential: Credential, **kwargs: Any) -> Any:
        """One asyncpg connection through the running loop's Google connector."""
        connector = self.connector()
        return await connector.connect_async(
            credential.host, "asyncpg", user=credential.user, db=credential.dbname, enable_iam_auth=True, **kwargs
        )

    async def aclose(self) -> None:
        """Close the running loop's Google connector and forget those of closed loops."""
        loop = asyncio.get_running_loop()
        connector = self._connectors.pop(loop, None)
        if connector is not None:
            await connector.close_async()
        self._forget_closed_loops()

    @property
    def open_loops(self) -> int:
        """How many event loops hold a Google connector now."""
        return len(self._connectors)

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._connectors if loop.is_closed()]:
            del self._connectors[loop]

    def __repr__(self) -> str:
        return f"CloudSqlIamCredentials({self.instance!r}, {self.dbname!r}, {self.user!r})"
