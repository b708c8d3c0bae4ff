"""Column lineage: which table columns each output column of a statement is made of. Pure.

Masking decides from this, never from the statement's text. The analysis walks
PostgreSQL's own parse tree (pglast) with a catalog (:mod:`.catalog_model`) and
traces every output column through expressions, functions, aggregates,
subqueries, CTEs, set operations, LATERAL, joins (USING and NATURAL), views
(their definitions analysed in turn), whole-row and ``table.*`` references.

Each output gets a :class:`Lineage`: the base columns it depends on, the one
column it *is* when it is that column unchanged (``direct``), and ``unknown``
when the analysis cannot prove where it comes from (a relation the catalog does
not know, a function defined in the database, a function that runs SQL text):
callers mask those (fail closed). A ``spread`` output stands for a run of
columns whose number the analysis cannot know (``*`` over a set-returning function).

Besides outputs, the analysis reports *sinks*: values that leave through another
door than the result (written into a table, into a setting, a notification, a
large object, a user-defined function), so a grant that masks a column can
refuse to launder it. Statements whose rows come from elsewhere name their
source: ``FETCH`` a cursor, ``EXECUTE`` a prepared statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pglast import parser

from sqlgate.policy.sql.catalog_model import CatalogModel, Relation


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table (or system relation): ``schema.table`` and the column's name."""

    relation: str
    name: str


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where one output column's values come from."""

    deps: frozenset[Column] = frozenset()
    direct: Column | None = None  # the output is this column's value, unchanged
    unknown: bool = False  # where it comes from cannot be proven: mask it
    name: str | None = None  # the output's name, when the analysis knows it for certain
    spread: bool = False  # stands for any number of columns (``*`` over a function)

    def named(self, name: str | None) -> Lineage:
        """The same lineage under another output name."""
        return replace(self, name=name)

    def derived(self) -> Lineage:
        """A value computed from this one: the same dependencies, never the column unchanged."""
        return Lineage(self.deps, None, self.unknown) if (self.direct or self.name or self.spread) else self


CLEAN = Lineage()
UNKNOWN = Lineage(unknown=True)


def merge(items: Iterable[Lineage]) -> Lineage:
    """The lineage of a value computed from all of ``items``."""
    deps: set[Column] = set()
    unknown = False
    for item in items:
        deps |= item.deps
        unknown = unknown or item.unknown
    return Lineage(frozenset(deps), None, unknown) if deps or unknown else CLEAN


def _union(items: Sequence[Lineage]) -> Lineage:
    """Lineage of a column fed by several sources (set operations, ambiguous names): direct only if all agree."""
    merged = merge(items)
    directs = {item.direct for item in items}
    direct = directs.pop() if len(directs) == 1 else None
    return replace(merged, direct=direct) if direct is not None else merged


@dataclass(frozen=True, slots=True)
class Sink:
    """A value that leaves other than in the result: ``what`` says where, for the refusal's message."""

    what: str
    lineage: Lineage


@dataclass(frozen=True, slots=True)
class StatementLineage:
    """One statement's outputs (None: it returns no rows), sinks, and where its rows come from."""

    kind: str
    outputs: tuple[Lineage, ...] | None = None
    sinks: tuple[Sink, ...] = ()
    opaque: str | None = None  # the statement's effect cannot be analysed at all
    fetches: str | None = None  # FETCH: the cursor's name
    executes: str | None = None  # EXECUTE: the prepared statement's name
    declares: str | None = None  # DECLARE: the cursor's name; outputs are the cursor's rows
    prepares: str | None = None  # PREPARE: the name; outputs are the prepared statement's rows
    closes: str | None = None  # CLOSE / DEALLOCATE: the name ("*" for all)
    holds: bool = False  # DECLARE ... WITH HOLD: the cursor outlives its transaction
    catalog_change: str | None = None  # "session" (temporary objects) or "database": what the analysis reads changes
    unknown_relations: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Analysis:
    """Every statement of one text, or why it could not be parsed."""

    statements: tuple[StatementLineage, ...] = ()
    error: str | None = None


# Functions that run SQL given as text, or read a whole table or cursor: their results cannot be traced.
SQL_TEXT_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "ts_stat",
        "ts_rewrite",
        "dblink",
        "dblink_exec",
    }
)
# Built-in functions whose arguments leave the result path (session state, notifications, large objects, locks).
SINK_FUNCTIONS = frozenset(
    {
        "set_config",
        "pg_notify",
        "lo_from_bytea",
        "lo_put",
        "lowrite",
        "lo_import",
        "lo_export",
        "setval",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
        "pg_logical_emit_message",
        "pg_stat_statements",
    }
)
_CURSOR_OPT_HOLD = 0x20
_NO_ROWS = (
    "InsertStmt",
    "UpdateStmt",
    "DeleteStmt",
    "MergeStmt",
)


def analyze(sql: str, catalog: CatalogModel) -> Analysis:
    """Analyse every statement of ``sql``; text that does not parse gives ``error``, never an exception."""
    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except (parser.ParseError, RecursionError, ValueError, TypeError, MemoryError) as exc:
        return Analysis(error=str(exc) or type(exc).__name__)
    statements = []
    for raw in tree.get("stmts", ()):
        analyzer = _Analyzer(catalog)
        try:
            statement = analyzer.statement(raw["stmt"])
            kind, body = next(iter(raw["stmt"].items()))
            statements.append(replace(statement, catalog_change=catalog_change(kind, body)))
        except (KeyError, TypeError, AttributeError, ValueError, StopIteration, RecursionError) as exc:
            kind = next(iter(raw.get("stmt", {"?": None})))
            statements.append(StatementLineage(kind, opaque=f"unrecognised parse tree: {type(exc).__name__}"))
    return Analysis(tuple(statements))


_CATALOG_CHANGES = frozenset({"ViewStmt", "RuleStmt", "RenameStmt", "DefineStmt", "CompositeTypeStmt"})


def catalog_change(kind: str, body: dict[str, Any]) -> str | None:
    """Whether a statement changes what the analysis reads: "session" (temporary objects), "database", or None."""
    if not (kind.startswith(("Create", "Alter", "Drop")) or kind in _CATALOG_CHANGES):
        return None
    relation = body.get("relation") or body.get("view") or (body.get("into") or {}).get("rel") or {}
    return "session" if isinstance(relation, dict) and relation.get("relpersistence") == "t" else "database"


@dataclass(slots=True)
class _Scope:
    """The relations a query level can name, and the level around it (for correlated subqueries)."""

    relations: list[_Rel] = field(default_factory=list)
    outer: _Scope | None = None
    ctes: dict[str, _Rel] = field(default_factory=dict)

    def cte(self, name: str) -> _Rel | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.outer
        return None


@dataclass(slots=True)
class _Rel:
    """A relation in scope: its alias, and its columns as (name, lineage); ``any_column`` for opaque ones."""

    alias: str | None
    columns: list[tuple[str, Lineage]]
    any_column: Lineage | None = None  # every name resolves to this (functions, unknown relations)
    schema: str | None = None
    hidden: list[_Rel] = field(default_factory=list)  # relations inside a join, reachable by their own aliases

    def column(self, name: str) -> Lineage | None:
        found = [lineage for column, lineage in self.columns if column == name]
        if found:
            return _union(found).named(name)
        if self.any_column is not None:
            return self.any_column.named(name)
        return None

    def whole_row(self) -> Lineage:
        parts = [lineage for _, lineage in self.columns]
        if self.any_column is not None:
            parts.append(self.any_column)
        return merge(parts)

    def star(self) -> list[Lineage]:
        outputs = [lineage.named(name) for name, lineage in self.columns]
        if self.any_column is not None:
            outputs.append(replace(self.any_column.derived(), spread=True))
        return outputs


class _Analyzer:
    """One statement's analysis (views analysed on the way are cached per catalog)."""

    _MAX_VIEW_DEPTH = 16
    _MAX_RECURSION_PASSES = 6

    def __init__(self, catalog: CatalogModel, depth: int = 0) -> None:
        self.catalog = catalog
        self.depth = depth
        self.sinks: list[Sink] = []
        self.unknown_relations: set[str] = set()

    # -- statements --------------------------------------------------------------

    def statement(self, node: dict[str, Any]) -> StatementLineage:  # noqa: C901, PLR0911, PLR0912 - one branch per kind
        kind, body = next(iter(node.items()))
        scope = _Scope()
        outputs: tuple[Lineage, ...] | None = None
        extra: dict[str, Any] = {}
        if kind == "SelectStmt":
            outputs = tuple(self.select(body, scope))
            if "intoClause" in body:
                self._sink_all("SELECT INTO a table", outputs)
                outputs = None
        elif kind in _NO_ROWS:
            outputs = self.modify(kind, body, scope)
        elif kind == "DeclareCursorStmt":
            extra["declares"] = body.get("portalname")
            extra["holds"] = bool(int(body.get("options", 0)) & _CURSOR_OPT_HOLD)
            outputs = tuple(self.query(body["query"], scope))
        elif kind == "PrepareStmt":
            extra["prepares"] = body.get("name")
            inner = self.statement(body["query"])
            if inner.opaque:
                return StatementLineage(kind, opaque=inner.opaque, prepares=body.get("name"))
            outputs = inner.outputs
        elif kind == "ExecuteStmt":
            self._expressions(body.get("params"), scope)
            return self._done(kind, None, executes=body.get("name"))
        elif kind == "FetchStmt":
            if body.get("ismove"):
                return self._done(kind, None)
            return self._done(kind, None, fetches=body.get("portalname"))
        elif kind == "ClosePortalStmt":
            return self._done(kind, None, closes=body.get("portalname") or "*")
        elif kind == "DeallocateStmt":
            return self._done(kind, None, closes="*" if body.get("isall") else body.get("name"))
        elif kind == "CreateTableAsStmt":
            what = "CREATE MATERIALIZED VIEW" if body.get("objtype") == "OBJECT_MATVIEW" else "CREATE TABLE AS"
            self._sink_all(what, self.query(body["query"], scope))
        elif kind == "ExplainStmt":
            self.statement(body["query"])  # EXPLAIN ANALYZE runs it: its sinks count
            outputs = (CLEAN,)
        elif kind == "VariableShowStmt":
            outputs = (CLEAN,)
        elif kind == "CallStmt":
            self._expressions(body.get("funccall"), scope)
            return self._done(kind, (replace(UNKNOWN, spread=True),))
        elif kind == "DoStmt":
            return StatementLineage(kind, opaque="a DO block runs procedural code whose output cannot be traced")
        elif kind == "CopyStmt":
            if body.get("query"):
                self._sink_all("COPY", self.query(body["query"], scope))
            elif not body.get("is_from") and body.get("relation"):
                rel = self.range_var(body["relation"], scope)
                self._sink_all("COPY", [rel.whole_row()])
        elif kind == "ViewStmt":
            self.query(body["query"], scope)  # sinks only: a view copies nothing; reading it is traced
        else:
            self._expressions(body, scope)  # other utility statements: sinks in their expressions, no rows
        return self._done(kind, outputs, **extra)

    def _done(self, kind: str, outputs: tuple[Lineage, ...] | None, **extra: Any) -> StatementLineage:
        return StatementLineage(
            kind,
            outputs,
            tuple(self.sinks),
            unknown_relations=frozenset(self.unknown_relations),
            **extra,
        )

    def query(self, node: dict[str, Any], outer: _Scope) -> list[Lineage]:
        """Outputs of a nested statement node (``{"SelectStmt": ...}`` or a data-modifying one)."""
        kind, body = next(iter(node.items()))
        if kind == "SelectStmt":
            return self.select(body, _Scope(outer=outer))
        if kind in _NO_ROWS:
            return list(self.modify(kind, body, _Scope(outer=outer)) or ())
        return [replace(UNKNOWN, spread=True)]

    def modify(self, kind: str, body: dict[str, Any], scope: _Scope) -> tuple[Lineage, ...] | None:
        """INSERT, UPDATE, DELETE, MERGE: written values are sinks; RETURNING gives the outputs."""
        self._with(body.get("withClause"), scope)
        target = self.range_var(body["relation"], scope)
        verb = kind.removesuffix("Stmt").upper()
        if kind == "InsertStmt":
            if body.get("selectStmt"):
                self._sink_all(f"INSERT INTO {target.alias}", self.query(body["selectStmt"], scope))
            conflict = body.get("onConflictClause") or {}
            scope.relations.append(target)
            self._sink_targets(verb, conflict.get("targetList"), scope)
            self._expressions(conflict.get("whereClause"), scope)
        elif kind in ("UpdateStmt", "DeleteStmt"):
            scope.relations.append(target)
            for item in [*body.get("fromClause", ()), *body.get("usingClause", ())]:
                scope.relations.append(self.from_item(item, scope))
            self._sink_targets(verb, body.get("targetList"), scope)
            self._expressions(body.get("whereClause"), scope)
        else:  # MergeStmt
            scope.relations.append(target)
            scope.relations.append(self.from_item(body["sourceRelation"], scope))
            self._expressions(body.get("joinCondition"), scope)
            for clause in body.get("mergeWhenClauses", ()):
                when = clause.get("MergeWhenClause", {})
                self._expressions(when.get("condition"), scope)
                self._sink_targets(verb, when.get("targetList"), scope)
                for value in when.get("values", ()):
                    self.sinks.append(Sink("MERGE", self.expr(value, scope)))
        returning = (body.get("returningClause") or {}).get("exprs") or body.get("returningList")
        if not returning:
            return None
        return tuple(self.targets(returning, scope))

    def _sink_targets(self, verb: str, targets: Any, scope: _Scope) -> None:
        for target in targets or ():
            res = target.get("ResTarget", {})
            if "val" in res:
                self.sinks.append(Sink(f"{verb} SET {res.get('name', '?')}", self.expr(res["val"], scope)))

    def _sink_all(self, what: str, outputs: Iterable[Lineage]) -> None:
        for output in outputs:
            self.sinks.append(Sink(what, output))

    # -- SELECT --------------------------------------------------------------------

    def select(self, body: dict[str, Any], scope: _Scope) -> list[Lineage]:
        """Outputs of one SELECT (its WITH, set operation, VALUES or target list)."""
        self._with(body.get("withClause"), scope)
        op = body.get("op", "SETOP_NONE")
        if op != "SETOP_NONE":
            left = self.select(body["larg"], _Scope(outer=scope))
            right = self.select(body["rarg"], _Scope(outer=scope))
            self._clauses(body, scope)
            return _positional(left, right)
        if "valuesLists" in body:
            rows = [[self.expr(v, scope) for v in item["List"]["items"]] for item in body["valuesLists"]]
            out = rows[0]
            for row in rows[1:]:
                out = _positional(out, row)
            return [lineage.named(f"column{i + 1}") for i, lineage in enumerate(out)]
        for item in body.get("fromClause", ()):
            scope.relations.append(self.from_item(item, scope))
        outputs = self.targets(body.get("targetList", ()), scope)
        self._clauses(body, scope)
        return outputs

    def _clauses(self, body: dict[str, Any], scope: _Scope) -> None:
        """Clauses that shape the result but give no output values: walked for sinks."""
        for key in ("whereClause", "havingClause", "groupClause", "sortClause", "windowClause", "distinctClause"):
            self._expressions(body.get(key), scope)
        for key in ("limitCount", "limitOffset"):
            self._expressions(body.get(key), scope)

    def _with(self, with_clause: dict[str, Any] | None, scope: _Scope) -> None:
        if not with_clause:
            return
        for item in with_clause.get("ctes", ()):
            cte = item["CommonTableExpr"]
            name = cte["ctename"]
            query = cte["ctequery"]
            if not with_clause.get("recursive"):
                scope.ctes[name] = _cte_rel(name, self.query(query, scope), cte)
                continue
            # A recursive CTE reads itself: iterate from "nothing" until its lineage stops growing.
            scope.ctes[name] = _Rel(name, [], any_column=CLEAN)
            previous: list[Lineage] | None = None
            for _ in range(self._MAX_RECURSION_PASSES):
                outputs = self.query(query, scope)
                scope.ctes[name] = _cte_rel(name, outputs, cte)
                if outputs == previous:
                    break
                previous = outputs
            else:
                scope.ctes[name] = _Rel(name, [], any_column=merge(previous or ()).derived() or UNKNOWN)
                scope.ctes[name].any_column = replace(scope.ctes[name].any_column or UNKNOWN, unknown=True)

    def targets(self, targets: Sequence[dict[str, Any]], scope: _Scope) -> list[Lineage]:
        """The outputs of a target list (``*`` expanded)."""
        outputs: list[Lineage] = []
        for target in targets:
            res = target["ResTarget"]
            value = res.get("val")
            ref = value.get("ColumnRef") if isinstance(value, dict) else None
            if ref is not None and ref["fields"] and "A_Star" in ref["fields"][-1]:
                outputs.extend(self.star(ref["fields"][:-1], scope))
                continue
            lineage = self.expr(value, scope)
            name = res.get("name")
            outputs.append(lineage.named(name) if name else lineage if ref is not None else lineage.named(None))
        return outputs

    def star(self, qualifier: list[dict[str, Any]], scope: _Scope) -> list[Lineage]:
        if not qualifier:
            return [out for rel in scope.relations for out in rel.star()]
        rel = self.find_relation([_name(part) for part in qualifier], scope)
        return rel.star() if rel is not None else [replace(UNKNOWN, spread=True)]

    # -- FROM ----------------------------------------------------------------------

    def from_item(self, node: dict[str, Any], scope: _Scope) -> _Rel:  # noqa: PLR0911 - one branch per kind
        kind, body = next(iter(node.items()))
        if kind == "RangeVar":
            return self.range_var(body, scope)
        if kind == "RangeSubselect":
            outer = scope if body.get("lateral") else _Scope(outer=scope.outer, ctes=scope.ctes)
            outputs = self.query(body["subquery"], outer)
            return _aliased(_Rel(None, [(o.name or "?column?", o) for o in outputs]), body.get("alias"), outputs)
        if kind == "JoinExpr":
            return self.join(body, scope)
        if kind == "RangeFunction":
            return self.range_function(body, scope)
        if kind == "RangeTableSample":
            rel = self.from_item(body["relation"], scope)
            self._expressions(body.get("args"), scope)
            return rel
        if kind in ("RangeTableFunc", "JsonTable"):
            lineage = self.expr({k: v for k, v in body.items() if k != "alias"}, scope).derived()
            return _Rel(_alias_name(body.get("alias")), [], any_column=lineage)
        return _Rel(None, [], any_column=UNKNOWN)

    def range_var(self, body: dict[str, Any], scope: _Scope) -> _Rel:
        name = body["relname"]
        schema = body.get("schemaname")
        alias = body.get("alias")
        if schema is None and (cte := scope.cte(name)) is not None:
            return _aliased(_Rel(name, list(cte.columns), cte.any_column), alias, None)
        candidates = self.catalog.find(schema, name)
        if not candidates:
            self.unknown_relations.add(f"{schema}.{name}" if schema else name)
            return _Rel(_alias_name(alias) or name, [], any_column=UNKNOWN, schema=schema)
        shapes = [self.relation_columns(r) for r in candidates]
        names = {tuple(n for n, _ in shape) for shape in shapes}
        if len(names) == 1:
            columns = [(shapes[0][i][0], _union([shape[i][1] for shape in shapes])) for i in range(len(shapes[0]))]
            rel = _Rel(name, columns, schema=schema)
        else:  # the same name in several schemas with different columns: which one runs is unknown
            everything = merge(lin for shape in shapes for _, lin in shape)
            rel = _Rel(name, [], any_column=replace(everything.derived(), unknown=True))
        return _aliased(rel, alias, None)

    def relation_columns(self, relation: Relation) -> list[tuple[str, Lineage]]:
        """Each column of a catalog relation with its lineage (views resolved to their base columns)."""
        if relation.exposes_values:
            return [(c, Lineage(unknown=True)) for c in relation.columns]
        if relation.kind in ("v", "m") and not relation.system:
            return list(zip(relation.columns, self._view(relation), strict=False))
        columns = [Column(relation.qualified, name) for name in relation.columns]
        return [(column.name, Lineage(frozenset({column}), column)) for column in columns]

    def _view(self, relation: Relation) -> list[Lineage]:
        """A view's columns, from its definition; unknown when it cannot be analysed (fail closed)."""
        unknown = [UNKNOWN] * len(relation.columns)
        if relation.definition is None or self.depth >= self._MAX_VIEW_DEPTH:
            return unknown
        cache = _view_cache(self.catalog)
        if relation.oid in cache:
            return cache[relation.oid]
        cache[relation.oid] = unknown  # a view defined in terms of itself stays unknown
        try:
            tree = json.loads(parser.parse_sql_json(relation.definition))
            inner = _Analyzer(self.catalog, self.depth + 1)
            outputs = inner.query(tree["stmts"][0]["stmt"], _Scope())
        except Exception:
            return unknown
        if len(outputs) != len(relation.columns) or any(o.spread for o in outputs):
            return unknown
        cache[relation.oid] = outputs
        return outputs

    def join(self, body: dict[str, Any], scope: _Scope) -> _Rel:
        left = self.from_item(body["larg"], scope)
        joined = _Scope(relations=[*scope.relations, left], outer=scope.outer, ctes=scope.ctes)
        right = self.from_item(body["rarg"], joined)
        using = [_name(part) for part in body.get("usingClause", ())]
        if body.get("isNatural"):
            if left.any_column is not None or right.any_column is not None:
                using = []
                opaque = merge([left.whole_row(), right.whole_row()])
                rel = _Rel(None, [], any_column=replace(opaque, unknown=True))
                rel.hidden = [left, right]
                return _aliased(rel, body.get("alias"), None)
            right_names = {n for n, _ in right.columns}
            using = [n for n, _ in left.columns if n in right_names]
        columns = [(n, _union([left.column(n) or UNKNOWN, right.column(n) or UNKNOWN])) for n in using]
        columns += [(n, lin) for n, lin in left.columns if n not in using]
        columns += [(n, lin) for n, lin in right.columns if n not in using]
        any_column = None
        if left.any_column is not None or right.any_column is not None:
            any_column = merge([x for x in (left.any_column, right.any_column) if x is not None])
        rel = _Rel(None, columns, any_column=any_column)
        rel.hidden = [*_flatten(left), *_flatten(right)]
        full = _Scope(relations=[*scope.relations, left, right], outer=scope.outer, ctes=scope.ctes)
        self._expressions(body.get("quals"), full)
        return _aliased(rel, body.get("alias"), None)

    def range_function(self, body: dict[str, Any], scope: _Scope) -> _Rel:
        parts = []
        for item in body.get("functions", ()):
            items = item.get("List", {}).get("items", [])
            if items:
                parts.append(self.expr(items[0], scope))
        lineage = merge(parts).derived() if parts else CLEAN
        alias = body.get("alias") or {}
        names = [_name(c) for c in alias.get("colnames", ())]
        rel = _Rel(alias.get("aliasname"), [(n, lineage) for n in names], any_column=lineage)
        if len(body.get("functions", ())) == 1 and not names and not body.get("ordinality"):
            rel.any_column = lineage
        return rel

    # -- expressions --------------------------------------------------------------

    def expr(self, node: Any, scope: _Scope) -> Lineage:  # noqa: C901, PLR0911 - one branch per node kind
        """The lineage of an expression's value (sinks recorded on the way)."""
        if isinstance(node, list):
            return merge(self.expr(item, scope) for item in node)
        if not isinstance(node, dict):
            return CLEAN
        if len(node) != 1:
            return merge(self.expr(value, scope) for value in node.values() if isinstance(value, dict | list))
        kind, body = next(iter(node.items()))
        if kind == "ColumnRef":
            return self.column_ref(body["fields"], scope)
        if kind == "FuncCall":
            return self.func_call(body, scope)
        if kind == "SubLink":
            return self.sub_link(body, scope)
        if kind in ("A_Const", "ParamRef", "SQLValueFunction", "TypeName", "String", "Integer", "Float"):
            return CLEAN
        if kind in ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            return merge(self.query(node, scope)).derived()
        if kind in ("TypeCast", "CollateClause") and isinstance(body, dict):
            inner = self.expr(body.get("arg"), scope)
            return inner.derived() if kind == "TypeCast" else inner
        if not isinstance(body, dict | list):
            return CLEAN
        values = body.values() if isinstance(body, dict) else body
        return merge(self.expr(value, scope) for value in values if isinstance(value, dict | list)).derived()

    def _expressions(self, node: Any, scope: _Scope) -> None:
        if node:
            self.expr(node, scope)

    def column_ref(self, fields: list[dict[str, Any]], scope: _Scope) -> Lineage:
        if fields and "A_Star" in fields[-1]:
            return merge(self.star(fields[:-1], scope)).derived()
        names = [_name(part) for part in fields]
        current: _Scope | None = scope
        while current is not None:
            found = self._resolve(names, current)
            if found is not None:
                return found
            current = current.outer
        return UNKNOWN

    def _resolve(self, names: list[str], scope: _Scope) -> Lineage | None:
        if len(names) == 1:
            hits = [lin for rel in scope.relations if (lin := rel.column(names[0])) is not None]
            known = [h for h in hits if not h.unknown]
            if known:
                return _union(known).named(names[0])
            if hits:
                return hits[0]
            rel = self.find_relation(names, scope)
            return rel.whole_row() if rel is not None else None
        rel = self.find_relation(names[:-1], scope)
        if rel is None:
            return None
        return rel.column(names[-1]) or UNKNOWN

    def find_relation(self, names: list[str], scope: _Scope) -> _Rel | None:
        """The relation a qualifier names (``alias``, ``table``, ``schema.table``), searching outward."""
        name = names[-1]
        schema = names[-2] if len(names) >= 2 else None
        current: _Scope | None = scope
        while current is not None:
            for rel in current.relations:
                for candidate in (rel, *rel.hidden):
                    if candidate.alias == name and (schema is None or candidate.schema in (None, schema)):
                        return candidate
            current = current.outer
        return None

    def func_call(self, body: dict[str, Any], scope: _Scope) -> Lineage:
        names = [_name(part).lower() for part in body.get("funcname", ())]
        bare = names[-1] if names else ""
        system = len(names) == 1 or names[0] == "pg_catalog"
        parts = [self.expr(body.get(key), scope) for key in ("args", "agg_filter", "over") if body.get(key)]
        if body.get("agg_order"):
            self._expressions(body["agg_order"], scope)
        lineage = merge(parts).derived()
        user_defined = not system or bare in self.catalog.user_functions
        if bare in SINK_FUNCTIONS or (user_defined and (lineage.deps or lineage.unknown)):
            self.sinks.append(Sink(f"{'.'.join(names)}()", lineage))
        if user_defined or bare in SQL_TEXT_FUNCTIONS:
            return Lineage(lineage.deps, None, unknown=True)
        return lineage

    def sub_link(self, body: dict[str, Any], scope: _Scope) -> Lineage:
        outputs = self.query(body["subselect"], scope)
        test = self.expr(body.get("testexpr"), scope) if body.get("testexpr") else CLEAN
        if body.get("subLinkType") == "EXISTS_SUBLINK":
            return CLEAN
        return merge([*outputs, test]).derived()


def _positional(left: list[Lineage], right: list[Lineage]) -> list[Lineage]:
    """Column-wise union of two branches of a set operation (or VALUES rows); names from the left."""
    if any(o.spread for o in left + right) or len(left) != len(right):
        return [replace(merge(left + right), unknown=True, spread=True)]
    return [_union([a, b]).named(a.name) for a, b in zip(left, right, strict=True)]


def _cte_rel(name: str, outputs: list[Lineage], cte: dict[str, Any]) -> _Rel:
    aliases = [_name(c) for c in cte.get("aliascolnames", ())]
    columns = [(aliases[i] if i < len(aliases) else (o.name or "?column?"), o) for i, o in enumerate(outputs)]
    spread = [o for o in outputs if o.spread]
    return _Rel(name, [c for c in columns if not c[1].spread], any_column=merge(spread) if spread else None)


def _aliased(rel: _Rel, alias: dict[str, Any] | None, _outputs: Any) -> _Rel:
    if not alias:
        return rel
    names = [_name(c) for c in alias.get("colnames", ())]
    columns = [(names[i] if i < len(names) else n, lin) for i, (n, lin) in enumerate(rel.columns)]
    out = _Rel(alias.get("aliasname"), columns, rel.any_column)
    out.hidden = rel.hidden if rel.alias is None else []
    return out


def _flatten(rel: _Rel) -> Iterator[_Rel]:
    if rel.alias is not None:
        yield rel
    yield from rel.hidden


def _alias_name(alias: dict[str, Any] | None) -> str | None:
    return alias.get("aliasname") if alias else None


def _name(node: dict[str, Any]) -> str:
    if "String" in node:
        return str(node["String"].get("sval", ""))
    return "*"


_VIEW_CACHES: dict[int, tuple[CatalogModel, dict[int, list[Lineage]]]] = {}


def _view_cache(catalog: CatalogModel) -> dict[int, list[Lineage]]:
    """Analysed views per catalog snapshot (a new snapshot starts afresh)."""
    entry = _VIEW_CACHES.get(id(catalog))
    if entry is None or entry[0] is not catalog:
        if len(_VIEW_CACHES) > 64:
            _VIEW_CACHES.clear()
        entry = _VIEW_CACHES[id(catalog)] = (catalog, {})
    return entry[1]
