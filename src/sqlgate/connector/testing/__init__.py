"""Helpers for testing apps that use ``sqlgate.connector`` — real servers, no mocks.

- :class:`StaticToken`, :class:`StaticCredentials` — fixed identity and credentials;
- :class:`TestIssuer` — signs end-user JWTs with a fresh key, and verifies them;
- :class:`FaultProxy` — a TCP proxy that cuts and restores connectivity on demand;
- :class:`ServerThread` — runs an ASGI app under uvicorn on a free port in a thread;
- :class:`MintingGateway` — a stand-in for the sqlgate gateway's ``POST /v1/credentials``
  that mints real short-lived PostgreSQL logins (``VALID UNTIL``) on a server you own.

For HTTP-level tests of :class:`~sqlgate.connector.GatewayCredentials` without a
server, pass ``transport=httpx.MockTransport(handler)``.
"""

from __future__ import annotations

from sqlgate.connector.testing._gateway import MintingGateway
from sqlgate.connector.testing._proxy import FaultProxy
from sqlgate.connector.testing._server import ServerThread
from sqlgate.connector.testing._static import StaticCredentials, StaticToken, TestIssuer

__all__ = ["FaultProxy", "MintingGateway", "ServerThread", "StaticCredentials", "StaticToken", "TestIssuer"]
