"""The drain a replica does on SIGTERM, in process: readiness, no new clients, sessions go on, then 57P01."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.gateway import DEMO_POLICY, RunningGateway
from tests.pgserver import PgServer


@pytest.fixture
def gateway(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway serving the demo database."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def test_a_draining_replica_is_unready_refuses_new_clients_and_keeps_its_sessions(gateway: RunningGateway) -> None:
    """During the drain: /readyz 503, a new connection is refused, an open session still runs; then 57P01."""
    token = gateway.token("alice")
    assert httpx.get(f"{gateway.http_url}/readyz", timeout=10).status_code == 200
    with psycopg.connect(**gateway.conninfo("alice", token), autocommit=True) as conn:
        conn.execute("SELECT 1")
        left = gateway.call(gateway.gateway.drain(0.3))
        assert left == 1
        ready = httpx.get(f"{gateway.http_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"draining": True}
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**gateway.conninfo("alice", token), connect_timeout=5)
        assert conn.execute("SELECT count(*) FROM orders").fetchone() is not None
        gateway.call(gateway.gateway.pg.close())
        with pytest.raises(psycopg.errors.AdminShutdown, match="shutting down"):
            conn.execute("SELECT 1")


def test_a_drain_with_no_session_ends_at_once(gateway: RunningGateway) -> None:
    """Nothing open: the drain returns 0 without waiting for its timeout."""
    assert gateway.call(gateway.gateway.drain(30), timeout=10) == 0
