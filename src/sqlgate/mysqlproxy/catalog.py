"""The listener's read of what MySQL masking knows: :class:`sqlgate.access.mysql.catalog.MysqlCatalog`.

Read once per session, before the upstream connection is handed to the client,
with the session's own login (see :mod:`sqlgate.access.mysql.catalog`).
"""

from __future__ import annotations

from sqlgate.access.mysql.catalog import CATALOG_SQL, MysqlCatalog
from sqlgate.mysqlproxy.upstream import Upstream, query_rows


async def load_catalog(upstream: Upstream) -> MysqlCatalog:
    """The base tables and views the session's login can see, read on its connection before relaying."""
    return MysqlCatalog.from_rows(await query_rows(upstream, CATALOG_SQL))
