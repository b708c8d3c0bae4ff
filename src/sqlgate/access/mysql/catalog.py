"""What MySQL masking knows of the database: its base tables and its views' definitions.

Read with the session's own login (one query, :data:`CATALOG_SQL`, on
``information_schema``): the base tables it can see and, for each view, its
definition as the server keeps it (MariaDB and MySQL write it in canonical form:
backquoted, schema-qualified names). A login without the ``SHOW VIEW`` privilege
reads an empty definition for a view it did not define: that view stays untraced
(its columns masked whole when the grant masks anything). A session that changes
the catalog (DDL) stops trusting this snapshot
(:attr:`.masking.MysqlMasking.catalog_changed`).

The MySQL listener reads it on its upstream before relaying
(:func:`sqlgate.mysqlproxy.catalog.load_catalog`); the HTTP API on its pooled
connection before each statement that masking applies to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CATALOG_SQL = (
    "(SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, NULL FROM information_schema.TABLES"
    " WHERE TABLE_TYPE = 'BASE TABLE' LIMIT 1000000)"
    " UNION ALL "
    "(SELECT TABLE_SCHEMA, TABLE_NAME, 'VIEW', VIEW_DEFINITION FROM information_schema.VIEWS LIMIT 1000000)"
)


@dataclass(frozen=True, slots=True)
class MysqlCatalog:
    """Base tables (``schema.table``, lower-case) and views (``schema.view`` to definition, None when hidden)."""

    base_tables: frozenset[str] = frozenset()
    views: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[str | None]]) -> MysqlCatalog:
        """A catalog from rows of (schema, name, ``BASE TABLE`` or ``VIEW``, definition)."""
        tables: set[str] = set()
        views: dict[str, str | None] = {}
        for schema, name, kind, definition in rows:
            relation = f"{(schema or '').lower()}.{(name or '').lower()}"
            if kind == "VIEW":
                views[relation] = definition or None
            else:
                tables.add(relation)
        return cls(frozenset(tables), views)
