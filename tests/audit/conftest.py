"""Fixtures for the audit tests: a state store on SQLite and PostgreSQL, a signing key, a log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.keys import Signer
from sqlgate.audit.log import AuditLog
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
