"""What the lineage analysis knows of a database: its relations, their columns, view texts, user functions.

Pure data, read by :mod:`sqlgate.access.catalog` from the target database and
shared by every session of that database. Relation names are kept as PostgreSQL
stores them (the parser folds unquoted names the same way), so look-ups are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
# System views whose columns hold sample values of other tables' columns (statistics).
VALUE_EXPOSING_SYSTEM_RELATIONS = frozenset(
    {"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data"}
)


@dataclass(frozen=True, slots=True)
class Relation:
    """A table, view, materialized view or foreign table."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind: r, p, v, m, f
    columns: tuple[str, ...]  # in attnum order, dropped columns left out
    definition: str | None = None  # SELECT text of a view or materialized view outside the system schemas

    @property
    def qualified(self) -> str:
        """``schema.name``."""
        return f"{self.schema}.{self.name}"

    @property
    def system(self) -> bool:
        """True for relations of pg_catalog and information_schema."""
        return self.schema in SYSTEM_SCHEMAS

    @property
    def exposes_values(self) -> bool:
        """True for system relations whose columns show other tables' values (pg_stats and kin)."""
        return self.system and self.name in VALUE_EXPOSING_SYSTEM_RELATIONS


@dataclass(slots=True)
class CatalogModel:
    """Relations by OID and by name, and the names of functions defined outside the system schemas."""

    relations: Mapping[int, Relation] = field(default_factory=dict)
    user_functions: frozenset[str] = frozenset()
    by_name: dict[str, list[Relation]] = field(default_factory=dict)
    by_column: dict[tuple[int, int], str] = field(default_factory=dict)  # (oid, attnum) -> column name
    stale: bool = False  # a session changed the catalog since this snapshot was read

    @classmethod
    def build(
        cls,
        columns: Iterable[tuple[int, str, str, str, int, str]],
        views: Mapping[int, str],
        functions: Iterable[str],
    ) -> CatalogModel:
        """From rows of (oid, schema, relname, relkind, attnum, attname), view texts by OID, function names."""
        parts: dict[int, tuple[str, str, str, list[tuple[int, str]]]] = {}
        for oid, schema, name, kind, attnum, column in columns:
            entry = parts.setdefault(oid, (schema, name, kind, []))
            entry[3].append((attnum, column))
        relations: dict[int, Relation] = {}
        by_column: dict[tuple[int, int], str] = {}
        for oid, (schema, name, kind, cols) in parts.items():
            cols.sort()
            relations[oid] = Relation(oid, schema, name, kind, tuple(c for _, c in cols), views.get(oid))
            for attnum, column in cols:
                by_column[(oid, attnum)] = column
        by_name: dict[str, list[Relation]] = {}
        for relation in relations.values():
            by_name.setdefault(relation.name, []).append(relation)
        return cls(relations, frozenset(f.lower() for f in functions), by_name, by_column)

    def find(self, schema: str | None, name: str) -> list[Relation]:
        """Every relation ``name`` could mean: in ``schema``, or in any schema when none is given.

        Without a schema every candidate counts, whatever the session's search_path (which a
        session can change): the analysis then merges them, failing closed.
        """
        found = self.by_name.get(name, [])
        if schema is not None:
            return [r for r in found if r.schema == schema]
        return found


EMPTY_CATALOG = CatalogModel()
