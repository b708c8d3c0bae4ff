"""The errors ``sqlgate.connector`` raises; each message says what is wrong and what to do.

Every error names the part that failed in ``cause`` — ``"token"`` (the app's own
identity), ``"gateway"`` (the credential source refused or is unreachable) or
``"database"`` — so a failed start-up points at the right place at once::

    SqlgateError
    └── ConnectorError                 cause     SQLSTATE / HTTP
        ├── TokenUnavailable           token     28000 / 401  no token could be read
        ├── TokenRefused               token     28P01 / 401  the token was presented and refused
        ├── GatewayUnavailable         gateway   08001 / 503  unreachable, failing or answering nonsense
        ├── GatewayDenied              gateway   42501 / 403  policy refused this app the database
        ├── DatabaseUnavailable        database  08006 / 503  no connection after bounded retries
        ├── EndUserRejected            token     28P01 / 401  a request's end-user token failed verification
        └── StartupError               (any)               start-up failed; wraps one of the above

Messages never hold a token or a password.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from sqlgate.errors import SqlgateError

Cause = Literal["token", "gateway", "database"]

__all__ = [
    "Cause",
    "ConnectorError",
    "DatabaseUnavailable",
    "EndUserRejected",
    "GatewayDenied",
    "GatewayUnavailable",
    "StartupError",
    "TokenRefused",
    "TokenUnavailable",
]


class ConnectorError(SqlgateError):
    """Base class of the connector's errors; ``cause`` names the part that failed."""

    cause: Cause = "database"


class TokenUnavailable(ConnectorError):
    """The app's identity token could not be read (missing file, unset variable, failed command)."""

    cause: Cause = "token"
    sqlstate: ClassVar[str] = "28000"
    http_status: ClassVar[int] = 401


class TokenRefused(ConnectorError):
    """The app's token was presented and refused (expired, wrong audience, unknown issuer)."""

    cause: Cause = "token"
    sqlstate: ClassVar[str] = "28P01"
    http_status: ClassVar[int] = 401


class GatewayUnavailable(ConnectorError):
    """The credential source could not be reached, failed, or answered something unusable."""

    cause: Cause = "gateway"
    sqlstate: ClassVar[str] = "08001"
    http_status: ClassVar[int] = 503


class GatewayDenied(ConnectorError):
    """The gateway's policy refused this app the database or role; ``rule`` names the rule when known."""

    cause: Cause = "gateway"
    sqlstate: ClassVar[str] = "42501"
    http_status: ClassVar[int] = 403

    def __init__(self, message: str, *, hint: str | None = None, rule: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class DatabaseUnavailable(ConnectorError):
    """No usable connection after bounded retries; ``last_error`` is the final fault seen."""

    cause: Cause = "database"
    sqlstate: ClassVar[str] = "08006"
    http_status: ClassVar[int] = 503

    def __init__(self, message: str, *, hint: str | None = None, attempts: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts


class EndUserRejected(ConnectorError):
    """A request's end-user bearer token is missing or failed verification (answered with 401)."""

    cause: Cause = "token"
    sqlstate: ClassVar[str] = "28P01"
    http_status: ClassVar[int] = 401


class StartupError(ConnectorError):
    """The app could not start: ``cause`` says whether the token, the gateway or the database is wrong."""

    def __init__(self, error: ConnectorError) -> None:
        super().__init__(f"sqlgate connector: start-up failed, the {error.cause} is the problem: {error}")
        self.cause = error.cause
        self.error = error
