"""Where each result column comes from, so masking rules match the real ``table.column``.

asyncpg does not expose the table OID and column number of a result column, so
an alias (``SELECT email AS e FROM customers``) would hide a column from rules
matched by name. For grants with mask rules, the API asks the server itself: it
describes the statement (Parse + Describe + Sync, never executed) on a raw
connection logged in with the same lease, and resolves each (table OID, column
number) in the catalog to ``schema.table`` and the column's real name. Answers
are cached for a minute per (lease, statement text, result columns).

A column the server cannot attribute to a table (an expression) has no origin;
:mod:`sqlgate.api.values` then masks it by its own name and by the masked
columns the statement's text mentions (failing closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from sqlgate.broker.broker import Broker
from sqlgate.broker.lease import Lease
from sqlgate.config import Settings
from sqlgate.errors import LeaseEnded, UpstreamError
from sqlgate.pgwire import Framer, Parse, RowDescription, Sync, UpstreamLogin
from sqlgate.pgwire.frontend import Describe
from sqlgate.proxy.upstream import Upstream, connect_upstream

Origin = tuple[str, str] | None
"""(``schema.table``, column name) of a result column, or None when it is computed."""

CACHE_SECONDS = 60.0
_TIMEOUT = 10.0
_MAX_CACHED = 4096
_CATALOG_SQL = (
    "SELECT k.oid, k.num, n.nspname || '.' || c.relname, a.attname "
    "FROM unnest($1::oid[], $2::int2[]) AS k(oid, num) "
    "JOIN pg_catalog.pg_class c ON c.oid = k.oid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = k.oid AND a.attnum = k.num"
)


class ColumnOrigins:
    """Describes statements on one raw connection per lease (only for grants that mask)."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings
        self._upstreams: dict[str, tuple[Upstream, asyncio.Lock]] = {}
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, tuple[Origin, ...] | None]] = {}

    async def of(
        self, lease: Lease, sql: str, columns: Sequence[tuple[str, str]], connection: Any
    ) -> tuple[Origin, ...] | None:
        """Each result column's origin; None when the statement does not describe (it will fail on its own).

        ``columns``: the (name, type) of the result as the driver sees it, part of the cache key so a
        changed table is described again; ``connection``: an asyncpg connection of the same lease.
        """
        key = (lease.id, sql, tuple(columns))
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            fields = await self._describe(lease, sql)
        except BaseException:
            self.lease_ended(lease.id)  # the raw connection may hold half an answer: start afresh
            raise
        origins = None if fields is None else await _resolve(fields, connection)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), origins)
        return origins

    async def _describe(self, lease: Lease, sql: str) -> tuple[tuple[int, int], ...] | None:
        upstream, lock = await self._upstream(lease)
        async with lock:
            upstream.protocol.write(Parse("", sql).encode() + Describe("S", "").encode() + Sync().encode())
            framer = Framer("backend")
            fields: tuple[tuple[int, int], ...] | None = ()
            async with asyncio.timeout(_TIMEOUT):
                while True:
                    framer.feed(await upstream.protocol.read())
                    while (frame := framer.next_frame()) is not None:
                        if frame.type == ord("T"):
                            description = RowDescription.decode(frame.payload)
                            fields = tuple((f.table_oid, f.column_attnum) for f in description.fields)
                        elif frame.type == ord("E"):
                            fields = None
                        elif frame.type == ord("Z"):
                            return fields

    async def _upstream(self, lease: Lease) -> tuple[Upstream, asyncio.Lock]:
        entry = self._upstreams.get(lease.id)
        if entry is not None and not entry[0].protocol.closed:
            return entry
        password = self._broker.password(lease)
        if password is None:
            raise LeaseEnded(f"the lease for {lease.database} has no credential in this gateway; retry")
        config = self._settings.database(lease.database)
        upstream = await connect_upstream(config, UpstreamLogin(lease.db_login, config.dbname, password), lease.id, ())
        entry = (upstream, asyncio.Lock())
        self._upstreams[lease.id] = entry
        return entry

    def lease_ended(self, lease_id: str) -> None:
        """Close the lease's connection and forget its answers."""
        entry = self._upstreams.pop(lease_id, None)
        if entry is not None:
            entry[0].protocol.close()
        self._cache = {key: value for key, value in self._cache.items() if key[0] != lease_id}

    def close(self) -> None:
        """Close every connection."""
        for lease_id in list(self._upstreams):
            self.lease_ended(lease_id)


async def _resolve(fields: tuple[tuple[int, int], ...], connection: Any) -> tuple[Origin, ...]:
    wanted = sorted({field for field in fields if field[0] and field[1] > 0})
    names: dict[tuple[int, int], tuple[str, str]] = {}
    if wanted:
        try:
            rows = await connection.fetch(_CATALOG_SQL, [oid for oid, _ in wanted], [num for _, num in wanted])
        except Exception as exc:
            raise UpstreamError(f"could not read column names for masking: {exc}") from exc
        names = {(int(row[0]), int(row[1])): (str(row[2]), str(row[3])) for row in rows}
    return tuple(names.get(field) for field in fields)
