"""asyncpg (its own protocol code: extended protocol, binary, statement cache) through the gateway."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.compat.harness import WRITER


@pytest.fixture
async def conn(compat_gateway):
    made = await asyncpg.connect(
        host="127.0.0.1",
        port=compat_gateway.pg_port,
        user=WRITER[0],
        database="demo",
        password=compat_gateway.token(*WRITER),
        ssl=False,
    )
    yield made
    if not made.is_closed():
        await made.close()


async def test_simple_and_extended_queries(conn):
    await conn.execute("SELECT 1; SELECT 2")  # no arguments: the simple protocol
    row = await conn.fetchrow("SELECT name, $2::int + 1 AS next FROM customers WHERE id = $1", 5, 41)
    assert row["name"].endswith(" 5")
    assert row["next"] == 42


async def test_prepared_statement_reused(conn):
    statement = await conn.prepare("SELECT id FROM orders WHERE id = $1")
    for i in range(1, 51):
        assert await statement.fetchval(i) == i
    for i in range(1, 51):  # the statement cache: one server-side statement for the same text
        assert await conn.fetchval("SELECT customer_id FROM orders WHERE id = $1", i) is not None


async def test_copy_both_ways(conn):
    await conn.execute("CREATE TEMP TABLE copied (a int, b text)")
    await conn.copy_records_to_table("copied", records=[(i, f"row {i}") for i in range(1000)])
    rows = []

    async def collect(chunk: bytes) -> None:
        rows.extend(chunk.decode().splitlines())

    await conn.copy_from_query("SELECT * FROM copied ORDER BY a", output=collect)
    assert len(rows) == 1000
    assert rows[-1] == "999\trow 999"


async def test_listen_notify_with_the_sessions_pid(conn):
    received: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    await conn.add_listener("compat", lambda _conn, pid, _channel, payload: received.put_nowait((pid, payload)))
    await conn.execute("NOTIFY compat, 'hello'")
    pid, payload = await asyncio.wait_for(received.get(), 5)
    assert payload == "hello"
    assert pid == await conn.fetchval("SELECT pg_backend_pid()") == conn.get_server_pid()


async def test_transaction_error_and_savepoint(conn):
    await conn.execute("CREATE TEMP TABLE saved (a int)")
    async with conn.transaction():
        await conn.execute("INSERT INTO saved VALUES (1)")
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with conn.transaction():  # nested: a savepoint
                await conn.execute("INSERT INTO saved VALUES (1 / 0)")
        await conn.execute("INSERT INTO saved VALUES (2)")
    assert await conn.fetchval("SELECT array_agg(a ORDER BY a) FROM saved") == [1, 2]
    transaction = conn.transaction()
    await transaction.start()
    with pytest.raises(asyncpg.DivisionByZeroError):
        await conn.execute("SELECT 1 / 0")
    with pytest.raises(asyncpg.InFailedSQLTransactionError):
        await conn.execute("SELECT 1")
    await transaction.rollback()
    assert await conn.fetchval("SELECT 2") == 2


async def test_cancel(conn):
    with pytest.raises(asyncio.TimeoutError):
        await conn.fetchval("SELECT pg_sleep(30)", timeout=0.5)  # asyncpg cancels on timeout
    assert await conn.fetchval("SELECT 3") == 3


async def test_server_side_termination(conn, compat_gateway):
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await asyncio.to_thread(compat_gateway.pg_server.psql, f"SELECT pg_terminate_backend({pid})")
    await asyncio.sleep(0.5)
    # As against PostgreSQL: asyncpg reads the FATAL while idle and closes; the next call finds it closed.
    assert conn.is_closed()
    with pytest.raises(asyncpg.InterfaceError, match="connection is closed"):
        await conn.fetchval("SELECT 1")
