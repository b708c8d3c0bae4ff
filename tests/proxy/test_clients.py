"""Real clients through the gateway, and large results with flat gateway memory.

psql, pgbench, psycopg (sync, async, pipeline, COPY, binary), asyncpg, SQLAlchemy, LISTEN/NOTIFY, cancel.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import asyncpg
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sqlgate.embedded import BIN

ENGINEER = ("erin", ("engineers",))
WRITER = ("wade", ("writers",))


def psql(gateway, user, groups, *args, stdin=None, check=True):
    env = {**os.environ, "PGPASSWORD": gateway.token(user, groups), "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}
    argv = [
        str(BIN / "psql"),
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        str(gateway.pg_port),
        "-U",
        user,
        "-d",
        "demo",
        *args,
    ]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=check, timeout=120)


def test_psql_describe_and_query(gateway):
    out = psql(gateway, *ENGINEER, "-c", r"\d customers", "-c", "SELECT count(*) FROM orders")
    assert "email" in out.stdout
    assert "1000" in out.stdout


def test_psql_copy_both_ways(gateway, tmp_path):
    exported = tmp_path / "orders.csv"
    psql(gateway, *ENGINEER, "-c", rf"\copy orders TO '{exported}' CSV")
    assert len(exported.read_text().splitlines()) == 1000
    psql(
        gateway,
        *WRITER,
        "-c",
        "CREATE TABLE orders_copy (LIKE orders)",
        "-c",
        rf"\copy orders_copy FROM '{exported}' CSV",
        "-c",
        "SELECT count(*) FROM orders_copy",
    )
    out = psql(gateway, *WRITER, "-At", "-c", "SELECT count(*) FROM orders_copy")
    assert out.stdout.strip() == "1000"


def test_psql_guardrail_error_names_the_rule_and_session_continues(gateway):
    out = psql(
        gateway,
        "ana",
        ("analysts",),
        "-v",
        "ON_ERROR_STOP=0",
        "-c",
        "DELETE FROM orders",
        "-c",
        "SELECT 41 + 1",
        check=False,
    )
    assert "refused by guardrail" in out.stderr
    assert "42" in out.stdout


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes(gateway, tmp_path, mode):
    script = tmp_path / "select.sql"
    script.write_text("\\set id random(1, 200)\nSELECT name, region FROM customers WHERE id = :id;\n")
    env = {**os.environ, "PGPASSWORD": gateway.token(*ENGINEER), "PGSSLMODE": "disable"}
    out = subprocess.run(
        [
            str(BIN / "pgbench"),
            "-n",
            "-M",
            mode,
            "-f",
            str(script),
            "-c",
            "4",
            "-j",
            "2",
            "-t",
            "200",
            "-h",
            "127.0.0.1",
            "-p",
            str(gateway.pg_port),
            "-U",
            "erin",
            "demo",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "number of failed transactions: 0" in out.stdout
    assert "number of transactions actually processed: 800/800" in out.stdout


def test_psycopg_binary_results_pipeline_and_copy(gateway):
    with psycopg.connect(**gateway.conninfo("wade", gateway.token(*WRITER))) as conn:
        cur = conn.cursor(binary=True)
        cur.execute("SELECT id, total, created_at FROM orders WHERE id = %s", (7,))
        row = cur.fetchone()
        assert row[0] == 7
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(20)]
        assert [c.fetchone()[0] for c in cursors] == [i * 2 for i in range(20)]
        conn.execute("CREATE TEMP TABLE t (a int, b text)")
        with cur.copy("COPY t FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"row {i}"))
        with cur.copy("COPY t TO STDOUT") as copy:
            rows = list(copy.rows())
        assert len(rows) == 1000
        conn.rollback()


async def test_psycopg_async(gateway):
    conn = await psycopg.AsyncConnection.connect(**gateway.conninfo("erin", gateway.token(*ENGINEER)))
    async with conn:
        cur = await conn.execute("SELECT count(*) FROM customers WHERE region = %s", ("eu",))
        assert (await cur.fetchone())[0] > 0


async def test_asyncpg_prepared_binary_and_copy(gateway):
    conn = await asyncpg.connect(
        host="127.0.0.1", port=gateway.pg_port, user="wade", database="demo", password=gateway.token(*WRITER), ssl=False
    )
    try:
        statement = await conn.prepare("SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY id")
        rows = await statement.fetch(3)
        assert rows
        assert all(r["id"] % 200 == 2 for r in rows)
        await conn.execute("CREATE TEMP TABLE tcopy (a int, b text)")
        await conn.copy_records_to_table("tcopy", records=[(i, str(i)) for i in range(500)])
        assert await conn.fetchval("SELECT count(*) FROM tcopy") == 500
    finally:
        await conn.close()


async def test_sqlalchemy_async_engine(gateway):
    token = gateway.token(*ENGINEER)
    engine = create_async_engine(
        f"postgresql+asyncpg://erin:{token}@127.0.0.1:{gateway.pg_port}/demo", connect_args={"ssl": False}
    )
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT name FROM customers WHERE id = :id"), {"id": 5})
            assert result.scalar_one().endswith(" 5")
    finally:
        await engine.dispose()


def test_listen_notify(gateway):
    token = gateway.token(*ENGINEER)
    with (
        psycopg.connect(**gateway.conninfo("erin", token), autocommit=True) as listener,
        psycopg.connect(**gateway.conninfo("erin", token), autocommit=True) as sender,
    ):
        listener.execute("LISTEN jobs")
        sender.execute("NOTIFY jobs, 'hello'")
        notification = next(listener.notifies(timeout=10))
    assert notification.payload == "hello"


def test_cancel_reaches_the_upstream_backend(gateway):
    with psycopg.connect(**gateway.conninfo("erin", gateway.token(*ENGINEER))) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)  # cancel() holds the GIL while it waits
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 20


def test_million_rows_stream_with_flat_gateway_memory(gateway):
    def start_trace():
        tracemalloc.start()
        tracemalloc.reset_peak()

    gateway.loop.call_soon_threadsafe(start_trace)
    count = 0
    with (
        psycopg.connect(**gateway.conninfo("erin", gateway.token(*ENGINEER))) as conn,
        conn.cursor(name="big") as cur,
    ):
        cur.itersize = 5000
        cur.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g")
        for _ in cur:
            count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 1_000_000
    assert peak < 32 * 1024 * 1024, f"gateway allocated {peak / 1e6:.1f} MB while streaming"


def test_revoking_the_lease_ends_the_session_with_57p01(gateway):
    services = gateway.gateway.services
    with psycopg.connect(**gateway.conninfo("erin", gateway.token(*ENGINEER)), autocommit=True) as conn:
        conn.execute("SELECT 1")
        (session,) = services.sessions.list()
        lease = gateway.call(services.broker.leases.get(session.lease_id))
        gateway.call(services.broker.revoke(lease, "test revocation"))
        with pytest.raises(psycopg.OperationalError) as caught:
            conn.execute("SELECT 1")
    assert "revoked" in str(caught.value) or "terminat" in str(caught.value)


def test_admin_ending_a_session(gateway):
    services = gateway.gateway.services
    with psycopg.connect(**gateway.conninfo("erin", gateway.token(*ENGINEER)), autocommit=True) as conn:
        conn.execute("SELECT 1")
        (session,) = services.sessions.list()
        assert gateway.call(services.sessions.end(session.id, "maintenance"))
        with pytest.raises(psycopg.OperationalError) as caught:
            conn.execute("SELECT 1")
    assert "maintenance" in str(caught.value)
    assert services.sessions.list() == []


def test_reconnecting_reuses_a_pooled_upstream(gateway):
    token = gateway.token(*ENGINEER)
    pids = set()
    for _ in range(3):
        with psycopg.connect(**gateway.conninfo("erin", token), autocommit=True) as conn:
            conn.execute("SET work_mem = '7MB'")
            pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            assert conn.execute("SHOW work_mem").fetchone()[0] != "7MB" or len(pids) == 1
        asyncio.run(asyncio.sleep(0.2))
    assert len(pids) == 1


def test_sqlgate_connect_starts_psql_with_the_token(gateway):
    env = {**os.environ, "SQLGATE_TOKEN": gateway.token(*ENGINEER), "PGSSLMODE": "disable"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlgate",
            "connect",
            "demo",
            "-c",
            str(gateway.workdir / "sqlgate.yaml"),
            "--port",
            str(gateway.pg_port),
            "--",
            "-At",
            "-c",
            "SELECT count(*) FROM customers",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "200"


def test_masking_rewrites_columns_in_text_and_binary_results(gateway):
    token = gateway.token("ana", ("analysts",))
    with psycopg.connect(**gateway.conninfo("ana", token)) as conn:
        email, ssn, name = conn.execute("SELECT email, ssn, name FROM customers WHERE id = 3").fetchone()
        aliased = conn.execute("SELECT email AS e FROM customers WHERE id = 3").fetchone()[0]
        binary = conn.cursor(binary=True).execute("SELECT email, ssn FROM customers WHERE id = 3").fetchone()
    assert email == "c***@example.com"
    assert ssn == "****"
    assert name.endswith(" 3")
    assert aliased == "c***@example.com"
    assert binary == ("c***@example.com", "****")


async def test_masking_applies_to_asyncpg_prepared_statements(gateway):
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=gateway.pg_port,
        user="ana",
        database="demo",
        password=gateway.token("ana", ("analysts",)),
        ssl=False,
    )
    try:
        statement = await conn.prepare("SELECT id, email FROM customers WHERE id = $1")
        row = await statement.fetchrow(4)
    finally:
        await conn.close()
    assert row["email"] == "c***@example.com"


def test_copy_out_is_refused_while_masking_applies(gateway):
    out = psql(gateway, "ana", ("analysts",), "-c", "COPY customers TO STDOUT", check=False)
    assert out.returncode != 0
    assert "masking" in out.stderr


def test_hundred_megabyte_copy_each_way_with_flat_gateway_memory(gateway):
    gateway.loop.call_soon_threadsafe(tracemalloc.start)
    row = "x" * 1000
    rows = 100_000  # about 100 MB of row data each way
    with psycopg.connect(**gateway.conninfo("wade", gateway.token(*WRITER))) as conn:
        conn.execute("CREATE TEMP TABLE big (id int, payload text)")
        with conn.cursor().copy("COPY big FROM STDIN") as copy:
            for i in range(rows):
                copy.write(f"{i}\t{row}\n")
        received = 0
        with conn.cursor().copy("COPY big TO STDOUT") as copy:
            for data in copy:
                received += len(data)
        conn.rollback()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert received > 100 * 1000 * 1000
    assert peak < 32 * 1024 * 1024, f"gateway allocated {peak / 1e6:.1f} MB during the copies"
