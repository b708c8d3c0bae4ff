"""Table and column names by OID, read from the target database, so masking matches ``table.column`` rules."""

from __future__ import annotations

import asyncio
import time

from sqlgate.errors import UpstreamError
from sqlgate.pgwire.backend import data_row_values
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query
from sqlgate.proxy.masking import Catalog
from sqlgate.proxy.upstream import Upstream

SNAPSHOT_SQL = (
    "SELECT c.oid, c.relname, a.attnum, a.attname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relnamespace <> 'pg_catalog'::regnamespace "
    "LIMIT 500000"
)
SNAPSHOT_TTL = 60.0
_TIMEOUT = 10.0


class TableNames:
    """A catalog snapshot per database alias, refreshed when older than a minute."""

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[float, Catalog]] = {}

    async def for_database(self, alias: str, upstream: Upstream) -> Catalog:
        """The snapshot for ``alias``, read through ``upstream`` (before it is handed to a client) when stale."""
        cached = self._snapshots.get(alias)
        if cached is not None and time.monotonic() - cached[0] < SNAPSHOT_TTL:
            return cached[1]
        names = await read_table_names(upstream)
        self._snapshots[alias] = (time.monotonic(), names)
        return names


async def read_table_names(upstream: Upstream) -> Catalog:
    """Run the snapshot query on a logged-in connection not yet attached to a client."""
    protocol = upstream.protocol
    protocol.write(Query(SNAPSHOT_SQL).encode())
    framer = Framer("backend")
    tables: dict[int, str] = {}
    columns: dict[tuple[int, int], str] = {}
    async with asyncio.timeout(_TIMEOUT):
        while True:
            framer.feed(await protocol.read())
            while (frame := framer.next_frame()) is not None:
                if frame.type == ord("D"):
                    oid, table, attnum, column = data_row_values(frame.payload)
                    if oid is not None and table is not None and attnum is not None and column is not None:
                        tables[int(oid)] = table.decode("utf-8", "replace")
                        columns[(int(oid), int(attnum))] = column.decode("utf-8", "replace")
                elif frame.type == ord("E"):
                    raise UpstreamError("could not read table names for masking")
                elif frame.type == ord("Z"):
                    return Catalog(tables, columns)
