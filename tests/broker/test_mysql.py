"""The broker against MariaDB (127.0.0.1:3306, root without password): mint, log in, reuse, revoke, reap, rotate."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import asyncmy
import pytest
from asyncmy.errors import Error as MysqlError

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker, Reaper
from sqlgate.broker.backends.mysql import native_password_hash
from sqlgate.config import DatabaseConfig
from tests.broker.conftest import ALIAS, TTL, principal, settings_for

pytestmark = pytest.mark.needs_mariadb
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


async def root_sql(*statements: str) -> list[tuple]:
    conn = await asyncmy.connect(**MARIADB, autocommit=True, connect_timeout=3)
    try:
        rows: list[tuple] = []
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
                rows = list(await cur.fetchall() or [])
        return rows
    finally:
        conn.close()


async def accounts(prefix: str) -> list[str]:
    return sorted(row[0] for row in await root_sql(f"SELECT User FROM mysql.user WHERE User LIKE '{prefix}\\_%'"))


async def login(credential):
    return await asyncmy.connect(
        host=credential.host,
        port=credential.port,
        user=credential.user,
        password=credential.password,
        database=credential.dbname,
        connect_timeout=3,
    )


@pytest.fixture
async def mysql_target(tmp_path):
    """A database, a read role with SELECT on it, and an admin account on MariaDB; yields its DatabaseConfig."""
    try:
        await root_sql("SELECT 1")
    except (MysqlError, OSError) as exc:
        pytest.skip(f"needs MariaDB on 127.0.0.1:3306 (root, no password): {exc}")
    tag = secrets.token_hex(3)
    db, admin, role = f"t_{tag}", f"adm_{tag}", f"grp_read_{tag}"
    password = secrets.token_urlsafe(18)
    await root_sql(
        f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.items (id INT PRIMARY KEY)",
        f"INSERT INTO {db}.items VALUES (1), (2)",
        f"CREATE ROLE {role}",
        f"GRANT SELECT ON {db}.* TO {role}",
        f"CREATE USER '{admin}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION",
        f"GRANT {role} TO '{admin}'@'%' WITH ADMIN OPTION",
    )
    secret = tmp_path / "mysql-admin.secret"
    secret.write_text(password + "\n")
    yield DatabaseConfig(
        engine="mysql",
        host="127.0.0.1",
        port=3306,
        dbname=db,
        admin_user=admin,
        admin_password_file=secret,
        roles={"read": role},
        login_prefix=f"m{tag}",
        connection_limit=3,
    )
    for user in await accounts(f"m{tag}"):
        await root_sql(f"DROP USER IF EXISTS '{user}'@'%'")
    await root_sql(f"DROP USER IF EXISTS '{admin}'@'%'", f"DROP ROLE IF EXISTS {role}", f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture
async def mysql_broker(mysql_target, store, auditor, tmp_path):
    instance = Broker(settings_for(mysql_target, tmp_path), store, auditor)
    yield instance
    await instance.close()


def test_native_password_hash_matches_the_server():
    """The hash computed here is the one MariaDB's PASSWORD() gives."""
    rows = asyncio.run(root_sql("SELECT PASSWORD('correct horse')"))
    assert native_password_hash("correct horse") == rows[0][0]


async def test_mint_login_reuse_and_revoke_with_open_session(mysql_broker, mysql_target, auditor):
    """A minted account reads through its default role, is reused, and revoke kills its open session and drops it."""
    lease = await mysql_broker.lease(principal(), ALIAS, "read", TTL)
    assert len(lease.db_login) <= 32
    assert await mysql_broker.lease(principal(), ALIAS, "read", TTL) is lease
    credential = mysql_broker.credentials(lease)
    assert credential.dsn.startswith("mysql://")
    conn = await login(credential)
    async with conn.cursor() as cur:
        await cur.execute("SELECT COUNT(*) FROM items")
        assert (await cur.fetchone())[0] == 2
    await mysql_broker.revoke(lease, "test")
    with pytest.raises((MysqlError, OSError, RuntimeError)):
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
    conn.close()
    assert await accounts(mysql_target.login_prefix) == []
    with pytest.raises(MysqlError):
        await login(credential)
    assert auditor.types() == ["lease.mint", "lease.reuse", "lease.revoke"]


async def test_concurrent_callers_share_one_mint(mysql_broker, mysql_target):
    """Ten callers at once get one account."""
    leases = await asyncio.gather(*(mysql_broker.lease(principal(), ALIAS, "read", TTL) for _ in range(10)))
    assert len({lease.id for lease in leases}) == 1
    assert await accounts(mysql_target.login_prefix) == [leases[0].db_login]


async def test_reaper_enforces_expiry_and_drops_orphans(mysql_broker, mysql_target):
    """No VALID UNTIL on MariaDB: the reaper drops the expired account (no login after) and lease-less ones."""
    expiring = await mysql_broker.lease(principal("alice"), ALIAS, "read", timedelta(seconds=1))
    orphan = await mysql_broker.lease(principal("bob"), ALIAS, "read", TTL)
    live = await mysql_broker.lease(principal("carol"), ALIAS, "read", TTL)
    async with mysql_broker.store.begin() as db:
        await db.exec_driver_sql(f"DELETE FROM broker_leases WHERE id = '{orphan.id}'")
    credential = mysql_broker.credentials(expiring)
    await asyncio.sleep(1.2)
    report = await Reaper(mysql_broker).run_once()
    assert report.errors == []
    assert report.leases == [expiring.id]
    assert report.orphans == [orphan.db_login]
    assert await accounts(mysql_target.login_prefix) == [live.db_login]
    with pytest.raises(MysqlError):
        await login(credential)


async def test_many_leases_minted_and_revoked(mysql_broker, mysql_target):
    """200 leases minted and revoked concurrently: zero errors, zero orphans."""
    gate = asyncio.Semaphore(20)

    async def one(index: int) -> None:
        async with gate:
            lease = await mysql_broker.lease(principal(f"user{index}"), ALIAS, "read", TTL)
            await mysql_broker.revoke(lease, "load")

    results = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await accounts(mysql_target.login_prefix) == []


async def test_rotate_admin(mysql_target, store, tmp_path):
    """The MariaDB admin password is rotated, proven and saved; the old one stops working."""
    old = mysql_target.admin_password_value()
    broker = Broker(settings_for(mysql_target, tmp_path), store, MemoryAuditor())
    try:
        await broker.rotate_admin(ALIAS)
    finally:
        await broker.close()
    new = mysql_target.admin_password_value()
    assert new != old
    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user=mysql_target.admin_user, password=new)
    conn.close()
    with pytest.raises(MysqlError):
        await asyncmy.connect(host="127.0.0.1", port=3306, user=mysql_target.admin_user, password=old)


async def test_connect_with_the_lease(mysql_broker):
    """Broker.connect() gives an asyncmy connection as the minted account."""
    lease = await mysql_broker.lease(principal(), ALIAS, "read", TTL)
    conn = await mysql_broker.connect(lease)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT CURRENT_USER()")
            assert (await cur.fetchone())[0].startswith(lease.db_login + "@")
    finally:
        conn.close()
