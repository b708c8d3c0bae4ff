"""Database credentials and the sources that give them.

A :class:`CredentialSource` gives a :class:`Credential` (where to connect, as whom,
until when) and opens connections with it. Two sources live here:

- :class:`GatewayCredentials` — asks a sqlgate gateway (``POST /v1/credentials``
  with the app's workload token) for a short-lived login minted for this app
  (refused, :class:`GatewayDenied`, when the app's grant carries masking or
  guardrails and its rule does not say ``direct_login: true``);
- :class:`TokenAsPassword` — a PostgreSQL that takes an identity token as the
  password (the sqlgate pgwire listener, RDS IAM style).

Cloud SQL IAM authentication is in :mod:`sqlgate.connector.cloudsql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx

from sqlgate.connector.errors import GatewayDenied, GatewayUnavailable, TokenRefused
from sqlgate.connector.identity import IdentitySource

__all__ = ["Credential", "CredentialSource", "GatewayCredentials", "TokenAsPassword"]


@dataclass(frozen=True)
class Credential:
    """A database login: where, as whom, and until when (``expires_at`` None: no known end)."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    expires_at: datetime | None = None
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    def remaining(self, now: datetime | None = None) -> float | None:
        """Seconds until expiry (None when the credential states no end)."""
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()

    @property
    def lifetime(self) -> float | None:
        """Seconds between issue and expiry (None when the credential states no end)."""
        if self.expires_at is None:
            return None
        return max(0.0, (self.expires_at - self.issued_at).total_seconds())


@runtime_checkable
class CredentialSource(Protocol):
    """Gives credentials and opens connections with them."""

    async def fetch(self) -> Credential:
        """A fresh credential; raises a :class:`~sqlgate.connector.errors.ConnectorError` naming the cause."""
        ...

    async def connect(self, credential: Credential, **kwargs: Any) -> Any:
        """Open one asyncpg connection with ``credential`` (``kwargs`` go to ``asyncpg.connect``)."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (HTTP clients, Cloud SQL connectors)."""
        ...


class DirectConnect:
    """Connects with ``asyncpg.connect`` to the credential's host and port."""

    ssl: Any = None

    async def connect(self, credential: Credential, **kwargs: Any) -> Any:
        """Open one connection with ``credential``."""
        kwargs.setdefault("ssl", self.ssl)
        return await asyncpg.connect(
            host=credential.host,
            port=credential.port,
            database=credential.dbname,
            user=credential.user,
            password=credential.password,
            **kwargs,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class GatewayCredentials(DirectConnect):
    """Short-lived logins from a sqlgate gateway, asked for with the app's own token.

    ``url`` is the gateway's HTTP base URL, ``database`` the alias in its config,
    ``role`` the role name in policy (None: the policy's default), ``ttl`` how long
    (``"15m"`` or seconds; None: the policy's default). ``ssl`` goes to asyncpg.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        url: str,
        database: str,
        role: str | None = None,
        *,
        identity: IdentitySource,
        ttl: str | int | None = None,
        ssl: Any = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.role = role
        self.identity = identity
        self.ttl = ttl
        self.ssl = ssl
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def fetch(self) -> Credential:
        """Ask the gateway for a login now."""
        token = await self.identity.token()
        body = {"database": self.database, "role": self.role, "ttl": self.ttl}
        try:
            response = await self._client.post(
                "/v1/credentials", json=body, headers={"Authorization": f"Bearer {token.value}"}
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(
                f"the sqlgate gateway at {self.url} is unreachable: {type(exc).__name__}",
                hint="check the gateway URL and that the gateway is running",
            ) from None
        if response.status_code != 200:
            raise _gateway_error(response, self.url, self.database)
        return _credential_from(response, self.url)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"GatewayCredentials({self.url!r}, {self.database!r}, role={self.role!r})"


class TokenAsPassword(DirectConnect):
    """A PostgreSQL that takes the identity token as the password (sqlgate pgwire, RDS IAM style).

    The credential lives as long as the token says (its ``exp``), or ``max_lifetime``
    seconds when the token does not say.
    """

    password_is_token = True

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        host: str,
        port: int,
        dbname: str,
        user: str,
        *,
        identity: IdentitySource,
        ssl: Any = None,
        max_lifetime: float = 900.0,
    ) -> None:
        self.host = host
        self.port = port
        self.dbname = dbname
        self.user = user
        self.identity = identity
        self.ssl = ssl
        self.max_lifetime = max_lifetime

    async def fetch(self) -> Credential:
        """The current token, as a credential."""
        token = await self.identity.token()
        now = datetime.now(UTC)
        expires_at = token.expires_at or now + timedelta(seconds=self.max_lifetime)
        return Credential(self.host, self.port, self.dbname, self.user, token.value, expires_at, now)

    def __repr__(self) -> str:
        return f"TokenAsPassword({self.host!r}, {self.port}, {self.dbname!r}, {self.user!r})"


def _gateway_error(response: httpx.Response, url: str, database: str) -> Exception:
    problem = _problem(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    status = response.status_code
    if status == 401:
        return TokenRefused(
            f"the gateway at {url} refused the app's token: {detail}",
            hint="check the token source, the token's audience and the gateway's trusted issuers",
        )
    if status == 403 and str(problem.get("type", "")).endswith("/direct-login-refused"):
        rule = problem.get("rule")
        return GatewayDenied(
            f"the gateway will not issue a plain database login for {database!r}: {detail}",
            hint=(
                "the app's grant carries masking or guardrails, which apply only through the gateway: connect"
                " through its PostgreSQL listener with TokenAsPassword, or ask for direct_login: true on the rule"
            ),
            rule=rule if isinstance(rule, str) else None,
        )
    if status == 403:
        rule = problem.get("rule")
        return GatewayDenied(
            f"the gateway's policy refused this app database {database!r}: {detail}",
            hint="ask for a policy rule granting this app the database",
            rule=rule if isinstance(rule, str) else None,
        )
    return GatewayUnavailable(f"the gateway at {url} answered {status}: {detail}", hint="see the gateway's log")


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _credential_from(response: httpx.Response, url: str) -> Credential:
    try:
        document = response.json()
        expires_at = datetime.fromisoformat(str(document["expires_at"]))
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        credential = Credential(
            host=_text(document, "host"),
            port=int(document["port"]),
            dbname=_text(document, "dbname"),
            user=_text(document, "user"),
            password=_text(document, "password"),
            expires_at=expires_at,
        )
    except (ValueError, KeyError, TypeError):
        raise GatewayUnavailable(
            f"the gateway at {url} answered a credential this connector cannot read",
            hint="the gateway and connector versions may not match",
        ) from None
    if not 0 < credential.port < 65536:
        raise GatewayUnavailable(f"the gateway at {url} answered port {credential.port}")
    return credential


def _text(document: dict[str, Any], key: str) -> str:
    value = document[key]
    if not isinstance(value, str) or not value:
        raise TypeError(key)
    return value
