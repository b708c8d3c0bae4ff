"""Fixtures for the audit tests: a state store on SQLite and PostgreSQL, a signing key, a log, a settings file."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.keys import Signer
from sqlgate.audit.log import AuditLog
from sqlgate.cli import app
from sqlgate.config import load_settings
from sqlgate.store import StateStore


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    """The state database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    pg_server = request.getfixturevalue("pg_server")
    return pg_server.dsn(request.getfixturevalue("pg_database"))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
async def store(state_url):
    store = await StateStore.open(state_url)
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(sqlite_url):
    store = await StateStore.open(sqlite_url)
    yield store
    await store.close()


@pytest.fixture
def signer():
    return Signer(Ed25519PrivateKey.generate())


@pytest.fixture
def make_log(signer):
    """Build an AuditLog on a store with small checkpoints (every 5 records) by default."""

    def make(store, chain_id="replica-a", **options):
        options.setdefault("checkpoint_every", 5)
        options.setdefault("checkpoint_interval", timedelta(hours=1))
        return AuditLog(store, signer, chain_id, **options)

    return make


ALICE = PrincipalRef(subject="alice", issuer="https://idp.example.com", groups=["dev"])


def statement(n: int = 0, **fields) -> AuditEvent:
    """A statement event numbered ``n``."""
    data = {"sql": f"SELECT {n}", "params": [], "rows": 1, "duration_ms": 0.25}
    return AuditEvent(type="statement", principal=ALICE, database="prod", session_id="s1", data=data, **fields)


def security(n: int = 0, **fields) -> AuditEvent:
    """A security event (a lease mint) numbered ``n``."""
    fields.setdefault("outcome", "success")
    return AuditEvent(type="lease.mint", principal=ALICE, database="prod", db_login=f"sg_alice_{n}", **fields)


# -- a deployment's settings file and its stored log, for the command-line tests --------------

CHAIN = "replica-a"


def write_config(path, tmp_path, state_url, *, chain=CHAIN, extra=""):
    """A settings file: data_dir under ``tmp_path``, the given state, chain id and checkpoints every 5 records."""
    path.write_text(
        f"data_dir: {tmp_path / 'data'}\nstate: {state_url}\n"
        f"audit:\n  chain_id: {chain}\n  checkpoint_every: 5\n{extra}"
    )
    return path


@pytest.fixture
def config(tmp_path, state_url):
    """A settings file whose state database holds 20 records and 4 checkpoints of one chain."""
    path = write_config(tmp_path / "sqlgate.yaml", tmp_path, state_url)
    populate(path)
    return path


def populate(path, count=20, start=0, **options):
    """Write ``count`` events (every fourth a security event) through the log ``path`` describes."""

    async def run():
        settings = load_settings(path)
        store = await StateStore.open(settings.state_url())
        try:
            log = AuditLog.from_settings(settings, store)
            for name, value in options.items():
                setattr(log, name, value)
            async with log:
                for n in range(start, start + count):
                    if n % 4 == 0:
                        await log.record(security(n))
                    else:
                        await log.submit(statement(n))
        finally:
            await store.close()

    asyncio.run(run())


def tamper(config, *statements):
    """Run SQLAlchemy statements (or callables taking a connection) against the config's store."""

    async def run():
        store = await StateStore.open(load_settings(config).state_url())
        try:
            async with store.begin() as conn:
                for stmt in statements:
                    await (stmt(conn) if callable(stmt) else conn.execute(stmt))
        finally:
            await store.close()

    asyncio.run(run())


def cli(*args):
    """Run ``sqlgate`` with ``args``; the result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, list(args))


def verify(config, *args):
    """``sqlgate audit verify --json``: (exit code, the report or None)."""
    result = cli("audit", "verify", "-c", str(config), "--json", *args)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None
