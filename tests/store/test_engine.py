"""The state store on SQLite and on PostgreSQL: migrations, transactions, identity of a deployment."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from sqlgate.errors import StoreError
from sqlgate.store import StateStore, async_url
from sqlgate.store.engine import alembic_config
from sqlgate.store.tables import meta


def expected_heads():
    """The newest revision of every migration branch (one branch per package that stores something)."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    pg_server = request.getfixturevalue("pg_server")
    return pg_server.dsn(request.getfixturevalue("pg_database"))


async def test_open_migrates_and_is_idempotent(state_url):
    store = await StateStore.open(state_url)
    first = await store.deployment_id()
    await store.close()
    store = await StateStore.open(state_url)
    try:
        assert await store.deployment_id() == first
        async with store.begin() as conn:
            heads = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            count = (await conn.execute(select(func.count()).select_from(meta))).scalar_one()
        assert set(heads) == expected_heads()
        assert count == 1
        assert await store.ping()
    finally:
        await store.close()


async def test_failed_transaction_rolls_back(state_url):
    store = await StateStore.open(state_url)
    try:

        async def delete_then_fail():
            async with store.begin() as conn:
                await conn.execute(text("DELETE FROM meta"))
                await conn.execute(text("SELECT * FROM no_such_table"))

        with pytest.raises(StoreError):
            await delete_then_fail()
        async with store.begin() as conn:
            assert (await conn.execute(select(func.count()).select_from(meta))).scalar_one() == 1
    finally:
        await store.close()


async def test_sqlite_uses_wal(tmp_path):
    store = await StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        async with store.begin() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await store.close()


async def test_unreachable_postgres_is_a_store_error():
    with pytest.raises(StoreError, match="state database unavailable"):
        await StateStore.open("postgresql://nobody:pw@127.0.0.1:1/none")


def test_async_url_mapping():
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
