r"""Classify PostgreSQL statements with pglast (libpg_query, PostgreSQL's own parser).

The parse tree comes back as JSON and is walked in full: functions called
anywhere (select lists, FROM, WHERE, CTEs, subqueries, defaults), every table,
data-modifying statements nested in CTEs, identity changes nested anywhere. A role statement that sets a password
(``ALTER ROLE/USER ... PASSWORD``, ``CREATE ROLE/USER ... PASSWORD``, psql's ``\password``) is an
identity change too: the gateway issues the session's login, so its credentials are not the client's to set.

``MERGE`` has no WHERE clause: a ``WHEN [NOT] MATCHED ... THEN UPDATE/DELETE``
action counts as an UPDATE/DELETE without one (neither the join condition nor a
``WHEN MATCHED AND ...`` condition counts as a WHERE: fail closed). A MERGE whose
actions only INSERT or DO NOTHING is a plain insert. A ``set_config()`` whose
setting name is a bind parameter (``$1``) records the parameter's number in
``bound_settings``, to be checked against its value (see ``check_bound``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pglast import parser

from sqlgate.policy.sql import catalog
from sqlgate.policy.sql.result import Classification, Statement, unparsable

_NESTED_WRITES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


def classify_postgres(sql: str) -> Classification:
    """Classify every statement of ``sql``; text that does not parse gives ``error``, never an exception."""
    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except (parser.ParseError, RecursionError, ValueError, TypeError, MemoryError) as exc:
        return unparsable(str(exc) or type(exc).__name__, "postgres")
    try:
        return Classification(tuple(_statement(raw["stmt"]) for raw in tree.get("stmts", ())))
    except (KeyError, TypeError, AttributeError, StopIteration) as exc:  # a tree shape we do not know
        return unparsable(f"unrecognised parse tree: {exc}", "postgres")


def normalized(sql: str) -> str | None:
    """``sql`` with every constant replaced by ``$n`` (pglast's normalize), or None when it does not parse."""
    try:
        return str(parser.normalize(sql))
    except Exception:
        return None


@dataclass(slots=True)
class _Facts:
    """What a walk over one statement's tree found."""

    classes: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    unbounded: list[str] = field(default_factory=list)
    identity: str | None = None
    opaque: str | None = None
    cacheable: bool = True
    bound_settings: list[int] = field(default_factory=list)


def _statement(node: dict[str, Any]) -> Statement:
    kind, body = next(iter(node.items()))
    facts = _Facts(classes=set(_top_classes(kind, body)))
    _walk(node, facts)
    if kind == "DoStmt":
        facts.opaque = "a DO block runs procedural code that cannot be checked"
    names = _prepared_names(kind, body)
    return Statement(
        kind=kind,
        classes=frozenset(facts.classes),
        functions=frozenset(facts.functions),
        tables=frozenset(facts.tables),
        unbounded=tuple(facts.unbounded),
        identity=facts.identity,
        opaque=facts.opaque,
        prepares=names[0],
        executes=names[1],
        deallocates=names[2],
        cacheable=facts.cacheable,
        bound_settings=tuple(sorted(set(facts.bound_settings))),
    )


def _top_classes(kind: str, body: dict[str, Any]) -> frozenset[str]:
    if kind == "SelectStmt" and "intoClause" in body:
        return frozenset({"write", "ddl"})
    if kind == "CopyStmt":
        base = "write" if body.get("is_from") else "read"
        return frozenset({base, "admin"}) if body.get("is_program") or body.get("filename") else frozenset({base})
    if kind == "DropStmt" and body.get("removeType") in catalog.ADMIN_DROP_TYPES:
        return catalog.ADMIN
    if kind == "PrepareStmt":
        inner = body.get("query") or {}
        return _top_classes(*next(iter(inner.items()))) if inner else catalog.READ
    if kind == "VariableSetStmt" and body.get("name", "").lower() == "transaction":
        return catalog.TRANSACTION
    return catalog.STATEMENT_CLASSES.get(kind, catalog.DDL)


def _prepared_names(kind: str, body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    if kind == "PrepareStmt":
        return body.get("name"), None, None
    if kind == "ExecuteStmt":
        return None, body.get("name"), None
    if kind == "DeallocateStmt":
        return None, None, "*" if body.get("isall") else body.get("name")
    return None, None, None


def _walk(root: dict[str, Any], facts: _Facts) -> None:
    stack: list[Any] = [root]
    pop, push, extend, handlers = stack.pop, stack.append, stack.extend, _HANDLERS
    while stack:
        item = pop()
        if type(item) is not dict:
            if type(item) is list:
                extend(item)
            continue
        if "relname" in item:
            _on_range_var(item, facts)
        if "funcname" in item:
            _on_func_call(item, facts)
        for key, value in item.items():
            kind = type(value)
            if kind is dict:
                handler = handlers.get(key)
                if handler is not None:
                    handler(value, facts)
                push(value)
            elif kind is list:
                extend(value)


def _on_func_call(body: dict[str, Any], facts: _Facts) -> None:
    parts = [_string(part) for part in body.get("funcname", ())]
    names = [p.lower() for p in parts if p is not None]
    if not names:
        return
    bare = names[-1]
    facts.functions.add(bare)
    if len(names) > 1:
        facts.functions.add(".".join(names))
    facts.classes |= catalog.function_classes(bare)
    if bare in catalog.DYNAMIC_SQL_FUNCTIONS:
        facts.opaque = f"{bare}() runs SQL given as text, which cannot be checked"
    if bare == "set_config":
        _on_set_config(body, facts)


def _on_set_config(body: dict[str, Any], facts: _Facts) -> None:
    facts.cacheable = False  # the setting's name is a constant, and the cache key hides constants
    facts.classes.add("session")
    first = (body.get("args") or [None])[0]
    setting = _constant_text(first)
    if setting is None and (number := _param_number(first)) is not None:
        facts.bound_settings.append(number)  # its value is checked at Bind (check_bound)
    elif setting is None:
        facts.identity = "set_config() with a computed setting name could change the session's role"
    elif catalog.is_identity_setting(setting):
        facts.identity = f"set_config({setting!r}) would change the session's role"


def _on_range_var(body: dict[str, Any], facts: _Facts) -> None:
    name = str(body.get("relname", "")).lower()
    schema = body.get("schemaname")
    facts.tables.add(name)
    if schema:
        facts.tables.add(f"{str(schema).lower()}.{name}")


def _on_variable_set(body: dict[str, Any], facts: _Facts) -> None:
    name = str(body.get("name", "")).lower()
    if name in catalog.IDENTITY_SETTINGS:
        shown = "SET ROLE / RESET ROLE" if name == "role" else "SET SESSION AUTHORIZATION"
        facts.identity = f"{shown} would change the session's identity"


_PASSWORD_CHANGES = {"AlterRoleStmt": "ALTER ROLE/USER ... PASSWORD", "CreateRoleStmt": "CREATE ROLE/USER ... PASSWORD"}


def _on_role_options(kind: str) -> Any:
    r"""A role statement that sets a password (psql's ``\password`` sends ``ALTER USER ... PASSWORD``)."""

    def handler(body: dict[str, Any], facts: _Facts) -> None:
        for option in body.get("options") or ():
            if (option.get("DefElem") or {}).get("defname") == "password":
                facts.identity = (
                    f"{_PASSWORD_CHANGES[kind]} would change a login's credentials: the gateway issues the"
                    " session's login and its password cannot be changed"
                )
                return

    return handler


def _on_write(kind: str) -> Any:
    def handler(body: dict[str, Any], facts: _Facts) -> None:
        facts.classes.add("write")
        if kind in {"UpdateStmt", "DeleteStmt"} and not _bounded(body.get("whereClause")):
            relation = body.get("relation") or {}
            verb = "UPDATE" if kind == "UpdateStmt" else "DELETE FROM"
            facts.unbounded.append(f"{verb} {relation.get('relname', '?')}")
        elif kind == "MergeStmt":
            facts.unbounded.extend(_merge_updates(body))

    return handler


_MERGE_ACTIONS = {"CMD_UPDATE": "UPDATE", "CMD_DELETE": "DELETE"}
_MERGE_MATCHES = {
    "MERGE_WHEN_MATCHED": "MATCHED",
    "MERGE_WHEN_NOT_MATCHED_BY_SOURCE": "NOT MATCHED BY SOURCE",
}


def _merge_updates(body: dict[str, Any]) -> list[str]:
    """Each UPDATE/DELETE action of a MERGE (none has a WHERE clause; conditions on WHEN do not count)."""
    target = (body.get("relation") or {}).get("relname", "?")
    found = []
    for clause in body.get("mergeWhenClauses") or ():
        when = clause.get("MergeWhenClause") or {}
        action = _MERGE_ACTIONS.get(when.get("commandType", ""))
        if action is not None:
            match = _MERGE_MATCHES.get(when.get("matchKind", ""), "MATCHED")
            found.append(f"MERGE INTO {target} (WHEN {match} THEN {action})")
    return found


def _on_select(body: dict[str, Any], facts: _Facts) -> None:
    if "lockingClause" in body:
        facts.classes.add("write")  # SELECT ... FOR UPDATE/SHARE takes row locks and needs UPDATE rights


def _bounded(where: Any) -> bool:
    """True when a WHERE clause exists and mentions a column (``WHERE true`` or ``1=1`` bound nothing)."""
    if not where:
        return False
    stack = [where]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "ColumnRef" in item or "CurrentOfExpr" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _string(node: Any) -> str | None:
    if isinstance(node, dict) and "String" in node:
        value = node["String"].get("sval")
        return value if isinstance(value, str) else None
    return None


def _constant_text(node: Any) -> str | None:
    """The text of a string constant (through casts), else None."""
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if isinstance(node, dict) and "A_Const" in node:
        value = node["A_Const"].get("sval", {}).get("sval")
        return value if isinstance(value, str) else None
    return None


def _param_number(node: Any) -> int | None:
    """The number of a bind parameter (``$1``, through casts), else None."""
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if isinstance(node, dict) and "ParamRef" in node:
        number = node["ParamRef"].get("number")
        return number if isinstance(number, int) and number > 0 else None
    return None


_HANDLERS: dict[str, Any] = {
    "VariableSetStmt": _on_variable_set,
    "SelectStmt": _on_select,
    **{kind: _on_write(kind) for kind in _NESTED_WRITES},
    **{kind: _on_role_options(kind) for kind in _PASSWORD_CHANGES},
}
