"""The compatibility suite's gateway: one per client module, on a fresh demo database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.gateway import DEMO_POLICY, RunningGateway


@pytest.fixture(scope="module")
def compat_gateway(pg_server, tmp_path_factory) -> Iterator[RunningGateway]:
    """One gateway for a client module, on a fresh copy of the demo database."""
    database = f"c_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{database}"')
    running = RunningGateway(pg_server, tmp_path_factory.mktemp("compat"), DEMO_POLICY, database, secrets.token_hex(3))
    try:
        yield running
    finally:
        running.stop()
        pg_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
