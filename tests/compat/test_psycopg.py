"""psycopg 3 through the gateway: every scenario with the sync connection, then async and pipeline mode."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import pq

from tests.compat.harness import WRITER


@pytest.fixture
def conn(compat_gateway):
    with psycopg.connect(**compat_gateway.conninfo(WRITER[0], compat_gateway.token(*WRITER)), autocommit=True) as made:
        yield made


def test_connect_reports_the_gateway_session(conn):
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert conn.execute("SELECT current_user").fetchone()[0]


def test_simple_query_protocol(conn):
    conn.execute("SELECT 1; SELECT 2", prepare=False)  # no parameters: the simple protocol, two results
    cur = psycopg.ClientCursor(conn)
    cur.execute("SELECT name FROM customers WHERE id = %s", (5,))
    assert cur.fetchone()[0].endswith(" 5")


def test_extended_query(conn):
    row = conn.execute("SELECT name, %s::int + 1 FROM customers WHERE id = %s", (41, 5)).fetchone()
    assert row[0].endswith(" 5")
    assert row[1] == 42


def test_prepared_statement_reused(conn):
    conn.prepare_threshold = 2
    for i in range(1, 51):
        assert conn.execute("SELECT id FROM orders WHERE id = %s", (i,)).fetchone() == (i,)
    named = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_pg3\\_%'").fetchone()[0]
    assert named >= 1


def test_copy_both_ways(conn):
    conn.execute("CREATE TEMP TABLE copied (a int, b text)")
    with conn.cursor() as cur:
        with cur.copy("COPY copied FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"row {i}"))
        with cur.copy("COPY copied TO STDOUT") as copy:
            rows = list(copy.rows())
    assert len(rows) == 1000
    assert rows[-1] == ("999", "row 999")


def test_listen_notify_with_the_sessions_pid(conn):
    conn.execute("LISTEN compat")
    conn.execute("NOTIFY compat, 'hello'")
    notice = next(conn.notifies(timeout=5))
    assert notice.payload == "hello"
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert notice.pid == backend == conn.info.backend_pid


def test_transaction_in_error_then_rollback(conn):
    conn.autocommit = False
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    assert conn.info.transaction_status == pq.TransactionStatus.INERROR
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("SELECT 1")
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_savepoint_rolls_back_only_its_part(conn):
    conn.execute("CREATE TEMP TABLE saved (a int)")
    with conn.transaction():
        conn.execute("INSERT INTO saved VALUES (1)")
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            conn.execute("INSERT INTO saved VALUES (1 / 0)")
        conn.execute("INSERT INTO saved VALUES (2)")
    assert conn.execute("SELECT array_agg(a ORDER BY a) FROM saved").fetchone() == ([1, 2],)


def test_cancel(conn):
    threading.Timer(0.5, conn.cancel_safe).start()
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(30)")
    assert time.monotonic() - started < 10
    assert conn.execute("SELECT 3").fetchone() == (3,)


def test_server_side_termination(conn, compat_gateway):
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    compat_gateway.pg_server.psql(f"SELECT pg_terminate_backend({pid})")
    time.sleep(0.5)
    with pytest.raises(psycopg.errors.AdminShutdown):
        conn.execute("SELECT 1")


async def test_async_connection(compat_gateway):
    info = compat_gateway.conninfo(WRITER[0], compat_gateway.token(*WRITER))
    async with await psycopg.AsyncConnection.connect(**info, autocommit=True) as conn:
        for i in range(1, 21):
            cur = await conn.execute("SELECT id FROM orders WHERE id = %s", (i,))
            assert await cur.fetchone() == (i,)
        await conn.execute("LISTEN compat_async")
        await conn.execute("NOTIFY compat_async, 'hi'")
        async for notice in conn.notifies(timeout=5):
            assert notice.payload == "hi"
            break
        else:
            pytest.fail("no notification")


def test_pipeline_mode(conn):
    conn.execute("CREATE TEMP TABLE piped (a int)")
    with conn.pipeline() as pipeline:
        cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        conn.execute("INSERT INTO piped SELECT generate_series(1, 10)")
        pipeline.sync()
        conn.execute("SELECT 1 / 0")
        with pytest.raises(psycopg.errors.DivisionByZero):
            pipeline.sync()
    assert [c.fetchone()[0] for c in cursors] == [i * 2 for i in range(50)]
    assert conn.execute("SELECT count(*) FROM piped").fetchone() == (10,)
