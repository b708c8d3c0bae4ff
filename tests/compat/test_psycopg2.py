"""psycopg2 (libpq, client-side parameters: the simple protocol throughout) through the gateway."""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys
import time

import psycopg2
import psycopg2.errors
import pytest

from tests.compat.harness import WRITER


@pytest.fixture
def conn(compat_gateway):
    info = compat_gateway.conninfo(WRITER[0], compat_gateway.token(*WRITER))
    made = psycopg2.connect(**info)
    made.autocommit = True
    yield made
    made.close()


def test_connect_and_query(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT name, %s + 1 FROM customers WHERE id = %s", (41, 5))
        name, answer = cur.fetchone()
    assert name.endswith(" 5")
    assert answer == 42


def test_prepare_and_execute_many_times(conn):
    with conn.cursor() as cur:
        cur.execute("PREPARE by_id(int) AS SELECT id FROM orders WHERE id = $1")
        for i in range(1, 51):
            cur.execute("EXECUTE by_id(%s)", (i,))
            assert cur.fetchone() == (i,)
        cur.execute("DEALLOCATE by_id")


def test_copy_both_ways(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE copied (a int, b text)")
        cur.copy_expert("COPY copied FROM STDIN", io.StringIO("".join(f"{i}\trow {i}\n" for i in range(1000))))
        out = io.StringIO()
        cur.copy_expert("COPY copied TO STDOUT", out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1000
    assert lines[-1] == "999\trow 999"


def test_listen_notify_with_the_sessions_pid(conn):
    with conn.cursor() as cur:
        cur.execute("LISTEN compat")
        cur.execute("NOTIFY compat, 'hello'")
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    deadline = time.monotonic() + 5
    while not conn.notifies and time.monotonic() < deadline:
        select.select([conn], [], [], 0.5)
        conn.poll()
    notice = conn.notifies.pop(0)
    assert notice.payload == "hello"
    assert notice.pid == backend == conn.get_backend_pid()


def test_transaction_error_and_savepoint(conn):
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE saved (a int)")
        cur.execute("INSERT INTO saved VALUES (1)")
        cur.execute("SAVEPOINT s")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("INSERT INTO saved VALUES (1 / 0)")
        cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute("INSERT INTO saved VALUES (2)")
        conn.commit()
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1 / 0")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        conn.rollback()
        cur.execute("SELECT array_agg(a ORDER BY a) FROM saved")
        assert cur.fetchone() == ([1, 2],)


# psycopg2's cancel() keeps the GIL while it talks to the gateway, and this gateway runs in a thread of the
# test process: the client runs in a process of its own, as it would against a real deployment.
CANCEL_CLIENT = """
import json, sys, threading, time
import psycopg2, psycopg2.errors
conn = psycopg2.connect(**json.loads(sys.argv[1]))
threading.Timer(0.5, conn.cancel).start()
started = time.monotonic()
try:
    conn.cursor().execute("SELECT pg_sleep(30)")
except psycopg2.errors.QueryCanceled:
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT 3")
    print(json.dumps({"cancelled_after": time.monotonic() - started, "then": cur.fetchone()[0]}))
"""


def test_cancel(compat_gateway):
    info = compat_gateway.conninfo(WRITER[0], compat_gateway.token(*WRITER))
    argv = [sys.executable, "-c", CANCEL_CLIENT, json.dumps(info)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["then"] == 3
    assert outcome["cancelled_after"] < 10


def test_server_side_termination(conn, compat_gateway):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        compat_gateway.pg_server.psql(f"SELECT pg_terminate_backend({pid})")
        time.sleep(0.5)
        # As against PostgreSQL: psycopg2 (libpq) reports the closed connection, not the FATAL before it.
        with pytest.raises(psycopg2.OperationalError, match="server closed the connection unexpectedly"):
            cur.execute("SELECT 1")
    assert conn.closed
