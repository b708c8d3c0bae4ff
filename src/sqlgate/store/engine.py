"""Open the state database, apply migrations, hand out connections."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, insert, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sqlgate.errors import StoreError
from sqlgate.store.tables import meta

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x5167_6174_654D_6967  # one advisory lock id: replicas migrate one at a time


def async_url(url: str) -> str:
    """Map a plain ``sqlite:///`` or ``postgresql://`` URL to its async driver."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class StateStore:
    """The state database of one deployment."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def is_sqlite(self) -> bool:
        """True for the single-replica SQLite store."""
        return self.engine.dialect.name == "sqlite"

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> StateStore:
        """Connect to ``url`` (plain or async form), migrate to the newest schema."""
        full = async_url(url)
        if full.startswith("sqlite+aiosqlite:///"):
            Path(full.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            # A SQLite file is never "gone" like a server connection: pinging it costs a thread hop per use.
            engine = create_async_engine(full, pool_pre_ping=not full.startswith("sqlite"))
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(f"cannot use state database URL: {exc}") from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            if migrate:
                await store.migrate()
            await store.deployment_id()
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreError(f"state database unavailable: {_safe(exc)}") from exc
        return store

    async def migrate(self) -> None:
        """Apply every pending migration (all branches); replicas starting at once take turns."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"state database error: {_safe(exc)}") from exc

    async def ping(self) -> bool:
        """True when the state database answers."""
        try:
            async with asyncio.timeout(5), self.engine.connect() as conn:
                await conn.execute(select(1))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def deployment_id(self) -> str:
        """A random id fixed at first start; per-deployment keys derive from it."""
        try:
            async with self.begin() as conn:
                row = (await conn.execute(select(meta.c.value).where(meta.c.key == "deployment_id"))).first()
                if row is not None:
                    return str(row[0])
                value = secrets.token_hex(16)
                await conn.execute(insert(meta).values(key="deployment_id", value=value, updated_at=datetime.now(UTC)))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            async with self.begin() as conn:  # another replica wrote it first: use that one
                return str((await conn.execute(select(meta.c.value).where(meta.c.key == "deployment_id"))).scalar_one())
        return value


def alembic_config() -> AlembicConfig:
    """Alembic configuration pointing at the packaged migrations."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")


def _safe(exc: BaseException) -> str:
    """The first line of a database error, without the parameters it may echo."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
