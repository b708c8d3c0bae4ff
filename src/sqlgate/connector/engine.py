"""A SQLAlchemy 2 async engine whose connections use refreshing credentials.

:func:`create_async_engine` builds an ``AsyncEngine`` on the asyncpg dialect with
``async_creator`` taking the credential manager's current credential (with the
same bounded retries as the pool) and ``pool_pre_ping=True``. As in the asyncpg
pool, each connection retires before its credential expires: an idle one is
closed by a timer (the pre-ping then replaces it), a checked-out one at check-in,
and a checkout never hands out one past its time; ``pool_recycle`` caps every
connection's age.
SQLAlchemy is imported only when this module is.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import Engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _sa_create_async_engine

from sqlgate.connector.credentials import CredentialSource
from sqlgate.connector.manager import CredentialManager
from sqlgate.connector.pool import (
    DEFAULT_MAX_LIFETIME,
    CredentialConnection,
    arm_retirement,
    connect_with_retries,
    lifetime_for,
)
from sqlgate.connector.retry import RetryPolicy

__all__ = ["create_async_engine", "dispose_engine"]

_MANAGERS: weakref.WeakKeyDictionary[Engine, tuple[CredentialManager, bool]] = weakref.WeakKeyDictionary()


async def create_async_engine(
    source: CredentialSource | CredentialManager,
    *,
    retry: RetryPolicy | None = None,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    margin: float = 30.0,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """An ``AsyncEngine`` over ``source``; starts the credential manager (fetches the first credential).

    Give a :class:`CredentialManager` to share one with a pool; the caller then
    closes it. Otherwise the engine's manager is closed by ``await engine.dispose()``
    through :func:`dispose_engine`. ``engine_kwargs`` go to SQLAlchemy
    (``pool_size``, ``max_overflow``, ``echo``...).
    """
    manager = source if isinstance(source, CredentialManager) else CredentialManager(source, margin=margin)
    await manager.start()
    policy = retry or RetryPolicy()

    async def creator() -> Any:
        con, credential = await connect_with_retries(manager, policy, connection_class=CredentialConnection)
        arm_retirement(con, lifetime_for(credential, manager, max_lifetime))
        return con

    engine_kwargs.setdefault("pool_pre_ping", True)
    engine_kwargs.setdefault("pool_recycle", int(max_lifetime))
    engine = _sa_create_async_engine("postgresql+asyncpg://", async_creator=creator, **engine_kwargs)
    event.listen(engine.sync_engine, "checkout", _on_checkout)
    event.listen(engine.sync_engine, "checkin", _on_checkin)
    _MANAGERS[engine.sync_engine] = (manager, not isinstance(source, CredentialManager))
    return engine


async def dispose_engine(engine: AsyncEngine) -> None:
    """Dispose of ``engine`` and close its credential manager if the engine made it."""
    await engine.dispose()
    manager, owned = _MANAGERS.pop(engine.sync_engine, (None, False))
    if manager is not None and owned:
        await manager.aclose()


def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    state = getattr(dbapi_connection.driver_connection, "sqlgate", None)
    if state is None:
        return
    if state.due or time.monotonic() >= state.retire_at:
        # SQLAlchemy discards this connection and checks out (or makes) another.
        raise exc.DisconnectionError("the connection's credential is about to expire")
    state.in_use = True


def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
    con = getattr(dbapi_connection, "driver_connection", None)
    state = getattr(con, "sqlgate", None)
    if con is None or state is None:
        return
    state.in_use = False
    if state.due:
        con.terminate()  # the pool's pre-ping replaces it at the next checkout
