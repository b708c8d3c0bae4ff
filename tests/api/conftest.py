"""A running gateway on the demo schema for the API tests, and an HTTP client for it."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.gateway import DEMO_POLICY, RunningGateway


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    """A gateway serving ``demo`` (a fresh database) with the demo policy."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


@pytest.fixture
def client(gateway):
    """An httpx client for the gateway's HTTP API."""
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}
