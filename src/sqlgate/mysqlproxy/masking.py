"""Masking for MySQL sessions: each result column's origin from its column definition, else from the parse.

The same rules as every front end (:class:`sqlgate.access.masking.MaskRules`), fed
with a lineage built here, because the lineage analysis of :mod:`sqlgate.policy.sql.lineage`
reads PostgreSQL's parse tree only:

- a column whose definition names a base table (``schema``, ``org_table``,
  ``org_name``) *is* that column: its mask function runs on the value;
- a computed column (no ``org_table``) is traced through the statement's parse
  (sqlglot, MySQL dialect): every column it references, under every table the
  statement names (no finer resolution), is a dependency; user variables,
  functions sqlglot does not know (stored functions) and a select list it cannot
  line up with the result make it unknown;
- a column of a view, a derived table, a CTE or a temporary table (its
  ``org_table`` is not a base table of the catalog) is unknown.

Unknown and dependent columns are replaced whole (``****`` for text, NULL
otherwise), so this fails closed: a computed column is shown only when the
parse proves it clean. Views are not expanded (masked whole when a grant masks
anything).

When the grant masks anything, statements that would move a masked value
elsewhere are refused (INSERT ... SELECT, UPDATE ... SET, CREATE ... AS SELECT,
SELECT ... INTO, user variables, stored functions), as are statements that do
not parse. After a statement that changes the catalog (DDL) the session masks
every column it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlgate.access.masking import ColumnMask, MaskRules, Plan
from sqlgate.mysqlproxy.statements import shape_key
from sqlgate.mywire.constants import BINARY_CHARSET, TEXT_LIKE_TYPES
from sqlgate.mywire.results import ColumnDefinition
from sqlgate.policy.sql.lineage import UNKNOWN, Column, Lineage

SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "mysql", "sys"})
_CACHED = 1024


@dataclass(frozen=True, slots=True)
class Shape:
    """What the parse says about one statement's result: each select item's lineage, in order, or None."""

    items: tuple[tuple[str | None, Lineage], ...] | None  # (output name if known, lineage); None: cannot tell
    has_star: bool = False
    shadowed: frozenset[str] = frozenset()  # names of derived tables and CTEs: they may pose as a base table


@dataclass
class Analysis:
    """A text's statements as masking sees them: a refusal, or one shape per statement."""

    refusal: str | None
    shapes: list[Shape] = field(default_factory=list)
    changes_catalog: bool = False


class MysqlMasking:
    """One session's masking on a MySQL database: the grant's rules, the catalog's base tables."""

    def __init__(self, mask: Mapping[str, str], *, hash_key: bytes, base_tables: frozenset[str], database: str) -> None:
        self.rules = MaskRules(mask, hash_key=hash_key)
        self.base_tables = base_tables  # "schema.table", lower-case
        self.database = database
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
            leak = self.rules.leak(_lineage(source, tables))
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
        for item in select.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
                star = True
                items.append((None, UNKNOWN))
                continue
            items.append((item.alias_or_name or None, _lineage(item, tables)))
        return Shape(tuple(items), star, _shadowing_names(select))

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
            return self._base_column(shape, column)
        if column.org_table or shape is None or shape.items is None:
            return UNKNOWN
        if not shape.has_star and len(shape.items) == count:  # one result column per select item, in order
            return shape.items[index][1]
        named = [lineage for name, lineage in shape.items if name == column.name]
        return named[0] if len(named) == 1 else UNKNOWN

    def _base_column(self, shape: Shape | None, column: ColumnDefinition) -> Lineage:
        """A column whose definition names its table: that column, when the table is a base table for certain."""
        schema = (column.schema or self.database).lower()
        table = column.org_table.lower()
        relation = f"{schema}.{table}"
        source = Column(relation, column.org_name.lower())
        if schema in SYSTEM_SCHEMAS:
            return Lineage(frozenset({source}), source)
        # a derived table or CTE named like a base table reports that name: only a parse without one proves it
        if shape is None or shape.items is None or table in shape.shadowed or relation not in self.base_tables:
            return UNKNOWN
        return Lineage(frozenset({source}), source)


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
