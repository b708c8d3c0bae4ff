"""FastAPI integration: a lifespan that proves the database is reachable, and ``Annotated`` dependencies.

::

    connector = Connector(GatewayCredentials(url, "demo", identity=TokenFile(path)), end_users=EndUsers(verify))
    app = FastAPI(lifespan=connector.lifespan)

    @app.get("/orders")
    async def orders(db: DbConnection) -> list[dict]:
        return [dict(r) for r in await db.fetch("SELECT * FROM orders")]

At start-up the lifespan fetches the app's token and first credential and runs
``SELECT 1``; if any step fails the app does not start, and the
:class:`~sqlgate.connector.errors.StartupError` says whether the token, the
gateway or the database is wrong. On shutdown everything is closed.

``DbConnection`` is an asyncpg connection inside a transaction; ``DbSession`` a
SQLAlchemy ``AsyncSession`` inside a transaction (``Connector(..., sqlalchemy=True)``);
``CurrentEndUser`` the verified end user. With ``end_users`` set, each request's
transaction runs as its end user (``SET LOCAL ROLE``, ``sqlgate.subject``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from sqlgate.connector.credentials import CredentialSource
from sqlgate.connector.endusers import EndUser, EndUsers
from sqlgate.connector.errors import ConnectorError, DatabaseUnavailable, EndUserRejected, StartupError
from sqlgate.connector.manager import CredentialManager
from sqlgate.connector.pool import CredentialPool, create_pool
from sqlgate.connector.retry import RetryPolicy, describe_fault, is_transient

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = ["Connector", "CurrentEndUser", "DbConnection", "DbSession"]

log = logging.getLogger("sqlgate.connector")
STATE_KEY = "sqlgate_connector"


class Connector:
    """The database of a FastAPI app: credentials, an asyncpg pool, optionally a SQLAlchemy engine.

    ``pool_options`` go to :func:`~sqlgate.connector.create_pool`, ``engine_options``
    to :func:`~sqlgate.connector.engine.create_async_engine`.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        source: CredentialSource,
        *,
        end_users: EndUsers | None = None,
        sqlalchemy: bool = False,
        retry: RetryPolicy | None = None,
        margin: float = 30.0,
        pool_options: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.end_users = end_users
        self.use_sqlalchemy = sqlalchemy
        self.retry = retry or RetryPolicy()
        self.margin = margin
        self.pool_options = pool_options or {}
        self.engine_options = engine_options or {}
        self._manager: CredentialManager | None = None
        self._pool: CredentialPool | None = None
        self._engine: AsyncEngine | None = None

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        """The app's lifespan: :meth:`start` before the first request, :meth:`close` at shutdown."""
        await self.start()
        setattr(app.state, STATE_KEY, self)  # for test clients that do not pass lifespan state
        try:
            yield {STATE_KEY: self}
        finally:
            await self.close()

    async def start(self) -> None:
        """Fetch the token and a credential, open the pool and prove it with ``SELECT 1``.

        Raises :class:`StartupError` whose ``cause`` is ``"token"``, ``"gateway"`` or ``"database"``.
        """
        self._manager = CredentialManager(self.source, margin=self.margin)
        try:
            await self._manager.start()
            self._pool = await create_pool(self._manager, retry=self.retry, **self.pool_options)
            async with self._pool.acquire() as con:
                await con.fetchval("SELECT 1")
            if self.use_sqlalchemy:
                from sqlgate.connector.engine import create_async_engine  # noqa: PLC0415 - SQLAlchemy is optional

                self._engine = await create_async_engine(self._manager, retry=self.retry, **self.engine_options)
        except ConnectorError as exc:
            await self.close()
            log.error("sqlgate connector: %s", StartupError(exc))  # noqa: TRY400 - the cause is in the message
            raise StartupError(exc) from exc
        log.info("sqlgate connector: ready (%r)", self.source)

    async def close(self) -> None:
        """Close the engine, the pool and the credential source."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._manager is not None:
            await self._manager.aclose()
            self._manager = None

    @property
    def pool(self) -> CredentialPool:
        """The asyncpg pool (after start-up)."""
        if self._pool is None:
            raise RuntimeError("the sqlgate Connector is not started; pass connector.lifespan to FastAPI(lifespan=)")
        return self._pool

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (after start-up, with ``sqlalchemy=True``)."""
        if self._engine is None:
            raise RuntimeError("the sqlgate Connector has no SQLAlchemy engine; create it with sqlalchemy=True")
        return self._engine

    @property
    def manager(self) -> CredentialManager:
        """The credential manager (after start-up)."""
        if self._manager is None:
            raise RuntimeError("the sqlgate Connector is not started")
        return self._manager


def connector_of(request: Request) -> Connector:
    """The :class:`Connector` whose lifespan runs this app."""
    connector = getattr(request.state, STATE_KEY, None) or getattr(request.app.state, STATE_KEY, None)
    if not isinstance(connector, Connector):
        raise RuntimeError("no sqlgate Connector in this app; use FastAPI(lifespan=connector.lifespan)")  # noqa: TRY004 - a wiring mistake, not a bad argument
    return connector


@asynccontextmanager
async def _transaction(con: Any) -> AsyncIterator[None]:
    """A transaction that commits on success and rolls back on error, keeping the original error."""
    transaction = con.transaction()
    await transaction.start()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # a lost connection has nothing to roll back
            await transaction.rollback()
        raise
    await transaction.commit()


async def _end_user(request: Request) -> EndUser | None:
    connector = connector_of(request)
    if connector.end_users is None:
        return None
    try:
        return await connector.end_users.identify(request.headers.get("authorization"))
    except EndUserRejected as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


async def _db_connection(request: Request, user: Annotated[EndUser | None, Depends(_end_user)]) -> AsyncIterator[Any]:
    connector = connector_of(request)
    try:
        async with connector.pool.acquire() as con, _transaction(con):
            if user is not None and connector.end_users is not None:
                await connector.end_users.apply(con, user)
            yield con
    except DatabaseUnavailable as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    except Exception as exc:
        _raise_lost(exc)
        raise


async def _db_session(request: Request, user: Annotated[EndUser | None, Depends(_end_user)]) -> AsyncIterator[Any]:
    from sqlalchemy.ext.asyncio import AsyncSession  # noqa: PLC0415 - SQLAlchemy is optional

    connector = connector_of(request)
    try:
        async with AsyncSession(connector.engine, expire_on_commit=False) as session, session.begin():
            if user is not None and connector.end_users is not None:
                await connector.end_users.apply_session(session, user)
            yield session
    except DatabaseUnavailable as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    except Exception as exc:
        _raise_lost(exc)
        raise


def _raise_lost(exc: BaseException) -> None:
    """Raise 503 with Retry-After when ``exc`` is a transient database fault (the connection was lost)."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    chain = [exc, exc.__cause__, orig, getattr(orig, "__cause__", None)]
    fault = next((e for e in chain if e is not None and _from_the_database(e) and is_transient(e)), None)
    if fault is None and getattr(exc, "connection_invalidated", False):
        fault = exc
    if fault is not None:
        detail = f"the database connection was lost during the request ({describe_fault(fault)}); retry it"
        raise HTTPException(503, detail, headers={"Retry-After": "1"}) from None


def _from_the_database(exc: BaseException) -> bool:
    """True for the driver's and SQLAlchemy's errors and socket errors (not an endpoint's own OSError)."""
    return type(exc).__module__.split(".")[0] in {"asyncpg", "sqlalchemy"} or isinstance(exc, ConnectionError)


def _around_the_endpoint(dependency: Any) -> Any:
    """``Depends`` whose exit (commit or rollback) runs before the response is sent (FastAPI >= 0.121)."""
    try:
        return Depends(dependency, scope="function")
    except TypeError:  # older FastAPI: the exit runs after the response
        return Depends(dependency)


DbConnection = Annotated[Any, _around_the_endpoint(_db_connection)]
"""An asyncpg connection in a transaction, as the request's end user when one is configured."""

if TYPE_CHECKING:
    DbSession = Annotated[AsyncSession, _around_the_endpoint(_db_session)]
else:
    DbSession = Annotated[Any, _around_the_endpoint(_db_session)]
"""A SQLAlchemy ``AsyncSession`` in a transaction, as the request's end user when one is configured."""

CurrentEndUser = Annotated[EndUser | None, Depends(_end_user)]
"""The request's verified end user (None when the connector has no ``end_users``)."""
