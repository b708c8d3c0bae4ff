"""The SQLAlchemy async engine factory: refreshing credentials, retirement before expiry, shared managers."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from sqlgate.connector import CredentialManager, GatewayCredentials, create_async_engine, create_pool, dispose_engine
from sqlgate.connector.testing import StaticToken
from tests.connector.conftest import GOOD_TOKEN


async def test_engine_rotates_without_using_expired_logins(app_db, gateway):
    """Through several 6-second logins, the engine's connections never log in or run after expiry."""
    gw, url = gateway
    engine = await create_async_engine(
        GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=6), pool_size=2
    )
    stale = 0
    try:
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO uses (role) VALUES (session_user)"))
            stale = max(stale, await asyncio.to_thread(app_db.stale_sessions))
            await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await dispose_engine(engine)
    assert stale == 0, "an idle pooled connection outlived its login"
    logins_after, uses_after, logins, uses = app_db.violations()
    assert len(gw.minted) >= 3
    assert logins >= 2
    assert uses > 30
    assert (logins_after, uses_after) == (0, 0)


async def test_pool_and_engine_share_one_manager(app_db, gateway):
    """One CredentialManager feeds both; the caller closes it."""
    gw, url = gateway
    manager = CredentialManager(GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60))
    pool = await create_pool(manager, min_size=1, max_size=1)
    engine = await create_async_engine(manager)
    try:
        async with engine.connect() as conn:
            via_engine = (await conn.execute(text("SELECT session_user"))).scalar()
        via_pool = await pool.fetchval("SELECT session_user")
    finally:
        await dispose_engine(engine)
        await pool.close()
        await manager.aclose()
    assert via_engine == via_pool == gw.minted[0][0]
    assert len(gw.minted) == 1
