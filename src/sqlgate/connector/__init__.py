"""sqlgate.connector: database access for applications with no password in their environment.

The app proves who it is with a short-lived token (:mod:`~sqlgate.connector.identity`),
a credential source turns that into a short-lived database login
(:class:`GatewayCredentials`, :class:`TokenAsPassword`, :class:`CloudSqlIamCredentials`),
a :class:`CredentialManager` refreshes it before it expires, and :func:`create_pool`
(asyncpg) or :func:`create_async_engine` (SQLAlchemy) connect with it, retrying
transient faults. :mod:`sqlgate.connector.fastapi` adds a lifespan and dependencies;
:mod:`sqlgate.connector.testing` has real-server helpers for tests.

This package never imports the gateway (``sqlgate.proxy``, ``api``, ``broker``,
``server``); it needs asyncpg and httpx, SQLAlchemy for the engine factory only,
FastAPI for :mod:`~sqlgate.connector.fastapi` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlgate.connector.cloudsql import CloudSqlIamCredentials
from sqlgate.connector.credentials import Credential, CredentialSource, GatewayCredentials, TokenAsPassword
from sqlgate.connector.endusers import EndUser, EndUsers, JwksVerifier, JwtVerifier
from sqlgate.connector.errors import (
    ConnectorError,
    DatabaseUnavailable,
    EndUserRejected,
    GatewayDenied,
    GatewayUnavailable,
    StartupError,
    TokenRefused,
    TokenUnavailable,
)
from sqlgate.connector.identity import (
    CommandToken,
    DevIssuerToken,
    EnvToken,
    GcpMetadataToken,
    IdentitySource,
    Token,
    TokenFile,
)
from sqlgate.connector.manager import CredentialManager
from sqlgate.connector.pool import CredentialPool, create_pool
from sqlgate.connector.retry import RetryPolicy

if TYPE_CHECKING:
    from sqlgate.connector.engine import create_async_engine, dispose_engine

__all__ = [
    "CloudSqlIamCredentials",
    "CommandToken",
    "ConnectorError",
    "Credential",
    "CredentialManager",
    "CredentialPool",
    "CredentialSource",
    "DatabaseUnavailable",
    "DevIssuerToken",
    "EndUser",
    "EndUserRejected",
    "EndUsers",
    "EnvToken",
    "GatewayCredentials",
    "GatewayDenied",
    "GatewayUnavailable",
    "GcpMetadataToken",
    "IdentitySource",
    "JwksVerifier",
    "JwtVerifier",
    "RetryPolicy",
    "StartupError",
    "Token",
    "TokenAsPassword",
    "TokenFile",
    "TokenRefused",
    "TokenUnavailable",
    "create_async_engine",
    "create_pool",
    "dispose_engine",
]


def __getattr__(name: str) -> Any:
    """Import the SQLAlchemy engine factory only when it is asked for."""
    if name in {"create_async_engine", "dispose_engine"}:
        from sqlgate.connector import engine  # noqa: PLC0415 - SQLAlchemy is optional

        return getattr(engine, name)
    raise AttributeError(f"module 'sqlgate.connector' has no attribute {name!r}")
