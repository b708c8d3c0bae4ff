"""Fixtures for broker tests: an admin role and group roles on the session's PostgreSQL, a state store, a broker.

Every test gets its own login prefix, admin role and group roles, so reapers of
different tests never touch each other's logins on the shared server.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker
from sqlgate.config import DatabaseConfig, Settings
from sqlgate.identity.principal import Principal
from sqlgate.store import StateStore

ALIAS = "app"


def principal(name: str = "alice", issuer: str = "https://idp.test") -> Principal:
    """A verified caller for tests."""
    return Principal(subject=f"sub-{name}", issuer=issuer, name=name.title(), email=f"{name}@example.com")


def settings_for(config: DatabaseConfig, tmp_path, alias: str = ALIAS) -> Settings:
    """Settings with one database."""
    return Settings(data_dir=tmp_path / "data", databases={alias: config})


@pytest.fixture
def pg_target(pg_server, pg_database, tmp_path):
    """An admin (CREATEROLE) and read/write group roles on ``pg_database``; yields its DatabaseConfig."""
    tag = secrets.token_hex(3)
    admin, read, write = f"adm_{tag}", f"grp_read_{tag}", f"grp_write_{tag}"
    password = secrets.token_urlsafe(18)
    pg_server.psql(
        f"CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{password}';"
        f"CREATE ROLE {read} NOLOGIN; CREATE ROLE {write} NOLOGIN;"
        f"GRANT {read}, {write} TO {admin} WITH ADMIN OPTION;"
        f'GRANT CONNECT ON DATABASE "{pg_database}" TO {read}, {write};'
    )
    pg_server.psql(
        f"GRANT USAGE ON SCHEMA public TO {read}; GRANT USAGE, CREATE ON SCHEMA public TO {write};", pg_database
    )
    secret = tmp_path / "admin.secret"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    config = DatabaseConfig(
        host=pg_server.host,
        port=pg_server.port,
        dbname=pg_database,
        admin_user=admin,
        admin_password_file=secret,
        roles={"read": read, "write": write},
        login_prefix=f"t{tag}",
        connection_limit=5,
        tls="disable",
    )
    yield config
    leftovers = pg_server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, 't{tag}_')").split()
    for role in [*leftovers, admin, read, write]:
        pg_server.psql(f'DROP OWNED BY "{role}"', pg_database)
        pg_server.psql(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
async def store(tmp_path):
    """A SQLite state store in tmp_path."""
    state = await StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    await state.close()


@pytest.fixture
def auditor():
    return MemoryAuditor()


@pytest.fixture
async def broker(pg_target, store, auditor, tmp_path):
    """A broker for the ``app`` database on the session's PostgreSQL."""
    instance = Broker(settings_for(pg_target, tmp_path), store, auditor)
    yield instance
    await instance.close()


def roles_with_prefix(pg_server, prefix: str) -> list[str]:
    """Roles on the server whose names start with ``prefix_``."""
    return pg_server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{prefix}_')").split()


TTL = timedelta(minutes=10)
