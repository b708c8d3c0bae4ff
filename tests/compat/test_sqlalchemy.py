"""SQLAlchemy 2 through the gateway, with the psycopg (3) and the asyncpg drivers.

Core queries, savepoints, COPY and LISTEN/NOTIFY through the pooled driver connection, cancel, and the pool
recovering when the server ends a session.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.compat.harness import WRITER

QUERY = sa.text("SELECT name FROM customers WHERE id = :id")


def _url(gateway, driver):
    return sa.URL.create(
        f"postgresql+{driver}", WRITER[0], gateway.token(*WRITER), "127.0.0.1", gateway.pg_port, "demo"
    )


def test_psycopg_driver(compat_gateway):
    engine = sa.create_engine(_url(compat_gateway, "psycopg"), connect_args={"sslmode": "disable"})
    try:
        with engine.connect() as conn:
            for i in range(1, 21):
                assert conn.execute(QUERY, {"id": i}).scalar_one().endswith(f" {i}")
            conn.execute(sa.text("CREATE TEMP TABLE saved (a int)"))
            conn.commit()
            with conn.begin():
                conn.execute(sa.text("INSERT INTO saved VALUES (1)"))
                with pytest.raises(DBAPIError, match="division by zero"), conn.begin_nested():
                    conn.execute(sa.text("INSERT INTO saved VALUES (1 / 0)"))
                conn.execute(sa.text("INSERT INTO saved VALUES (2)"))
            assert conn.execute(sa.text("SELECT array_agg(a ORDER BY a) FROM saved")).scalar_one() == [1, 2]
    finally:
        engine.dispose()


async def test_asyncpg_driver(compat_gateway):
    engine = create_async_engine(_url(compat_gateway, "asyncpg"), connect_args={"ssl": False})
    try:
        async with engine.connect() as conn:
            for i in range(1, 21):
                assert (await conn.execute(QUERY, {"id": i})).scalar_one().endswith(f" {i}")
            await conn.execute(sa.text("CREATE TEMP TABLE saved (a int)"))
            await conn.commit()
            async with conn.begin():
                await conn.execute(sa.text("INSERT INTO saved VALUES (1)"))
                with pytest.raises(DBAPIError, match="division by zero"):
                    async with conn.begin_nested():
                        await conn.execute(sa.text("INSERT INTO saved VALUES (1 / 0)"))
                await conn.execute(sa.text("INSERT INTO saved VALUES (2)"))
            result = await conn.execute(sa.text("SELECT array_agg(a ORDER BY a) FROM saved"))
            assert result.scalar_one() == [1, 2]
    finally:
        await engine.dispose()


@pytest.fixture
def sync_engine(compat_gateway):
    engine = sa.create_engine(_url(compat_gateway, "psycopg"), connect_args={"sslmode": "disable"})
    yield engine
    engine.dispose()


def test_psycopg_driver_copy_and_notify_through_the_pooled_connection(sync_engine):
    """What an application reaches for through ``driver_connection``: COPY both ways, LISTEN/NOTIFY and its pid."""
    with sync_engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE copied (a int, b text)")
            with cur.copy("COPY copied FROM STDIN") as copy:
                for i in range(500):
                    copy.write_row((i, f"row {i}"))
            with cur.copy("COPY copied TO STDOUT") as copy:
                assert len(list(copy.rows())) == 500
            cur.execute("LISTEN compat_sa")
            cur.execute("NOTIFY compat_sa, 'from sqlalchemy'")
        notice = next(raw.notifies(timeout=5))
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert (notice.payload, notice.pid) == ("from sqlalchemy", pid)


def test_psycopg_driver_cancel(sync_engine):
    with sync_engine.connect() as conn:
        threading.Timer(0.5, conn.connection.driver_connection.cancel_safe).start()
        with pytest.raises(OperationalError, match="canceling statement due to user request"):
            conn.execute(sa.text("SELECT pg_sleep(30)"))
        conn.rollback()
        assert conn.execute(sa.text("SELECT 3")).scalar_one() == 3


def test_psycopg_driver_pool_recovers_from_a_server_side_termination(sync_engine, compat_gateway):
    """The server ends the session (57P01 reaches the driver): SQLAlchemy invalidates it and reconnects."""
    with sync_engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        compat_gateway.pg_server.psql(f"SELECT pg_terminate_backend({pid})")
        time.sleep(0.5)
        with pytest.raises(DBAPIError) as raised:
            conn.execute(sa.text("SELECT 1"))
        assert raised.value.connection_invalidated, raised.value
    with sync_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid


async def test_asyncpg_driver_copy_notify_cancel_and_termination(compat_gateway):
    engine = create_async_engine(_url(compat_gateway, "asyncpg"), connect_args={"ssl": False})
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute("CREATE TEMP TABLE copied (a int, b text)")
            await raw.copy_records_to_table("copied", records=[(i, f"row {i}") for i in range(500)])
            out = io.BytesIO()
            await raw.copy_from_query("SELECT * FROM copied", output=out)
            assert out.getvalue().count(b"\n") == 500
            heard: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
            await raw.add_listener("compat_sa", lambda _c, pid, _ch, payload: heard.put_nowait((pid, payload)))
            await raw.execute("NOTIFY compat_sa, 'async'")
            assert await asyncio.wait_for(heard.get(), 5) == (raw.get_server_pid(), "async")
            with pytest.raises(TimeoutError):  # asyncpg sends a CancelRequest when the wait is cancelled
                await asyncio.wait_for(raw.fetchval("SELECT pg_sleep(30)"), 0.5)
            assert await raw.fetchval("SELECT 3") == 3
            pid = raw.get_server_pid()
            compat_gateway.pg_server.psql(f"SELECT pg_terminate_backend({pid})")
            await asyncio.sleep(0.5)
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(sa.text("SELECT 1"))
            assert raised.value.connection_invalidated, raised.value
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
