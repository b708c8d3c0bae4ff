"""The embedded PostgreSQL: starts, takes passwords over TCP, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from sqlgate.embedded import EmbeddedPostgres, EmbeddedPostgresError


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_throwaway_server_runs_and_cleans_up():
    server = EmbeddedPostgres().start()
    pid, root = server.postmaster_pid(), server.root
    try:
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server.create_role("alice", "pw-alice")
        server.create_database("appdb", owner="alice")
        with psycopg.connect(server.dsn("appdb", "alice", "pw-alice")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("alice",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.dsn("appdb", "alice", "wrong"))
    finally:
        server.stop()
    assert pid is not None
    assert not process_exists(pid)
    assert not root.exists()


def test_persistent_server_keeps_its_data(tmp_path):
    with EmbeddedPostgres(tmp_path / "pg") as server:
        server.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    with EmbeddedPostgres(tmp_path / "pg") as server:
        assert server.psql("SELECT x FROM kept").strip() == "42"
    assert (tmp_path / "pg" / "pgdata" / "PG_VERSION").exists()


def test_forgotten_server_is_stopped_and_removed_at_exit():
    """A process that starts a throwaway server and exits without stopping it leaves nothing."""
    script = (
        "import json; from sqlgate.embedded import EmbeddedPostgres\n"
        "s = EmbeddedPostgres().start()\n"
        "print(json.dumps({'pid': s.postmaster_pid(), 'root': str(s.root)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert not process_exists(facts["pid"])
    assert not Path(facts["root"]).exists()


def test_bad_sql_is_a_clear_error(pg_server):
    if not isinstance(pg_server, EmbeddedPostgres):
        pytest.skip("SQLGATE_TEST_PG_DSN points at an external server")
    with pytest.raises(EmbeddedPostgresError, match="syntax error"):
        pg_server.psql("SELEC 1")


def test_port_in_use_is_reported(pg_server):
    if not isinstance(pg_server, EmbeddedPostgres):
        pytest.skip("SQLGATE_TEST_PG_DSN points at an external server")
    second = EmbeddedPostgres(port=pg_server.port)
    with pytest.raises(EmbeddedPostgresError, match="did not start"):
        second.start()
    assert not second.root.exists()
    assert pg_server.running
