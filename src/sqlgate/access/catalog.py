"""The catalog the lineage analysis reads, per database: relations, columns, view texts, user functions.

Read through a connection logged in with the session's own lease (the raw
upstream of a wire session before it is handed to the client, or an asyncpg
connection of the API's pool), cached per database alias for a minute, and read
again early when a statement names a relation the snapshot does not know
(at most every few seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlgate.errors import UpstreamError
from sqlgate.pgwire.backend import data_row_values
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query
from sqlgate.policy.sql.catalog_model import CatalogModel

COLUMNS_SQL = (
    "SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') LIMIT 1000000"
)
VIEWS_SQL = (
    "SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)
FUNCTIONS_SQL = (
    "SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
)
SNAPSHOT_TTL = 60.0
REFRESH_AFTER_UNKNOWN = 5.0
_TIMEOUT = 10.0

Rows = Sequence[Sequence[Any]]


def build(columns: Rows, views: Rows, functions: Rows) -> CatalogModel:
    """A catalog from the rows of the three queries (values as text or as Python values)."""
    return CatalogModel.build(
        ((int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5])) for r in columns),
        {int(r[0]): str(r[1]) for r in views if r[1] is not None},
        (str(r[0]) for r in functions),
    )


class Catalogs:
    """A catalog snapshot per database alias, shared by every session of that database."""

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[float, CatalogModel]] = {}

    def fresh(self, alias: str) -> CatalogModel | None:
        """The snapshot of ``alias`` while it is younger than a minute."""
        cached = self._snapshots.get(alias)
        if cached is not None and time.monotonic() - cached[0] < SNAPSHOT_TTL:
            return cached[1]
        return None

    def invalidate(self, alias: str) -> None:
        """Forget the snapshot of ``alias`` (a session changed the catalog): the next session reads it again.

        The snapshot is marked stale too, so sessions that hold it mask everything from then on.
        """
        cached = self._snapshots.pop(alias, None)
        if cached is not None:
            cached[1].stale = True

    def may_refresh(self, alias: str) -> bool:
        """True when a statement naming an unknown relation may read the catalog again now."""
        cached = self._snapshots.get(alias)
        return cached is None or time.monotonic() - cached[0] >= REFRESH_AFTER_UNKNOWN

    async def get(
        self, alias: str, read: Callable[[], Awaitable[CatalogModel]], *, refresh: bool = False
    ) -> CatalogModel:
        """The snapshot of ``alias``, read with ``read`` when stale (or when ``refresh`` and allowed)."""
        cached = None if refresh and self.may_refresh(alias) else self.fresh(alias)
        if cached is not None:
            return cached
        catalog = await read()
        self._snapshots[alias] = (time.monotonic(), catalog)
        return catalog


async def read_with_asyncpg(connection: Any) -> CatalogModel:
    """Read the catalog through an asyncpg connection."""
    try:
        columns = await connection.fetch(COLUMNS_SQL)
        views = await connection.fetch(VIEWS_SQL)
        functions = await connection.fetch(FUNCTIONS_SQL)
    except Exception as exc:
        raise UpstreamError(f"could not read the database catalog for masking: {exc}") from exc
    return build(columns, views, functions)


async def read_raw(protocol: Any) -> CatalogModel:
    """Read the catalog through a raw upstream protocol (logged in, not yet attached to a client)."""
    protocol.write(Query(f"{COLUMNS_SQL}; {VIEWS_SQL}; {FUNCTIONS_SQL}").encode())
    framer = Framer("backend")
    results: list[list[list[str | None]]] = [[], [], []]
    index = 0
    async with asyncio.timeout(_TIMEOUT):
        while True:
            framer.feed(await protocol.read())
            while (frame := framer.next_frame()) is not None:
                if frame.type == ord("D") and index < 3:
                    values = data_row_values(frame.payload)
                    results[index].append([None if v is None else bytes(v).decode("utf-8", "replace") for v in values])
                elif frame.type == ord("C"):
                    index += 1
                elif frame.type == ord("E"):
                    raise UpstreamError("could not read the database catalog for masking")
                elif frame.type == ord("Z"):
                    return build(*results)
