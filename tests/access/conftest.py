"""A running gateway on the demo schema for the access pipeline's end-to-end tests."""

from __future__ import annotations

import secrets

import pytest

from tests.access.attack import ATTACK_POLICY, LeakDetector, prepare_secrets
from tests.gateway import DEMO_POLICY, RunningGateway


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    """A gateway serving ``demo`` (a fresh database) with the demo policy."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def attack(pg_server, tmp_path_factory):
    """A gateway over the demo schema whose customers hold secrets (ATTACK_POLICY); the detector for them."""
    database = f"t_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{database}"')
    workdir = tmp_path_factory.mktemp("attack")
    running = RunningGateway(pg_server, workdir, ATTACK_POLICY, database, secrets.token_hex(3))
    try:
        detector = LeakDetector(prepare_secrets(running))
        yield running, detector
    finally:
        running.stop()
        pg_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
