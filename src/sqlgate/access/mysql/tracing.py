"""Column lineage of MySQL queries by scope, through views, derived tables and CTEs. Pure.

A :class:`Tracer` reads sqlglot's MySQL parse with the session's catalog
(:class:`.catalog.MysqlCatalog`) and says, for each output column of a query,
which base columns it is made of (:class:`sqlgate.policy.sql.lineage.Lineage`):

- a name resolves in the innermost ``FROM`` that has it, else in the enclosing
  ones (correlated subqueries), and also to an enclosing select's output alias
  (MySQL lets ``(SELECT a)`` read the alias ``a``); every candidate counts, so an
  ambiguous name depends on all of them, and since the catalog does not list base
  tables' columns, a name that may belong to a base table is also looked up in the
  enclosing scopes (MySQL would go there when the table lacks it);
- a base table's column is that column;
- a view's column is traced through the view's definition (recursively, at most
  :data:`MAX_VIEW_DEPTH` views deep, a view met again while it is traced stays
  unknown); a derived table's and a CTE's columns through their queries;
- a relation the catalog does not know, a view whose definition is hidden or
  does not parse, a table function, user variables (``@v``), functions sqlglot
  does not know (stored functions) and ``schema.function()`` calls make the
  lineage unknown: callers mask those (fail closed).

An output that is one column unchanged keeps it as ``direct`` (its mask function
applies); any other expression over it only carries it as a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlgate.access.mysql.catalog import MysqlCatalog
from sqlgate.policy.sql.lineage import CLEAN, UNKNOWN, Column, Lineage, merge

SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "mysql", "sys"})
MAX_VIEW_DEPTH = 16

Columns = tuple[tuple[str, Lineage], ...]  # a relation's columns in order: (name, lower-case; lineage)


@dataclass(frozen=True, slots=True)
class Source:
    """One entry of a ``FROM``: a base table, columns known by tracing, or unknown columns."""

    relation: str | None  # "schema.table" when it names a catalog relation
    base: bool = False  # a base table: any name may be one of its columns
    columns: Columns | None = None  # traced columns (view, derived table, CTE); None with base False: unknown

    def has(self, name: str) -> bool:
        """Whether an unqualified ``name`` may be one of this source's columns."""
        return self.columns is None or any(column == name for column, _ in self.columns)

    def column(self, name: str) -> Lineage:
        """The lineage of this source's column ``name`` (unknown when it cannot be told)."""
        if self.base and self.relation is not None:
            source = Column(self.relation, name)
            return Lineage(frozenset({source}), source)
        if self.columns is None:
            return UNKNOWN
        found = [lineage for column, lineage in self.columns if column == name]
        return union(found) if found else UNKNOWN


UNKNOWN_SOURCE = Source(None)


@dataclass
class Scope:
    """One SELECT's names: its ``FROM`` entries by alias, its output aliases, and the scope around it."""

    sources: dict[str, Source]
    aliases: dict[str, exp.Expression]
    ctes: dict[str, Columns | None]  # CTEs visible here, by name (None: cannot be traced)
    schema: str  # where unqualified table names resolve (the database, or the view's schema)
    outer: Scope | None = None
    unqualified_star: bool = False  # NATURAL or USING joins: ``*`` does not list every source's columns


def union(items: list[Lineage]) -> Lineage:
    """One column fed by several sources (set operations, ambiguous names): direct only when all agree."""
    merged = merge(items)
    directs = {item.direct for item in items}
    direct = directs.pop() if len(directs) == 1 else None
    return Lineage(merged.deps, None if merged.unknown else direct, merged.unknown)


class Tracer:
    """Traces queries over one catalog; views' columns are traced once and remembered."""

    def __init__(self, catalog: MysqlCatalog, database: str) -> None:
        self.catalog = catalog
        self.database = database.lower()
        self._views: dict[str, Columns | None] = {}
        self._tracing: list[str] = []

    # -- views ------------------------------------------------------------------

    def is_view(self, relation: str) -> bool:
        """Whether ``relation`` (``schema.name``, lower-case) is a view of the catalog."""
        return relation in self.catalog.views

    def view(self, relation: str) -> Columns | None:
        """The columns of view ``relation`` traced to base columns; None when the view cannot be traced."""
        if relation in self._views:
            return self._views[relation]
        if relation in self._tracing or len(self._tracing) >= MAX_VIEW_DEPTH:
            return None  # a cycle, or too deep: unknown (not remembered: a shallower path may trace it)
        self._tracing.append(relation)
        try:
            columns = self._view_columns(relation)
        finally:
            self._tracing.pop()
        self._views[relation] = columns
        return columns

    def view_column(self, relation: str, name: str) -> Lineage:
        """The lineage of column ``name`` of view ``relation``."""
        columns = self.view(relation)
        return UNKNOWN if columns is None else Source(relation, columns=columns).column(name.lower())

    def _view_columns(self, relation: str) -> Columns | None:
        definition = self.catalog.views.get(relation)
        if not definition or "/*" in definition:
            return None  # hidden (no SHOW VIEW privilege), or with comments the server would execute
        try:
            nodes = sqlglot.parse(definition, read="mysql")
        except (SqlglotError, RecursionError, ValueError, TypeError):
            return None
        if len(nodes) != 1 or not isinstance(nodes[0], exp.Query):
            return None
        schema = relation.split(".", 1)[0]
        return self.query(nodes[0], None, {}, schema)

    # -- queries ----------------------------------------------------------------

    def items(self, select: exp.Select) -> list[tuple[exp.Expression | None, str | None, Lineage]]:
        """A statement's output columns: (select item, output name, lineage).

        ``*`` and ``t.*`` over sources whose columns are all traced (views, derived tables,
        CTEs) stand for those columns (item None); over a base table they stay one item
        without a name, unknown (the catalog does not list base tables' columns).
        """
        ctes = self._ctes(select, None, {}, self.database)
        scope = self.scope(select, None, ctes, self.database)
        items: list[tuple[exp.Expression | None, str | None, Lineage]] = []
        for item in select.expressions:
            expanded = self.star(item, scope)
            if expanded is not None:
                items += [(None, name, lineage) for name, lineage in expanded]
            elif is_star(item):
                items.append((item, None, UNKNOWN))
            else:
                items.append((item, item.alias_or_name or None, self.expression(item, scope)))
        return items

    def query(
        self, node: exp.Expr, outer: Scope | None, ctes: dict[str, Columns | None], schema: str
    ) -> Columns | None:
        """The output columns of a query (SELECT, set operation, parenthesized query); None when unknown."""
        while isinstance(node, exp.Subquery | exp.Paren) and isinstance(node.this, exp.Expression):
            node = node.this
        ctes = self._ctes(node, outer, ctes, schema)
        if isinstance(node, exp.SetOperation):
            left = self.query(node.left, outer, ctes, schema)
            right = self.query(node.right, outer, ctes, schema)
            if left is None or right is None or len(left) != len(right):
                return None
            return tuple((name, union([a, b])) for (name, a), (_, b) in zip(left, right, strict=True))
        if isinstance(node, exp.Select):
            scope = self.scope(node, outer, ctes, schema)
            return self._select_columns(node, scope)
        return None

    def _ctes(
        self, node: exp.Expr, outer: Scope | None, ctes: dict[str, Columns | None], schema: str
    ) -> dict[str, Columns | None]:
        """``ctes`` with the CTEs ``node`` defines, each traced over the ones before it (a recursive one: unknown)."""
        with_ = node.args.get("with_")
        if not isinstance(with_, exp.With):
            return ctes
        ctes = dict(ctes)
        for cte in with_.expressions:
            name = cte.alias.lower()
            ctes[name] = None  # while it is traced, a reference to itself (WITH RECURSIVE) is unknown
            columns = None if with_.args.get("recursive") else self.query(cte.this, outer, ctes, schema)
            ctes[name] = _renamed(columns, cte.args.get("alias"))
        return ctes

    def scope(self, select: exp.Select, outer: Scope | None, ctes: dict[str, Columns | None], schema: str) -> Scope:
        """The names ``select`` reads from: its FROM and JOIN entries, its output aliases, the scope around it."""
        scope = Scope({}, {}, ctes, schema, outer)
        entries: list[exp.Expression] = []
        from_ = select.args.get("from_")
        if isinstance(from_, exp.From):
            scope.unqualified_star |= _flatten(from_.this, entries)
        scope.unqualified_star |= _joined(select, entries)
        for entry in entries:
            alias = entry.alias_or_name.lower()
            source = self._source(entry, outer, ctes, schema)
            scope.sources[alias] = UNKNOWN_SOURCE if alias in scope.sources or not alias else source
        for item in select.expressions:
            if isinstance(item, exp.Alias):
                scope.aliases.setdefault(item.alias.lower(), item.this)
        return scope

    def _source(
        self, entry: exp.Expression, outer: Scope | None, ctes: dict[str, Columns | None], schema: str
    ) -> Source:
        if isinstance(entry, exp.Table) and isinstance(entry.this, exp.Identifier):
            alias = entry.args.get("alias")
            renames = isinstance(alias, exp.TableAlias) and bool(alias.columns)
            return UNKNOWN_SOURCE if renames else self._table(entry, ctes, schema)
        if isinstance(entry, exp.Subquery):
            columns = _renamed(self.query(entry.this, outer, ctes, schema), entry.args.get("alias"))
            return _known(None, columns)
        return UNKNOWN_SOURCE  # table functions (JSON_TABLE), LATERAL, VALUES, ...

    def _table(self, table: exp.Table, ctes: dict[str, Columns | None], schema: str) -> Source:
        name = table.name.lower()
        if not table.db and name in ctes:
            return _known(None, ctes[name])
        relation = f"{(table.db or schema).lower()}.{name}"
        if relation in self.catalog.views:
            return _known(relation, self.view(relation))
        if relation in self.catalog.base_tables or relation.split(".", 1)[0] in SYSTEM_SCHEMAS:
            return Source(relation, base=True)
        return UNKNOWN_SOURCE  # not in the catalog: created since, temporary, or not visible

    def _select_columns(self, select: exp.Select, scope: Scope) -> Columns | None:
        columns: list[tuple[str, Lineage]] = []
        for item in select.expressions:
            expanded = self.star(item, scope)
            if expanded is not None:
                columns += expanded
            elif is_star(item):
                return None
            else:
                columns.append((item.alias_or_name.lower(), self.expression(item, scope)))
        return tuple(columns)

    def star(self, item: exp.Expression, scope: Scope) -> list[tuple[str, Lineage]] | None:
        """The columns ``*`` or ``t.*`` stands for, when every one is known; None otherwise (or not a star)."""
        if isinstance(item, exp.Star) and not scope.unqualified_star:
            sources = list(scope.sources.values())
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star) and not item.args.get("db"):
            found = scope.sources.get(item.table.lower())
            sources = [found] if found is not None else []
        else:
            return None
        if not sources or any(source.columns is None for source in sources):
            return None
        return [column for source in sources for column in source.columns or ()]

    # -- expressions ------------------------------------------------------------

    def expression(self, node: exp.Expression, scope: Scope, resolving: frozenset[int] = frozenset()) -> Lineage:
        """The lineage of one value expression read in ``scope``."""
        if isinstance(node, exp.Alias | exp.Paren):
            return self.expression(node.this, scope, resolving)
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            return self.resolve(node, scope, resolving)
        if isinstance(node, exp.Query | exp.Subquery):
            columns = self.query(node, scope, scope.ctes, scope.schema)
            return UNKNOWN if columns is None else merge(lineage for _, lineage in columns)
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Star):
            return CLEAN
        if isinstance(node, exp.Parameter | exp.Anonymous | exp.Dot | exp.Star | exp.Column):
            return UNKNOWN  # @variables, stored functions, schema.function(), a bare * or t.* in an expression
        return merge(self.expression(child, scope, resolving) for child in node.iter_expressions()).derived()

    def resolve(self, column: exp.Column, scope: Scope, resolving: frozenset[int] = frozenset()) -> Lineage:
        """What a column reference reads: the sources (and enclosing output aliases) it may name."""
        name = column.name.lower()
        table = column.table.lower()
        database = column.text("db").lower()
        if not name or column.args.get("catalog"):
            return UNKNOWN
        found: list[Lineage] = []
        current: Scope | None = scope
        while current is not None:
            if table:
                source = current.sources.get(table)
                if source is not None:
                    if database and source.relation != f"{database}.{table}":
                        return UNKNOWN
                    return union([*found, source.column(name)])
            else:
                candidates = [source for source in current.sources.values() if source.has(name)]
                found += [source.column(name) for source in candidates]
                alias = current.aliases.get(name) if current is not scope else None  # seen from a subquery only
                if alias is not None:
                    key = id(alias)
                    found.append(UNKNOWN if key in resolving else self.expression(alias, current, resolving | {key}))
                if candidates and all(source.columns is not None for source in candidates):
                    return union(found)  # a traced column has it for certain: MySQL looks no further
            current = current.outer  # a base table may lack the name: MySQL would look in the enclosing scope
        return union(found) if found else UNKNOWN


def _flatten(entry: exp.Expression, entries: list[exp.Expression]) -> bool:
    """Add the tables of one FROM entry to ``entries``, parenthesized joins (``(a JOIN b ON ...)``) included.

    True when a join in it is NATURAL or USING (then ``*`` does not list every column of every table).
    """
    if isinstance(entry, exp.Subquery) and not entry.alias and isinstance(entry.this, exp.Table | exp.Subquery):
        return _flatten(entry.this, entries) | _joined(entry, entries)
    entries.append(entry)
    return _joined(entry, entries)


def _joined(node: exp.Expression, entries: list[exp.Expression]) -> bool:
    """Add the entries ``node`` joins to ``entries``; True when a join is NATURAL or USING."""
    merging = False
    for join in node.args.get("joins") or []:
        merging |= bool(join.args.get("using") or join.args.get("method"))
        merging |= _flatten(join.this, entries)
    return merging


def _known(relation: str | None, columns: Columns | None) -> Source:
    """A source with traced columns, or an unknown one when they could not be traced."""
    return Source(relation, columns=columns) if columns is not None else UNKNOWN_SOURCE


def is_star(item: exp.Expression) -> bool:
    """Whether a select item is ``*`` or ``t.*``."""
    return isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star))


def _renamed(columns: Columns | None, alias: object) -> Columns | None:
    """``columns`` under the column names of ``AS d(a, b)``, when it gives some (None when they do not line up)."""
    if columns is None or not isinstance(alias, exp.TableAlias) or not alias.columns:
        return columns
    names = [identifier.name.lower() for identifier in alias.columns]
    if len(names) != len(columns):
        return None
    return tuple((name, lineage) for name, (_, lineage) in zip(names, columns, strict=True))
