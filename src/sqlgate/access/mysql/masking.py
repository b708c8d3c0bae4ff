"""Masking for MySQL sessions: each result column's origin from its column definition and the parse.

The same rules as every front end (:class:`sqlgate.access.masking.MaskRules`), fed
with a lineage built here, because the lineage analysis of :mod:`sqlgate.policy.sql.lineage`
reads PostgreSQL's parse tree only. The session's catalog (:mod:`.catalog`: base
tables, and views with their definitions, read at login) and the statement's parse
(sqlglot, MySQL dialect) are traced by :class:`.tracing.Tracer`: names resolved by
scope through derived tables, CTEs, subqueries and views (view definitions parsed in
turn, views over views to a bounded depth, cycles unknown).

- a column whose definition names a base table (``schema``, ``org_table``,
  ``org_name``) in a statement that reads base tables only (no view, derived table
  or CTE), under that table's name, *is* that column: its mask function runs on the value;
- a column of a view: MariaDB names the view (or its alias) with the view's column,
  or, when the result is sorted, grouped or distinct, the base table beneath with the
  output's name (derived tables and CTEs likewise); so in a statement that reads a
  view, a derived table, a CTE or a relation the catalog lacks, the parse traced
  through them decides: a view column that is one base column unchanged takes that
  column's mask; one computed from masked columns is replaced whole; one proven
  clean is shown;
- a computed column (no ``org_table``) has the lineage the parse gives its select
  item, and also depends on every column it names under every table of the statement
  (views traced to their columns);
- unknown, so replaced whole: a view whose definition the login cannot read (it needs
  ``SHOW VIEW``; empty otherwise) or sqlglot cannot parse, a view or function call the
  trace cannot follow (stored functions, ``@`` variables), a relation the catalog does
  not know (created since the login, temporary), a derived table or CTE posing as a
  table, a result that does not line up with the select items (a ``*`` over a base
  table in such a statement).

Unknown and dependent columns are replaced whole (``****`` for text, NULL
otherwise), so this fails closed: a column is shown only when the parse proves it
clean.

When the grant masks anything, statements that would move a masked value
elsewhere are refused (INSERT ... SELECT, UPDATE ... SET, CREATE ... AS SELECT
(views included), SELECT ... INTO, user variables, stored functions), as are those
reading a relation the catalog does not know into a table, and statements that do
not parse. After a statement that changes the catalog (DDL) the session masks every
column it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlgate.access.masking import ColumnMask, MaskRules, Plan
from sqlgate.access.mysql.catalog import MysqlCatalog
from sqlgate.access.mysql.statements import shape_key
from sqlgate.access.mysql.tracing import SYSTEM_SCHEMAS, Tracer, is_star
from sqlgate.mywire.constants import BINARY_CHARSET, TEXT_LIKE_TYPES
from sqlgate.mywire.results import ColumnDefinition
from sqlgate.policy.sql.lineage import UNKNOWN, Column, Lineage, merge

_CACHED = 1024


@dataclass(frozen=True, slots=True)
class Shape:
    """What the parse says about one statement's result: each select item's lineage, in order, or None."""

    items: tuple[tuple[str | None, Lineage], ...] | None  # (output name if known, lineage); None: cannot tell
    has_star: bool = False
    shadowed: frozenset[str] = frozenset()  # names of derived tables and CTEs: they may pose as a base table
    relations: Mapping[str, frozenset[str]] = field(default_factory=dict)  # table name or alias: what it names
    # it reads a view, a relation the catalog lacks, a derived table or a CTE: sorted or grouped, MariaDB may then
    # name a base table in org_table with the output's name in org_name, so only the parse can tell the origin
    indirect: bool = False


@dataclass
class Analysis:
    """A text's statements as masking sees them: a refusal, or one shape per statement."""

    refusal: str | None
    shapes: list[Shape] = field(default_factory=list)
    changes_catalog: bool = False


class MysqlMasking:
    """One session's masking on a MySQL database: the grant's rules, the catalog's base tables and views."""

    def __init__(
        self,
        mask: Mapping[str, str],
        *,
        hash_key: bytes,
        base_tables: frozenset[str],
        database: str,
        views: Mapping[str, str | None] | None = None,
    ) -> None:
        self.rules = MaskRules(mask, hash_key=hash_key)
        self.catalog = MysqlCatalog(base_tables, dict(views or {}))  # "schema.name", lower-case
        self.base_tables = base_tables
        self.database = database
        self.tracer = Tracer(self.catalog, database)
        self.catalog_changed = False
        self._analyses: dict[str, Analysis] = {}

    def analyze(self, sql: str) -> Analysis:
        """The analysis of ``sql``, remembered by literal shape (:func:`.statements.shape_key`)."""
        key = shape_key(sql)
        found = self._analyses.get(key)
        if found is None:
            found = self._analyze(sql)
            if len(self._analyses) >= _CACHED:
                self._analyses.clear()
            self._analyses[key] = found
        return found

    def _analyze(self, sql: str) -> Analysis:
        if "/*!" in sql or "/*M!" in sql:
            return Analysis("executable comments cannot be traced, and this grant masks data")
        try:
            nodes = sqlglot.parse(sql, read="mysql")
        except (SqlglotError, RecursionError, ValueError, TypeError) as exc:
            first = (str(exc).splitlines() or ["syntax error"])[0][:200]
            return Analysis(f"the statement does not parse ({first}), so what it reveals cannot be traced")
        analysis = Analysis(None)
        for node in nodes:
            if not isinstance(node, exp.Expression):
                continue
            if isinstance(node, exp.Command):
                keyword = str(node.this).upper()
                if keyword not in {"SHOW", "GRANT", "REVOKE", "KILL", "FLUSH", "LOCK", "UNLOCK"}:
                    return Analysis(f"{keyword} statements cannot be traced, and this grant masks data")
                analysis.changes_catalog = analysis.changes_catalog or keyword in {"GRANT", "REVOKE"}
                analysis.shapes.append(Shape(None))
                continue
            refusal = self._sink(node)
            if refusal is not None:
                return Analysis(refusal)
            if isinstance(node, exp.Create | exp.Drop | exp.Alter) or node.find(exp.RenameColumn) is not None:
                analysis.changes_catalog = True
            analysis.shapes.append(self._shape(node))
        return analysis

    # -- sinks ------------------------------------------------------------------

    def _sink(self, node: exp.Expression) -> str | None:
        """Why ``node`` would move a masked value somewhere else, or None."""
        tables = _tables(node, self.database)
        for what, source in _sources(node):
            leak = self.rules.leak(self._coarse(source, tables, check=_tables(source, self.database)))
            if leak is not None:
                return f"{what} would receive {leak}, which this grant masks"
        return None

    # -- shapes -----------------------------------------------------------------

    def _shape(self, node: exp.Expression) -> Shape:
        select = node if isinstance(node, exp.Select) else None
        if isinstance(node, exp.Union | exp.Intersect | exp.Except):
            return Shape(None)
        if select is None:
            return Shape(None)
        tables = _tables(select, self.database)
        items: list[tuple[str | None, Lineage]] = []
        star = False
        for item, name, lineage in self.tracer.items(select):
            if item is not None and is_star(item):
                star = True
                items.append((None, UNKNOWN))
            elif item is None:  # a column of a traced * (a view, a derived table, a CTE)
                items.append((name, lineage))
            else:
                items.append((name, _both(lineage, self._coarse(item, tables))))
        relations = _relations(select, self.database)
        shadowed = _shadowing_names(select)
        indirect = bool(shadowed) or any(not self._is_base(r) for named in relations.values() for r in named)
        return Shape(tuple(items), star, shadowed, relations, indirect)

    def _is_base(self, relation: str) -> bool:
        return relation in self.base_tables or relation.split(".", 1)[0] in SYSTEM_SCHEMAS

    def _coarse(self, node: exp.Expression, tables: list[str], check: Sequence[str] = ()) -> Lineage:
        """Every column ``node`` names, under every table of the statement (views traced to their columns).

        Unknown for variables and stored functions, for a view that cannot be traced, and for a
        table of ``check`` the catalog does not know (created since, temporary, not visible).
        """
        coarse = _lineage(node, tables)
        deps = frozenset(column for column in coarse.deps if not self.tracer.is_view(column.relation))
        names = {column.name.lower() for column in node.find_all(exp.Column) if column.name and not column.is_star}
        parts = [Lineage(deps, None, coarse.unknown)]
        for view in {table for table in tables if self.tracer.is_view(table)}:
            columns = self.tracer.view(view)
            parts += [UNKNOWN] if columns is None else [traced for name, traced in columns if name in names]
        root = node.root()
        ctes = _shadowing_names(root) if isinstance(root, exp.Expression) else frozenset()
        known = self.catalog.base_tables | self.catalog.views.keys()
        for table in check:
            schema, name = table.split(".", 1)
            if table not in known and schema not in SYSTEM_SCHEMAS and name not in ctes:
                parts.append(UNKNOWN)
        return merge(parts)

    # -- plans ------------------------------------------------------------------

    def plan(self, shape: Shape | None, columns: Sequence[ColumnDefinition]) -> Plan:
        """The mask of each result column, from its definition and the statement's shape."""
        plan: dict[int, ColumnMask] = {}
        for index, column in enumerate(columns):
            lineage = self._column_lineage(shape, index, column, len(columns))
            text_like = column.type in TEXT_LIKE_TYPES and column.charset != BINARY_CHARSET
            mask = self.rules.column_mask(lineage, text_like=text_like)
            if mask is not None:
                plan[index] = mask
        return plan

    def _column_lineage(self, shape: Shape | None, index: int, column: ColumnDefinition, count: int) -> Lineage:
        if self.catalog_changed:
            return UNKNOWN
        if column.org_table and column.org_name:
            return self._named_column(shape, index, column, count)
        if column.org_table or shape is None or shape.items is None:
            return UNKNOWN
        return _item(shape, index, count) or UNKNOWN

    def _named_column(self, shape: Shape | None, index: int, column: ColumnDefinition, count: int) -> Lineage:
        """A column whose definition names a table or view: its lineage, when the parse proves what it names.

        MariaDB names a base table in ``org_table``, or a view's (a derived table's, a CTE's) alias
        with the view's column in ``org_name``; but through a view, derived table or CTE sorted,
        grouped or distinct it may name the base table beneath with the output's name (an alias,
        even). So the name is taken for a base table only in a statement that reads base tables
        alone and names that table under it; otherwise the parse traced through views, derived
        tables and CTEs decides, else (a ``*`` it cannot list) the one view named so, else unknown.
        """
        schema = (column.schema or self.database).lower()
        table = column.org_table.lower()
        relation = f"{schema}.{table}"
        source = Column(relation, column.org_name.lower())
        if schema in SYSTEM_SCHEMAS:
            return Lineage(frozenset({source}), source)
        # a derived table or CTE named like a base table reports that name: only a parse without one proves it
        if shape is None or shape.items is None or table in shape.shadowed:
            return UNKNOWN
        named = shape.relations.get(table, frozenset())
        if not shape.indirect:
            return Lineage(frozenset({source}), source) if named == {relation} and self._is_base(relation) else UNKNOWN
        traced = _item(shape, index, count)
        if traced is not None:
            return traced
        if len(named) == 1 and self.tracer.is_view(view := next(iter(named))):
            return self.tracer.view_column(view, column.org_name)
        return UNKNOWN


def _item(shape: Shape, index: int, count: int) -> Lineage | None:
    """The lineage the parse gives result column ``index``, when the select items line up with the result.

    Not by name: with a ``*`` the parse cannot list, a column it brings may bear an item's name.
    """
    if shape.items is None or shape.has_star or len(shape.items) != count:
        return None
    return shape.items[index][1]


def _sources(node: exp.Expression) -> list[tuple[str, exp.Expression]]:
    """The values ``node`` sends somewhere other than its result: into a table, a variable, a stored function."""
    sources: list[tuple[str, exp.Expression]] = []
    if isinstance(node, exp.Insert | exp.Create) and isinstance(node.expression, exp.Expression):
        sources.append((f"{type(node).__name__.upper()} ... SELECT", node.expression))
    if isinstance(node, exp.Update):
        sources += [("UPDATE ... SET", item) for item in node.expressions]
    if isinstance(node, exp.Set):
        sources += [("SET", _assigned(item)) for item in node.expressions]
    for into in node.find_all(exp.Into):
        if into.parent is not None:
            sources += [("SELECT ... INTO", item) for item in into.parent.expressions]
    sources += [("a user variable", a.expression) for a in node.find_all(exp.PropertyEQ)]
    for call in node.find_all(exp.Anonymous):
        sources += [(f"function {call.name}()", arg) for arg in call.expressions]
    return sources


def _shadowing_names(node: exp.Expression) -> frozenset[str]:
    """Names of every derived table and CTE in ``node`` (lower-case)."""
    names = {sub.alias.lower() for sub in node.find_all(exp.Subquery) if sub.alias}
    names |= {cte.alias.lower() for cte in node.find_all(exp.CTE) if cte.alias}
    return frozenset(names)


def _relations(node: exp.Expression, database: str) -> dict[str, frozenset[str]]:
    """Each name a table goes by in ``node`` (its alias, and its own name) with the ``schema.table`` it stands for."""
    named: dict[str, set[str]] = {}
    for table in node.find_all(exp.Table):
        if table.name:
            relation = f"{(table.db or database).lower()}.{table.name.lower()}"
            for name in {table.alias_or_name.lower(), table.name.lower()}:
                named.setdefault(name, set()).add(relation)
    return {name: frozenset(relations) for name, relations in named.items()}


def _both(traced: Lineage, coarse: Lineage) -> Lineage:
    """One output's lineage from the scope tracing and from the coarse cross product: every dependency of both."""
    merged = merge([traced, coarse])  # its mask function applies only when ``direct`` is its one masked dependency
    return Lineage(merged.deps, None if merged.unknown else traced.direct, merged.unknown)


def _assigned(item: exp.Expression) -> exp.Expression:
    """The value side of one SET item (``@x = <value>``), or the item itself."""
    inner = item.this if isinstance(item, exp.SetItem) else item
    value = inner.expression if isinstance(inner, exp.EQ | exp.PropertyEQ) else None
    return value if isinstance(value, exp.Expression) else item


def _tables(node: exp.Expression, database: str) -> list[str]:
    """Every table ``node`` names, as ``schema.table`` (lower-case)."""
    return [f"{(t.db or database).lower()}.{t.name.lower()}" for t in node.find_all(exp.Table) if t.name]


def _lineage(node: exp.Expression, tables: list[str]) -> Lineage:
    """Every column ``node`` reads, under every table of the statement; unknown for variables and stored functions."""
    unknown = any(True for _ in node.find_all(exp.Parameter, exp.Anonymous))  # @user variables, stored functions
    names = {column.name.lower() for column in node.find_all(exp.Column) if column.name and not column.is_star}
    stars = any(True for _ in node.find_all(exp.Star)) and node.find(exp.Subquery, exp.Select) is not None
    if stars:
        unknown = True
    if names and not tables:
        unknown = True
    deps = frozenset(Column(table, name) for table in tables for name in names)
    return Lineage(deps, None, unknown)
