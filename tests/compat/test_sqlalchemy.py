"""SQLAlchemy 2 through the gateway, with the psycopg (3) and the asyncpg drivers: Core, ORM session, savepoints."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
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
