"""The credential pool: valid logins through rotation, retirement before expiry, retries, one clear error."""

from __future__ import annotations

import asyncio
import time

import pytest

from sqlgate.connector import DatabaseUnavailable, GatewayCredentials, RetryPolicy, create_pool
from sqlgate.connector.testing import StaticToken
from tests.connector.conftest import GOOD_TOKEN

RECORD_USE = "INSERT INTO uses (role) VALUES (session_user)"


def source(url: str, app_db, ttl: int = 8) -> GatewayCredentials:
    return GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=ttl)


async def test_rotation_never_uses_an_expired_credential(app_db, gateway):
    """Through ~3 credential lifetimes of steady use, no login and no query happens after its login expired."""
    gw, url = gateway
    pool = await create_pool(source(url, app_db, ttl=6), min_size=2, max_size=4)
    stale = 0
    try:
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:
            await asyncio.gather(*(pool.execute(RECORD_USE) for _ in range(4)))
            stale = max(stale, await asyncio.to_thread(app_db.stale_sessions))
            await asyncio.sleep(0.2)
    finally:
        await pool.close()
    assert stale == 0, "an idle pooled connection outlived its login"
    logins_after, uses_after, logins, uses = app_db.violations()
    assert len(gw.minted) >= 3, "the credential was refreshed in the background"
    assert logins >= 3
    assert uses > 50
    assert (logins_after, uses_after) == (0, 0)


async def test_idle_connections_retire_before_their_login_expires(app_db, gateway):
    """Connections idle in the pool are closed by their timer before the login expires, and replaced."""
    _, url = gateway
    pool = await create_pool(source(url, app_db, ttl=5), min_size=3, max_size=3)
    stale = 0
    try:
        async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as c:
            for con in (a, b, c):
                await con.execute(RECORD_USE)
        for _ in range(28):  # 7 s idle: longer than the 5-second login
            await asyncio.sleep(0.25)
            stale = max(stale, await asyncio.to_thread(app_db.stale_sessions))
        await pool.execute(RECORD_USE)
    finally:
        await pool.close()
    assert stale == 0, "an idle pooled connection outlived its login"
    assert app_db.violations()[:2] == (0, 0)


async def test_terminated_backends_are_replaced(app_db, gateway):
    """57P01 (pg_terminate_backend) on pooled connections: the next checkouts reconnect and succeed."""
    _, url = gateway
    pool = await create_pool(source(url, app_db, ttl=60), min_size=3, max_size=3)
    try:
        await asyncio.gather(*(pool.execute(RECORD_USE) for _ in range(3)))
        assert app_db.terminate_app_backends() >= 1
        results = await asyncio.gather(*(pool.fetchval("SELECT 1") for _ in range(6)))
    finally:
        await pool.close()
    assert results == [1] * 6


async def test_connection_refused_is_retried_until_restored(app_db, proxied_gateway, fault_proxy):
    """With the database unreachable for a moment, a checkout waits through retries and then succeeds."""
    _, url = proxied_gateway
    patient = RetryPolicy(attempts=30, base_delay=0.1, max_delay=0.3)  # ~4 s of retries, far more than 0.5 s
    pool = await create_pool(source(url, app_db, ttl=60), min_size=1, max_size=2, retry=patient)
    try:
        fault_proxy.cut()
        query = asyncio.create_task(pool.fetchval("SELECT 42"))
        await asyncio.sleep(0.5)
        assert not query.done()
        fault_proxy.restore()
        assert await query == 42
    finally:
        await pool.close()


async def test_retries_are_bounded_and_end_in_one_clear_error(app_db, proxied_gateway, fault_proxy):
    """Connectivity that never comes back ends in DatabaseUnavailable naming the last fault."""
    _, url = proxied_gateway
    pool = await create_pool(
        source(url, app_db, ttl=60), min_size=0, max_size=1, retry=RetryPolicy(attempts=3, base_delay=0.05)
    )
    try:
        fault_proxy.cut()
        with pytest.raises(DatabaseUnavailable) as info:
            await pool.fetchval("SELECT 1")
    finally:
        await pool.close()
    assert info.value.attempts == 3
    assert "after 3 attempts" in str(info.value)
    assert "ConnectionRefusedError" in str(info.value)


async def test_missing_database_fails_at_once(app_db, gateway):
    """A non-transient fault (no such database) is not retried."""
    gw, url = gateway
    gw.dbname = "no_such_db"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        await create_pool(GatewayCredentials(url, "no_such_db", identity=StaticToken(GOOD_TOKEN)), min_size=1)
    assert "3D000" in str(info.value)
    assert time.monotonic() - started < 5
