"""A running gateway on the demo schema for the access pipeline's end-to-end tests."""

from __future__ import annotations

import secrets

import pytest

from tests.gateway import DEMO_POLICY, RunningGateway


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    """A gateway serving ``demo`` (a fresh database) with the demo policy."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()
