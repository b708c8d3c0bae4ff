"""Fixtures for the connector tests: a database with a login-event table, a gateway stand-in, a fault proxy.

The gateway stand-in (``sqlgate.connector.testing.MintingGateway``) runs under uvicorn
on a free port and mints real short-lived logins (``VALID UNTIL``) on the session's
PostgreSQL, so an expired credential really fails to log in. Every login to the
test database is recorded by a login event trigger (PostgreSQL 17+) in
``login_events``, and the app's queries record ``session_user`` in ``uses``: the
tests check on the server side that no login and no use happened after expiry.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from sqlgate.connector.testing import FaultProxy, MintingGateway, ServerThread
from tests.pgserver import PgServer

GOOD_TOKEN = "app-token-" + "x" * 20

AUDIT_SQL = """
CREATE TABLE login_events (role name NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(),
                           valid_until timestamptz);
CREATE TABLE uses (role name NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION record_login() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
  INSERT INTO public.login_events (role, valid_until)
  SELECT session_user, rolvaliduntil FROM pg_roles WHERE rolname = session_user;
END $$;
CREATE EVENT TRIGGER record_login ON login EXECUTE FUNCTION record_login();
"""

VIOLATIONS_SQL = """
SELECT (SELECT count(*) FROM login_events WHERE valid_until IS NOT NULL AND at >= valid_until)
     || ',' || (SELECT count(*) FROM uses u JOIN pg_roles r ON r.rolname = u.role
                WHERE r.rolvaliduntil IS NOT NULL AND u.at >= r.rolvaliduntil)
     || ',' || (SELECT count(*) FROM login_events WHERE valid_until IS NOT NULL)
     || ',' || (SELECT count(*) FROM uses)
"""


@dataclass
class AppDatabase:
    """A test database, the role minted logins join, and the server-side checks."""

    server: PgServer
    name: str
    grant: str

    def psql(self, sql: str) -> str:
        return self.server.psql(sql, self.name)

    def violations(self) -> tuple[int, int, int, int]:
        """(logins after expiry, uses after expiry, minted logins seen, uses recorded)."""
        a, b, c, d = (int(x) for x in self.psql(VIOLATIONS_SQL).strip().split(","))
        return a, b, c, d

    def stale_sessions(self) -> int:
        """Sessions of minted logins still open after their login expired (should always be 0)."""
        out = self.psql(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename "
            "WHERE a.datname = current_database() AND r.rolvaliduntil < now()"
        )
        return int(out.strip() or 0)

    def terminate_app_backends(self) -> int:
        """pg_terminate_backend every minted login's session (57P01 to the app); returns how many."""
        out = self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND usename LIKE 'sgt\\_%' AND pid <> pg_backend_pid()"
        )
        return int(out.strip() or 0)


@pytest.fixture
def app_db(pg_server: PgServer, pg_database: str) -> Iterator[AppDatabase]:
    """A fresh database with login/use recording and a role (``grant``) that minted logins join."""
    grant = f"g_{secrets.token_hex(4)}"
    pg_server.psql(f'CREATE ROLE "{grant}" NOLOGIN')
    pg_server.psql(AUDIT_SQL + f'GRANT INSERT, SELECT ON uses TO "{grant}";', pg_database)
    yield AppDatabase(pg_server, pg_database, grant)
    pg_server.psql(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')
    pg_server.psql(f'DROP ROLE IF EXISTS "{grant}"')


@pytest.fixture
def fault_proxy(pg_server: PgServer) -> Iterator[FaultProxy]:
    """A TCP proxy in front of the session's PostgreSQL that can cut and restore connectivity."""
    with FaultProxy(pg_server.host, pg_server.port) as proxy:
        yield proxy


def _gateway(app_db: AppDatabase, port: int) -> Iterator[tuple[MintingGateway, str]]:
    server = app_db.server
    admin = server.dsn(app_db.name)
    gateway = MintingGateway(
        admin,
        host=urlsplit(admin).hostname or "127.0.0.1",
        port=port,
        dbname=app_db.name,
        tokens={GOOD_TOKEN},
        grant=app_db.grant,
        default_ttl=8,
    )
    with ServerThread(gateway.app) as thread:
        yield gateway, thread.url
    if gateway.minted:
        server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename LIKE 'sgt\\_%' "
            f"AND datname = '{app_db.name}'"
        )
        server.psql(gateway.drop_sql())


@pytest.fixture
def gateway(app_db: AppDatabase) -> Iterator[tuple[MintingGateway, str]]:
    """A gateway stand-in minting 8-second logins straight to the server; yields it and its URL."""
    yield from _gateway(app_db, app_db.server.port)


@pytest.fixture
def proxied_gateway(app_db: AppDatabase, fault_proxy: FaultProxy) -> Iterator[tuple[MintingGateway, str]]:
    """A gateway stand-in whose credentials point at the fault proxy (so the database can be cut)."""
    yield from _gateway(app_db, fault_proxy.port)
